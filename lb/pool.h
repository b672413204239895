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

namespace lb {

// A counter alone on its cache line, so workers bumping different members'
// counts do not slow each other down.
struct alignas(64) SharedCounter {
  std::atomic<int64_t> value{0};
};

struct Member {
  std::string name;
  config::Address address;
  uint32_t weight = 1;
  bool backup = false;
  std::atomic<bool> up{true};  // written by health checking, read by pickers
  // Connections attempted or established on this member and not yet ended.
  // Incremented when a connect is attempted; decremented exactly once when
  // that attempt fails or its session ends.
  SharedCounter active;
  // Failed connects since the last successful one (passive health checks).
  SharedCounter connectFailures;
};

class Pool {
 public:
  explicit Pool(const config::Pool& pool);

  const std::string& name() const { return config_.name; }
  const config::Pool& config() const { return config_; }
  std::span<const std::unique_ptr<Member>> members() const { return members_; }
  // The connect timeout as the kernel takes it (lives as long as the pool,
  // so SQEs may point at it).
  const __kernel_timespec* connectTimeout() const { return &connectTimeout_; }
  // consistent_hash: one immutable table per group, shared by every worker.
  std::shared_ptr<const policy::MaglevTable> table(bool backup) const {
    return backup ? backupTable_ : primaryTable_;
  }

 private:
  config::Pool config_;
  std::vector<std::unique_ptr<Member>> members_;
  std::shared_ptr<const policy::MaglevTable> primaryTable_;
  std::shared_ptr<const policy::MaglevTable> backupTable_;
  __kernel_timespec connectTimeout_{};
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

 private:
  struct Group {
    std::vector<Member*> members;
    std::unique_ptr<policy::Policy> policy;
  };
  Member* pickFrom(Group& group, const policy::PickContext& base, std::span<Member* const> tried,
                   bool ignoreHealth);
  uint64_t keyHash(const sockaddr_storage& client) const;
  std::unique_ptr<policy::Policy> makeGroupPolicy(const Group& group, bool backup) const;

  const Pool& pool_;
  Group primary_;
  Group backup_;
  SplitMix64 random_;
};

}  // namespace lb
