#pragma once
// The form of a TLS server name (SNI) that config and matching share.

#include <optional>
#include <string>
#include <string_view>

namespace config {

// `name` as matching uses it: lower case, no trailing dot. nullopt for
// something that is not a host name: empty, longer than 253 bytes, a byte
// outside [A-Za-z0-9-_.*], an empty label or one over 63 bytes, or a '*'
// other than a whole first label followed by at least two labels
// ("*.svc.internal", not "*.internal" nor "a*.b.c"). With
// `allowWildcard` false a '*' is refused too.
std::optional<std::string> normalizeServerName(std::string_view name, bool allowWildcard = true);

}  // namespace config
