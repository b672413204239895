#pragma once
// Pools and members as the data plane sees them. Member objects are shared by
// all workers and never move; their live counters are relaxed atomics on their
// own cache lines. Each worker picks through its own PoolPicker, which holds
// the worker's policy state (round-robin position, random source) so picking
// takes no lock.

#include <linux/time_types.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "lb/policy/maglev.h"
#include "lb/policy/policy.h"
#include "lb/stats.h"

namespace lb {

struct Member {
  std::string name;
  config::Address address;
  std::atomic<bool> backup{false};
  // Set when a reload removed the member: it gets no new connections and
  // its sessions finish on their own.
  std::atomic<bool> removed{false};
  std::atomic<uint64_t> removedAtNs{0};  // CLOCK_MONOTONIC, when `removed` was set
  // Written by the control thread (health checks, the admin endpoint), read
  // by pickers on every pick.
  std::atomic<bool> up{true};
  std::atomic<bool> draining{false};
  std::atomic<uint32_t> weight{1};
  // Connections attempted or established on this member and not yet ended.
  // Incremented when a connect is attempted; decremented exactly once when
  // that attempt fails or its session ends.
  SharedCounter active;
  // Failed connects since the last successful one (passive health checks).
  SharedCounter connectFailures;
  MemberCounters counters;
};

class Pool {
 public:
  // Members of `previous` (the pool of the same name before a reload) that
  // keep their name and address are kept, with their counters and state.
  explicit Pool(const config::Pool& pool, const Pool* previous = nullptr);

  const std::string& name() const { return config_.name; }
  const config::Pool& config() const { return config_; }
  std::span<const std::shared_ptr<Member>> members() const { return members_; }
  Member* findMember(std::string_view name) const;
  // The connect timeout as the kernel takes it (lives as long as the pool,
  // so SQEs may point at it).
  const __kernel_timespec* connectTimeout() const { return &connectTimeout_; }
  PoolCounters& counters() const { return *counters_; }

  // consistent_hash: one immutable table per group, shared by every worker,
  // replaced (never changed) when a weight changes.
  struct Tables {
    std::shared_ptr<const policy::MaglevTable> primary;
    std::shared_ptr<const policy::MaglevTable> backup;
  };
  std::shared_ptr<const Tables> tables() const { return tables_.load(std::memory_order_acquire); }

  // Control thread only. Publishes the new weight (and rebuilt tables);
  // pickers rebuild their policies when they see the version change.
  void setWeight(Member& member, uint32_t weight);
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  void buildTables();

  config::Pool config_;
  std::vector<std::shared_ptr<Member>> members_;
  std::atomic<std::shared_ptr<const Tables>> tables_;
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
  struct Group {
    std::vector<Member*> members;
    std::unique_ptr<policy::Policy> policy;
  };
  Member* pickFrom(Group& group, const policy::PickContext& base, std::span<Member* const> tried,
                   bool ignoreHealth);
  uint64_t keyHash(const sockaddr_storage& client) const;
  std::unique_ptr<policy::Policy> makeGroupPolicy(const Group& group, const Pool::Tables* tables,
                                                  bool backup) const;
  void rebuildPolicies();

  const Pool& pool_;
  Group primary_;
  Group backup_;
  uint64_t version_ = 0;  // the pool version the policies were built for
  SplitMix64 random_;
};

}  // namespace lb
