#pragma once
// allow / deny / proxy_from: which client addresses a rule set covers,
// by longest-prefix match over a binary trie of 128-bit addresses (IPv4
// kept IPv4-mapped, as config::Cidr is). A lookup walks at most 128 nodes
// whatever the number of rules: 10,000 rules cost the same as 10.
// Built once per config generation, then read-only (shared by workers).

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "config/config.h"

namespace lb::edge {

class AddressSet {
 public:
  AddressSet() = default;
  explicit AddressSet(const std::vector<config::Cidr>& blocks);

  bool empty() const { return nodes_.size() <= 1 && !rootTerminal_; }
  // Whether any block covers `address` (AF_INET, AF_INET6; an IPv4-mapped
  // IPv6 address is matched as the IPv4 one). Other families: false.
  bool contains(const sockaddr_storage& address) const;

 private:
  struct Node {
    uint32_t child[2] = {0, 0};  // 0: none (the root is node 0 and never a child)
    bool terminal = false;       // a block ends here: everything below is covered
  };
  std::vector<Node> nodes_;
  bool rootTerminal_ = false;
};

// A listener's access decision: deny wins, then an empty allow admits all.
class AccessRules {
 public:
  AccessRules() = default;
  AccessRules(const std::vector<config::Cidr>& allow, const std::vector<config::Cidr>& deny);
  bool admits(const sockaddr_storage& client) const;
  bool active() const { return hasAllow_ || hasDeny_; }

 private:
  AddressSet allow_;
  AddressSet deny_;
  bool hasAllow_ = false;
  bool hasDeny_ = false;
};

// The 128-bit form used for matching (IPv4 mapped); false for other families.
bool toMapped(const sockaddr_storage& address, uint8_t out[16]);

}  // namespace lb::edge
