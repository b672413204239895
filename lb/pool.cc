#include "lb/pool.h"

#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "lb/policy/factory.h"
#include "lb/policy/hash.h"

namespace lb {

void MemberEndpoint::retire(uint64_t nowNs) {
  if (retired()) return;
  retiredAtNs_.store(nowNs, std::memory_order_relaxed);
  retired_.store(true, std::memory_order_release);
}

// A worker may have read its clock just before the control thread read its
// own and retired the address: then nowNs < retiredAtNs, which is "just now".
uint64_t MemberEndpoint::retiredFor(uint64_t nowNs) const {
  if (!retired()) return 0;
  uint64_t at = retiredAtNs_.load(std::memory_order_relaxed);
  return nowNs > at ? nowNs - at : 0;
}

Member::Member(const config::Member& spec, config::ProxyVersion poolSendProxy,
               std::shared_ptr<SharedMemberState> shared, std::shared_ptr<MemberEndpoint> endpointShared)
    : state(std::move(shared)),
      endpoint(std::move(endpointShared)),
      name(spec.name),
      address(spec.address),
      backup(spec.backup),
      sendProxy(spec.sendProxy.value_or(poolSendProxy)),
      weight(static_cast<uint32_t>(spec.weight)),
      up(state->up),
      draining(state->draining),
      active(state->active),
      connectFailures(state->connectFailures),
      counters(state->counters) {}

Pool::Pool(const config::Pool& pool, const Pool* previous) : config_(pool) {
  if (previous) counters_ = previous->counters_;
  for (const config::Member& spec : pool.members) {
    const Member* old = previous ? previous->findMember(spec.name) : nullptr;
    auto state = old ? old->state : std::make_shared<SharedMemberState>();
    auto endpoint = old && old->address.text == spec.address.text ? old->endpoint
                                                                  : std::make_shared<MemberEndpoint>();
    members_.push_back(std::make_shared<Member>(spec, pool.sendProxy, std::move(state), std::move(endpoint)));
  }
  publish();
  auto timeout = pool.connectTimeout;
  connectTimeout_.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  connectTimeout_.tv_nsec =
      std::chrono::duration_cast<std::chrono::nanoseconds>(timeout % std::chrono::seconds(1)).count();
}

Member* Pool::findMember(std::string_view name) const {
  for (const auto& member : members_)
    if (member->name == name) return member.get();
  return nullptr;
}

// Groups, weights and tables come from one pass over the members, so they
// cannot disagree.
void Pool::publish() {
  auto snapshot = std::make_shared<Snapshot>();
  for (const auto& member : members_) {
    Group& group = member->backup ? snapshot->backup : snapshot->primary;
    group.members.push_back(member.get());
    group.specs.push_back({member->name, member->weight.load(std::memory_order_relaxed)});
  }
  if (config_.balance == config::Balance::ConsistentHash)
    for (Group* group : {&snapshot->primary, &snapshot->backup})
      group->table =
          std::make_shared<policy::MaglevTable>(policy::MaglevTable::build(group->specs, config_.tableSize));
  snapshot_.store(std::move(snapshot), std::memory_order_release);
  version_.fetch_add(1, std::memory_order_release);
}

void Pool::setWeight(Member& member, uint32_t weight) {
  member.weight.store(weight, std::memory_order_relaxed);
  publish();
}

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

namespace {

// Live state of one group of members for one pick.
class GroupState final : public policy::MemberState {
 public:
  GroupState(std::span<Member* const> members, std::span<Member* const> tried, bool ignoreHealth)
      : members_(members), tried_(tried), ignoreHealth_(ignoreHealth) {}

  bool usable(size_t index) const override {
    const Member* member = members_[index];
    if (member->draining.load(std::memory_order_relaxed)) return false;
    if (!ignoreHealth_ && !member->up.load(std::memory_order_relaxed)) return false;
    return std::find(tried_.begin(), tried_.end(), member) == tried_.end();
  }
  int64_t activeConnections(size_t index) const override {
    return members_[index]->active.value.load(std::memory_order_relaxed);
  }

 private:
  std::span<Member* const> members_;
  std::span<Member* const> tried_;
  bool ignoreHealth_;
};

}  // namespace

PoolPicker::PoolPicker(const Pool& pool, uint64_t seed) : pool_(pool), random_(seed) { rebuildPolicies(); }

void PoolPicker::rebuildPolicies() {
  version_ = pool_.version();
  snapshot_ = pool_.snapshot();
  primary_ = {&snapshot_->primary, makeGroupPolicy(snapshot_->primary)};
  backup_ = {&snapshot_->backup, makeGroupPolicy(snapshot_->backup)};
}

std::unique_ptr<policy::Policy> PoolPicker::makeGroupPolicy(const Pool::Group& group) const {
  const config::Pool& config = pool_.config();
  switch (config.balance) {
    case config::Balance::ConsistentHash:
      return std::make_unique<policy::ConsistentHash>(group.table, config.hashBalanceFactor);
    case config::Balance::LeastConn: return policy::makePolicy(policy::Kind::LeastConn, group.specs);
    case config::Balance::RandomTwo: return policy::makePolicy(policy::Kind::RandomTwo, group.specs);
    default: return policy::makePolicy(policy::Kind::RoundRobin, group.specs);
  }
}

Member* PoolPicker::pickFrom(GroupPolicy& group, const policy::PickContext& base,
                             std::span<Member* const> tried, bool ignoreHealth) {
  const std::vector<Member*>& members = group.group->members;
  if (members.empty()) return nullptr;
  GroupState state(members, tried, ignoreHealth);
  policy::PickContext context = base;
  context.state = &state;
  auto index = group.policy->pick(context);
  return index ? members[*index] : nullptr;
}

Member* PoolPicker::pick(const sockaddr_storage& client, std::span<Member* const> tried) {
  if (pool_.version() != version_) rebuildPolicies();
  policy::PickContext context;
  context.keyHash = keyHash(client);
  context.attempt = static_cast<uint32_t>(tried.size());
  context.random = &random_;
  if (Member* m = pickFrom(primary_, context, tried, false)) return m;
  if (Member* m = pickFrom(backup_, context, tried, false)) return m;
  if (pool_.config().whenAllDown != config::WhenAllDown::UseAll) return nullptr;
  if (Member* m = pickFrom(primary_, context, tried, true)) return m;
  return pickFrom(backup_, context, tried, true);
}

// consistent_hash key: the client's address bytes (and port, for
// source_ip_port) in network order, so the key means the same to every
// ringlb process. An IPv4-mapped IPv6 address (an IPv4 client of a "[::]"
// listener) is keyed as the IPv4 address it maps: the client is the same
// whichever family the listening socket has.
uint64_t PoolPicker::keyHash(const sockaddr_storage& client) const {
  if (pool_.config().balance != config::Balance::ConsistentHash) return 0;
  bool withPort = pool_.config().hashKey == config::HashKey::SourceIpPort;
  uint8_t key[18];
  size_t length = 0;
  if (client.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(client);
    std::memcpy(key, &v4.sin_addr, 4);
    length = 4;
    if (withPort) std::memcpy(key + length, &v4.sin_port, 2), length += 2;
  } else if (client.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(client);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      std::memcpy(key, &v6.sin6_addr.s6_addr[12], 4);
      length = 4;
    } else {
      std::memcpy(key, &v6.sin6_addr, 16);
      length = 16;
    }
    if (withPort) std::memcpy(key + length, &v6.sin6_port, 2), length += 2;
  }
  return policy::hashClientKey({key, length});
}

}  // namespace lb
