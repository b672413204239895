#pragma once
// allow / deny / proxy_from: which client addresses a rule set covers,
// by longest-prefix match over a binary trie of 128-bit addresses (IPv4
// kept IPv4-mapped, as config::Cidr is). A lookup walks at most 128 nodes
// whatever the number of rules: 10,000 rules cost the same as 10.
// Built once per config generation, then read-only (shared by workers).
//
// Since IPv4 lives in ::ffff:0:0/96, an IPv6 block that covers that range
// ("::/0", "::ffff:0:0/96") covers IPv4 clients too, as on a dual-stack
// socket.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <vector>

#include "config/config.h"

namespace lb::edge {

class AddressSet {
 public:
  AddressSet() = default;
  // Cost O(blocks x prefix) plus a sort of the blocks by prefix length.
  // Memory: at most 1 + (sum of prefix lengths) nodes of sizeof(Node) (12)
  // bytes, i.e. <= 12 x (1 + 128 x blocks) bytes; blocks sharing leading
  // bits share nodes (an IPv4 block adds at most 32 beyond the shared /96).
  explicit AddressSet(const std::vector<config::Cidr>& blocks);

  bool empty() const { return nodes_.size() <= 1 && !rootTerminal_; }
  // Whether any block covers `address` (AF_INET, AF_INET6; an IPv4-mapped
  // IPv6 address is matched as the IPv4 one). Other families: false.
  bool contains(const sockaddr_storage& address) const;
  // The same over the 128-bit form toMapped() gives.
  bool containsMapped(const std::array<uint8_t, 16>& mapped) const;

  // For tests: how many trie nodes contains(`address`) visits (the root
  // counts; never more than 129). 0 for a family that is not IP.
  int lookupSteps(const sockaddr_storage& address) const;
  size_t nodeCount() const { return nodes_.size(); }  // for tests

 private:
  struct Node {
    uint32_t child[2] = {0, 0};  // 0: none (the root is node 0 and never a child)
    bool terminal = false;       // a block ends here: everything below is covered
  };
  bool match(const std::array<uint8_t, 16>& mapped, int* steps) const;

  // Invariant: a terminal node has no children (blocks are inserted
  // shortest first and an insertion stops at a terminal), so no node is
  // built that no lookup can reach.
  std::vector<Node> nodes_;
  bool rootTerminal_ = false;  // a /0 block: every IP address
};

// A listener's access decision: deny wins, then an empty allow admits all.
// A client that has no IP address (AF_UNIX or "unknown" from a PROXY
// header, AF_UNSPEC) matches no block: it is refused when allow is not
// empty (it cannot be shown to be allowed) and admitted otherwise (no deny
// block can name it).
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
