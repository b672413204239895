#include "lb/edge/address_rules.h"

#include <algorithm>
#include <cstring>

namespace lb::edge {

namespace {

int bitAt(const std::array<uint8_t, 16>& address, int index) {
  return (address[static_cast<size_t>(index / 8)] >> (7 - index % 8)) & 1;
}

}  // namespace

bool toMapped(const sockaddr_storage& address, uint8_t out[16]) {
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &v4.sin_addr, 4);
    return true;
  }
  if (address.ss_family == AF_INET6) {
    // An IPv4-mapped address already is the form IPv4 blocks are kept in.
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    std::memcpy(out, &v6.sin6_addr, 16);
    return true;
  }
  return false;
}

AddressSet::AddressSet(const std::vector<config::Cidr>& blocks) : nodes_(1) {
  // Shortest first: a longer block under an existing terminal adds nothing,
  // and no terminal ever needs its subtree cut off (which would leave
  // unreachable nodes behind).
  std::vector<const config::Cidr*> order;
  order.reserve(blocks.size());
  for (const config::Cidr& block : blocks) order.push_back(&block);
  std::stable_sort(order.begin(), order.end(),
                   [](const config::Cidr* a, const config::Cidr* b) { return a->prefix < b->prefix; });

  for (const config::Cidr* block : order) {
    int prefix = std::clamp(block->prefix, 0, 128);
    uint32_t node = 0;
    bool covered = nodes_[0].terminal;
    for (int i = 0; i < prefix && !covered; ++i) {
      int bit = bitAt(block->address, i);
      if (nodes_[node].child[bit] == 0) {
        nodes_[node].child[bit] = static_cast<uint32_t>(nodes_.size());
        nodes_.emplace_back();  // may reallocate: index again below
      }
      node = nodes_[node].child[bit];
      covered = nodes_[node].terminal;
    }
    nodes_[node].terminal = true;
  }
  rootTerminal_ = nodes_[0].terminal;
}

bool AddressSet::match(const std::array<uint8_t, 16>& mapped, int* steps) const {
  *steps = 0;
  if (nodes_.empty()) return false;
  uint32_t node = 0;
  *steps = 1;
  // Visits the root and at most one node per bit: <= 129 whatever the size.
  for (int i = 0;; ++i) {
    if (nodes_[node].terminal) return true;
    if (i == 128) return false;
    uint32_t next = nodes_[node].child[bitAt(mapped, i)];
    if (next == 0) return false;
    node = next;
    ++*steps;
  }
}

bool AddressSet::containsMapped(const std::array<uint8_t, 16>& mapped) const {
  int steps;
  return match(mapped, &steps);
}

bool AddressSet::contains(const sockaddr_storage& address) const {
  std::array<uint8_t, 16> mapped;
  if (!toMapped(address, mapped.data())) return false;
  return containsMapped(mapped);
}

int AddressSet::lookupSteps(const sockaddr_storage& address) const {
  std::array<uint8_t, 16> mapped;
  if (!toMapped(address, mapped.data())) return 0;
  int steps;
  match(mapped, &steps);
  return steps;
}

AccessRules::AccessRules(const std::vector<config::Cidr>& allow, const std::vector<config::Cidr>& deny)
    : allow_(allow), deny_(deny), hasAllow_(!allow.empty()), hasDeny_(!deny.empty()) {}

bool AccessRules::admits(const sockaddr_storage& client) const {
  std::array<uint8_t, 16> mapped;
  if (!toMapped(client, mapped.data())) return !hasAllow_;
  if (hasDeny_ && deny_.containsMapped(mapped)) return false;
  return !hasAllow_ || allow_.containsMapped(mapped);
}

}  // namespace lb::edge
