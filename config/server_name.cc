#include "config/server_name.h"

#include <cstddef>

namespace config {

std::optional<std::string> normalizeServerName(std::string_view name, bool allowWildcard) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(name.size());
  size_t labelStart = 0;
  size_t labels = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      size_t length = i - labelStart;
      if (length == 0 || length > 63) return std::nullopt;
      ++labels;
      labelStart = i + 1;
      if (i < name.size()) out += '.';
      continue;
    }
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (c == '*') {
      // Only a whole first label: "*." followed by the rest.
      if (!allowWildcard || i != 0 || name.size() < 2 || name[1] != '.') return std::nullopt;
    } else if (!plain) {
      return std::nullopt;
    }
    out += c;
  }
  if (out[0] == '*' && labels < 3) return std::nullopt;
  return out;
}

}  // namespace config
