#pragma once
// Private to config/: the [admin] token_file, read at every load (start,
// --check and each reload), and what makes an admin listen address safe
// without a token.

#include <string>

#include "config/config.h"

namespace config {

// The largest token file read (a token is a line, not a document).
inline constexpr size_t kMaxTokenFileBytes = 4096;

struct TokenFile {
  std::string token;    // the file's text without one trailing "\n" or "\r\n"
  std::string error;    // non-empty: no token (unreadable, empty, not one token, ...)
  std::string warning;  // non-empty: readable by every user of the host
};

// Reads the token at `path` (named by its path in messages). The token must
// be visible ASCII: no space, no control character, nothing a header value
// would trim or refuse.
TokenFile readTokenFile(const std::string& path);

// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: reachable from this host only.
bool isLoopback(const Address& address);

}  // namespace config
