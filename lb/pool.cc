#include "lb/pool.h"

#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "lb/policy/factory.h"
#include "lb/policy/hash.h"

namespace lb {

Pool::Pool(const config::Pool& pool, const Pool* previous) : config_(pool) {
  if (previous) counters_ = previous->counters_;
  for (const config::Member& spec : pool.members) {
    std::shared_ptr<Member> member;
    if (previous)
      for (const auto& old : previous->members_)
        if (old->name == spec.name && old->address.text == spec.address.text) member = old;
    if (!member) {
      member = std::make_shared<Member>();
      member->name = spec.name;
      member->address = spec.address;
    }
    member->weight.store(static_cast<uint32_t>(spec.weight));
    member->backup.store(spec.backup);
    members_.push_back(std::move(member));
  }
  buildTables();
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

void Pool::buildTables() {
  if (config_.balance != config::Balance::ConsistentHash) return;
  std::vector<policy::MemberSpec> primary, backup;
  for (const auto& member : members_)
    (member->backup.load() ? backup : primary).push_back({member->name, member->weight.load()});
  auto tables = std::make_shared<Tables>();
  tables->primary = std::make_shared<policy::MaglevTable>(policy::MaglevTable::build(primary, config_.tableSize));
  tables->backup = std::make_shared<policy::MaglevTable>(policy::MaglevTable::build(backup, config_.tableSize));
  tables_.store(std::move(tables), std::memory_order_release);
}

void Pool::setWeight(Member& member, uint32_t weight) {
  member.weight.store(weight, std::memory_order_relaxed);
  buildTables();
  version_.fetch_add(1, std::memory_order_release);
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

PoolPicker::PoolPicker(const Pool& pool, uint64_t seed) : pool_(pool), random_(seed) {
  for (const auto& member : pool.members())
    (member->backup.load() ? backup_ : primary_).members.push_back(member.get());
  rebuildPolicies();
}

void PoolPicker::rebuildPolicies() {
  version_ = pool_.version();
  auto tables = pool_.tables();
  primary_.policy = makeGroupPolicy(primary_, tables.get(), false);
  backup_.policy = makeGroupPolicy(backup_, tables.get(), true);
}

std::unique_ptr<policy::Policy> PoolPicker::makeGroupPolicy(const Group& group,
                                                            const Pool::Tables* tables,
                                                            bool backup) const {
  const config::Pool& config = pool_.config();
  if (config.balance == config::Balance::ConsistentHash)
    return std::make_unique<policy::ConsistentHash>(backup ? tables->backup : tables->primary,
                                                    config.hashBalanceFactor);
  std::vector<policy::MemberSpec> specs;
  for (const Member* member : group.members)
    specs.push_back({member->name, member->weight.load(std::memory_order_relaxed)});
  switch (config.balance) {
    case config::Balance::LeastConn: return policy::makePolicy(policy::Kind::LeastConn, specs);
    case config::Balance::RandomTwo: return policy::makePolicy(policy::Kind::RandomTwo, specs);
    default: return policy::makePolicy(policy::Kind::RoundRobin, specs);
  }
}

Member* PoolPicker::pickFrom(Group& group, const policy::PickContext& base,
                             std::span<Member* const> tried, bool ignoreHealth) {
  if (group.members.empty()) return nullptr;
  GroupState state(group.members, tried, ignoreHealth);
  policy::PickContext context = base;
  context.state = &state;
  auto index = group.policy->pick(context);
  return index ? group.members[*index] : nullptr;
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
// ringlb process.
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
    std::memcpy(key, &v6.sin6_addr, 16);
    length = 16;
    if (withPort) std::memcpy(key + length, &v6.sin6_port, 2), length += 2;
  }
  return policy::hashClientKey({key, length});
}

}  // namespace lb
