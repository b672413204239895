#pragma once
// Stable 64-bit hashing. The same bytes give the same value in every process,
// build and platform (no std::hash, no pointers, bytes read in a fixed
// little-endian order), because a client's member and a Maglev table must not
// change when ringlb restarts or runs on another machine. Changing anything
// here remaps clients: tests/unit/maglev_test.cc pins known values.
// Not meant to resist an adversary who chooses the input.

#include <cstdint>
#include <span>
#include <string_view>

namespace lb::policy {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15;  // 2^64 / golden ratio

// A bijective finaliser (the splitmix64 output function): every input bit
// affects every output bit, and distinct inputs give distinct outputs.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  x ^= x >> 31;
  return x;
}

// Hashes bytes with a seed; different seeds give independent-looking hashes.
uint64_t hashBytes(std::span<const uint8_t> bytes, uint64_t seed) noexcept;

inline uint64_t hashString(std::string_view text, uint64_t seed) noexcept {
  return hashBytes({reinterpret_cast<const uint8_t*>(text.data()), text.size()}, seed);
}

// The hash of a client key as consistent_hash expects it in
// PickContext::keyHash: the raw address bytes in network order (4 for IPv4,
// and for an IPv4-mapped IPv6 address; 16 for IPv6), followed by the 2 port
// bytes in network order for hash_key = "source_ip_port".
uint64_t hashClientKey(std::span<const uint8_t> key) noexcept;

}  // namespace lb::policy
