#pragma once
// Pools and members as the data plane sees them, one set per config
// generation. A generation's Pool and Member objects are its own: built from
// the config and from what the running generation shares, never by writing
// into the running generation (a refused reload leaves it exactly as it was).
// What must outlive a reload lives in objects the generations share:
//  - SharedMemberState, found by pool and member name: health, drain state,
//    the active count, passive failures and counters;
//  - MemberEndpoint, found by pool, member name and address: whether a
//    reload has retired that address (the member was removed or moved), so
//    that sessions on it, whatever generation they started in, finish as a
//    removed member's do.
// Member objects never move; the live values are relaxed atomics, the
// counters on their own cache lines. Each worker picks through its own
// PoolPicker, which holds the worker's policy state (round-robin position,
// random source) so picking takes no lock.

#include <linux/time_types.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "health/passive_failures.h"
#include "lb/policy/maglev.h"
#include "lb/policy/policy.h"
#include "lb/stats.h"
#include "lb/tls/context.h"

namespace lb {

struct SharedMemberState {
  // Written by the control thread (health checks, the admin endpoint, an
  // accepted reload), read by pickers on every pick.
  std::atomic<bool> up{true};
  std::atomic<bool> draining{false};
  // Connections attempted or established on the member and not yet ended.
  // Incremented when a connect is attempted; decremented exactly once when
  // that attempt fails or its session ends.
  SharedCounter active;
  health::PassiveFailureCounter connectFailures;
  MemberCounters counters;
};

class MemberEndpoint {
 public:
  // Retired: no generation from now on has the member at this address; its
  // sessions finish on their own (or after removed_member_timeout). Control
  // thread, once the reload is accepted.
  void retire(uint64_t nowNs);
  // How long ago the address was retired, at nowNs (CLOCK_MONOTONIC); 0
  // while it is not, and when nowNs was read before the retirement.
  uint64_t retiredFor(uint64_t nowNs) const;
  bool retired() const { return retired_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> retiredAtNs_{0};
  std::atomic<bool> retired_{false};  // set (release) after retiredAtNs_
};

struct Member {
  Member(const config::Member& spec, config::ProxyVersion poolSendProxy, std::shared_ptr<SharedMemberState> shared,
         std::shared_ptr<MemberEndpoint> endpointShared);
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // How long a reload has had this member's address retired (see
  // MemberEndpoint::retiredFor).
  uint64_t removedFor(uint64_t nowNs) const { return endpoint->retiredFor(nowNs); }

  const std::shared_ptr<SharedMemberState> state;
  const std::shared_ptr<MemberEndpoint> endpoint;
  const std::string name;
  const config::Address address;
  const bool backup;
  // The PROXY header every connection to the member begins with: the
  // member's send_proxy, else its pool's. A reload builds new Members, so a
  // change applies to connections made from then on.
  const config::ProxyVersion sendProxy;
  // This generation's own: the file's weight, changed by the admin endpoint
  // through Pool::setWeight.
  std::atomic<uint32_t> weight;
  // The shared state under the names the data path uses.
  std::atomic<bool>& up;
  std::atomic<bool>& draining;
  SharedCounter& active;
  health::PassiveFailureCounter& connectFailures;
  MemberCounters& counters;
};

class Pool {
 public:
  // `previous` is the pool of the same name in the running generation: its
  // members' shared state is taken over by name (and their endpoints by name
  // and address). It is only read.
  explicit Pool(const config::Pool& pool, const Pool* previous = nullptr);

  const std::string& name() const { return config_.name; }
  const config::Pool& config() const { return config_; }
  std::span<const std::shared_ptr<Member>> members() const { return members_; }
  Member* findMember(std::string_view name) const;
  // The connect timeout as the kernel takes it (lives as long as the pool,
  // so SQEs may point at it).
  const __kernel_timespec* connectTimeout() const { return &connectTimeout_; }
  PoolCounters& counters() const { return *counters_; }
  // [pool.NAME.tls]: originate TLS to the members; null: plain TCP.
  // Set by buildRuntime before the pool is shared.
  std::shared_ptr<const tls::ClientSettings> tls;

  // The members as pickers use them: primary and backup groups, each with
  // the weights and (consistent_hash) the Maglev table built from exactly
  // that list, so a table index always names a member of its group.
  // Immutable; replaced, never changed, when a weight changes.
  struct Group {
    std::vector<Member*> members;
    std::vector<policy::MemberSpec> specs;              // indexed like members
    std::shared_ptr<const policy::MaglevTable> table;  // consistent_hash only
  };
  struct Snapshot {
    Group primary;
    Group backup;
  };
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_.load(std::memory_order_acquire); }
  // Bumped after each new snapshot; pickers rebuild their policies when
  // they see it change.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // Control thread only: the new weight for `member` (of this pool), in a
  // new snapshot.
  void setWeight(Member& member, uint32_t weight);

 private:
  void publish();

  config::Pool config_;
  std::vector<std::shared_ptr<Member>> members_;
  std::atomic<std::shared_ptr<const Snapshot>> snapshot_;
  std::atomic<uint64_t> version_{0};
  __kernel_timespec connectTimeout_{};
  std::shared_ptr<PoolCounters> counters_ = std::make_shared<PoolCounters>();
};

// splitmix64: small, fast, and good enough to choose between members.
class SplitMix64 final : public policy::Random {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() override;

 private:
  uint64_t state_;
};

// One worker's view of a pool for picking members.
class PoolPicker {
 public:
  PoolPicker(const Pool& pool, uint64_t seed);

  // Chooses a member for a connection from `client` that has already tried
  // the members in `tried` (attempt = tried.size()). Primary members first,
  // then backups; when none is up and the pool says use_all, any member not
  // yet tried. nullptr when nothing is left.
  Member* pick(const sockaddr_storage& client, std::span<Member* const> tried);
  const Pool& pool() const { return pool_; }

 private:
  // One group of the snapshot with this worker's policy for it.
  struct GroupPolicy {
    const Pool::Group* group = nullptr;  // in snapshot_
    std::unique_ptr<policy::Policy> policy;
  };
  Member* pickFrom(GroupPolicy& group, const policy::PickContext& base, std::span<Member* const> tried,
                   bool ignoreHealth);
  uint64_t keyHash(const sockaddr_storage& client) const;
  std::unique_ptr<policy::Policy> makeGroupPolicy(const Pool::Group& group) const;
  void rebuildPolicies();

  const Pool& pool_;
  std::shared_ptr<const Pool::Snapshot> snapshot_;  // the groups the policies were built for
  GroupPolicy primary_;
  GroupPolicy backup_;
  uint64_t version_ = 0;  // the pool version snapshot_ was taken at
  SplitMix64 random_;
};

}  // namespace lb
