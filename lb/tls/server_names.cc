#include "lb/tls/server_names.h"

#include <algorithm>
#include <cstring>
#include <bit>

namespace lb::tls {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101u;
constexpr uint64_t kHighBits = 0x8080808080808080u;

// Eight bytes at `p` (fewer at the end: zero-padded), in memory order.
uint64_t loadWord(const char* p, size_t available) {
  uint64_t word = 0;
  std::memcpy(&word, p, std::min<size_t>(available, 8));
  return word;
}

// Each byte of `word` in 'A'..'Z' made lower case, every other byte left
// alone (bytes >= 0x80 too), eight at a time: a byte's high bit marks it
// >= 'A' after adding 0x80 - 'A' to its low seven bits, and > 'Z' after
// adding 0x80 - 'Z' - 1; neither sum carries into the next byte.
uint64_t foldWord(uint64_t word) {
  const uint64_t low7 = word & ~kHighBits;
  const uint64_t atLeastA = low7 + (0x80 - 'A') * kOnes;
  const uint64_t aboveZ = low7 + (0x80 - 'Z' - 1) * kOnes;
  const uint64_t upper = atLeastA & ~aboveZ & ~word & kHighBits;
  return word | (upper >> 2);  // 0x80 >> 2 == 0x20, 'a' - 'A'
}

// A hash of the name in lower case: a name and any case of it hash the
// same, and no lower-case copy is built. Names sharing long prefixes (as
// service names do) differ in their hashes, so a lookup compares integers,
// not strings, until its one candidate.
uint64_t foldedHash(std::string_view name) {
  uint64_t hash = name.size() * 0x9e3779b97f4a7c15u;
  for (size_t at = 0; at < name.size(); at += 8) {
    hash = (hash ^ foldWord(loadWord(name.data() + at, name.size() - at))) * 0xff51afd7ed558ccdu;
    hash ^= hash >> 29;
  }
  return hash;
}

// `stored` is lower case already.
bool equalFolded(std::string_view stored, std::string_view sni) {
  if (stored.size() != sni.size()) return false;
  for (size_t at = 0; at < sni.size(); at += 8) {
    const size_t available = sni.size() - at;
    if (loadWord(stored.data() + at, available) != foldWord(loadWord(sni.data() + at, available))) return false;
  }
  return true;
}

}  // namespace

void ServerNameTable::Names::add(std::string_view name, uint32_t value) {
  if (find(name)) return;  // the first value stays
  entries.push_back(Entry{foldedHash(name), std::string(name), value});
  if (slots.size() < 2 * entries.size()) {
    slots.assign(std::max<size_t>(16, std::bit_ceil(4 * entries.size())), 0);
    for (size_t i = 0; i < entries.size(); ++i) {
      size_t slot = entries[i].hash & (slots.size() - 1);
      while (slots[slot] != 0) slot = (slot + 1) & (slots.size() - 1);
      slots[slot] = static_cast<uint32_t>(i + 1);
    }
    return;
  }
  size_t slot = entries.back().hash & (slots.size() - 1);
  while (slots[slot] != 0) slot = (slot + 1) & (slots.size() - 1);
  slots[slot] = static_cast<uint32_t>(entries.size());
}

std::optional<uint32_t> ServerNameTable::Names::find(std::string_view key) const {
  if (entries.empty()) return std::nullopt;
  const uint64_t hash = foldedHash(key);
  // Linear probing; the table is at most half full, so a free slot ends it.
  for (size_t slot = hash & (slots.size() - 1); slots[slot] != 0; slot = (slot + 1) & (slots.size() - 1)) {
    const Entry& entry = entries[slots[slot] - 1];
    if (entry.hash == hash && equalFolded(entry.name, key)) return entry.value;
  }
  return std::nullopt;
}

void ServerNameTable::add(std::string_view name, uint32_t value) {
  if (name.size() > 2 && name.substr(0, 2) == "*.") {
    wildcard_.add(name.substr(2), value);
  } else {
    exact_.add(name, value);
  }
}

std::optional<uint32_t> ServerNameTable::find(std::string_view sni) const {
  if (!sni.empty() && sni.back() == '.') sni.remove_suffix(1);
  if (sni.empty()) return std::nullopt;
  if (auto value = exact_.find(sni)) return value;
  // A wildcard covers exactly one non-empty label before its suffix.
  size_t dot = sni.find('.');
  if (dot == 0 || dot == std::string_view::npos) return std::nullopt;
  return wildcard_.find(sni.substr(dot + 1));
}

}  // namespace lb::tls
