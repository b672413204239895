#include "lb/policy/hash.h"

namespace lb::policy {
namespace {

constexpr uint64_t kClientKeySeed = 0x636c69656e74;  // "client"

// Up to 8 bytes as a little-endian word, whatever the host's byte order.
uint64_t loadWord(std::span<const uint8_t> bytes) noexcept {
  uint64_t word = 0;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) word |= uint64_t{bytes[i]} << (8 * i);
  return word;
}

}  // namespace

// The length enters the initial state, so a zero-padded tail cannot collide
// with a longer input that really ends in zero bytes. Each word goes through
// the full bijective mix, so for a fixed prefix distinct words give distinct
// states.
uint64_t hashBytes(std::span<const uint8_t> bytes, uint64_t seed) noexcept {
  uint64_t state = mix64(seed ^ ((bytes.size() + 1) * kGoldenGamma));
  while (bytes.size() >= 8) {
    state = mix64(state ^ loadWord(bytes.first(8))) + kGoldenGamma;
    bytes = bytes.subspan(8);
  }
  if (!bytes.empty()) state = mix64(state ^ loadWord(bytes)) + kGoldenGamma;
  return mix64(state);
}

uint64_t hashClientKey(std::span<const uint8_t> key) noexcept { return hashBytes(key, kClientKeySeed); }

}  // namespace lb::policy
