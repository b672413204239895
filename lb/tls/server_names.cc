#include "lb/tls/server_names.h"

#include <algorithm>

namespace lb::tls {

namespace {

unsigned char foldAscii(char c) {
  auto byte = static_cast<unsigned char>(c);
  return (byte >= 'A' && byte <= 'Z') ? static_cast<unsigned char>(byte - 'A' + 'a') : byte;
}

// Orders `stored` (already lower case) against `sni` read in lower case,
// byte by byte as unsigned, the order std::string sorts by: so a binary
// search over names sorted as strings finds `sni` in any case, without
// building a lower-case copy.
int compareFolded(std::string_view stored, std::string_view sni) {
  size_t common = std::min(stored.size(), sni.size());
  for (size_t i = 0; i < common; ++i) {
    auto a = static_cast<unsigned char>(stored[i]);
    unsigned char b = foldAscii(sni[i]);
    if (a != b) return a < b ? -1 : 1;
  }
  if (stored.size() == sni.size()) return 0;
  return stored.size() < sni.size() ? -1 : 1;
}

}  // namespace

void ServerNameTable::add(std::string_view name, uint32_t value) {
  std::vector<Entry>* entries = &exact_;
  if (name.size() > 2 && name.substr(0, 2) == "*.") {
    entries = &wildcard_;
    name.remove_prefix(2);
  }
  auto at = std::lower_bound(entries->begin(), entries->end(), name,
                             [](const Entry& entry, std::string_view key) { return entry.name < key; });
  if (at != entries->end() && at->name == name) return;  // the first value stays
  entries->insert(at, Entry{std::string(name), value});
}

std::optional<uint32_t> ServerNameTable::lookup(const std::vector<Entry>& entries, std::string_view key) {
  auto at = std::lower_bound(entries.begin(), entries.end(), key, [](const Entry& entry, std::string_view k) {
    return compareFolded(entry.name, k) < 0;
  });
  if (at != entries.end() && compareFolded(at->name, key) == 0) return at->value;
  return std::nullopt;
}

std::optional<uint32_t> ServerNameTable::find(std::string_view sni) const {
  if (!sni.empty() && sni.back() == '.') sni.remove_suffix(1);
  if (sni.empty()) return std::nullopt;
  if (auto value = lookup(exact_, sni)) return value;
  // A wildcard covers exactly one non-empty label before its suffix.
  size_t dot = sni.find('.');
  if (dot == 0 || dot == std::string_view::npos) return std::nullopt;
  return lookup(wildcard_, sni.substr(dot + 1));
}

}  // namespace lb::tls
