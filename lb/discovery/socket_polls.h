#pragma once
// The resolver's bookkeeping of c-ares's sockets on io_uring: which fd is
// watched for what, and which one-shot poll is in flight for it. Pure: the
// SQEs are made by the two functions it is given, so tests see every poll
// added and removed.
//
// Invariants: at most one poll per watched fd is in flight; its user_data
// is (Owner::Discovery, op Poll, slot fd, generation), the generation being
// new for every poll ever added. A completion is applied only when its fd
// is watched and its generation is that fd's poll in flight, so the
// completion of a poll on a socket c-ares has since closed (or closed and
// opened again under the same fd), or of a poll replaced after a change of
// interest, is dropped. A poll is removed when c-ares stops watching its
// socket (the poll holds a reference to the socket, which would otherwise
// stay open in the kernel) or wants other events.

#include <poll.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>

#include "lb/ring/user_data.h"

namespace lb::discovery {

class SocketPolls {
 public:
  static constexpr uint8_t kOpPoll = 1;
  using AddPoll = std::function<void(int fd, unsigned mask, uint64_t userData)>;
  using RemovePoll = std::function<void(uint64_t userData)>;

  struct Ready {
    int fd = -1;
    bool read = false;
    bool write = false;
  };

  SocketPolls(AddPoll add, RemovePoll remove) : add_(std::move(add)), remove_(std::move(remove)) {}

  // c-ares's socket state callback: watch `fd` for these events (neither:
  // c-ares is closing it).
  void set(int fd, bool readable, bool writable) {
    if (!readable && !writable) {
      auto it = watches_.find(fd);
      if (it == watches_.end()) return;
      if (it->second.armed) remove_(userData(fd, it->second.generation));
      watches_.erase(it);
      return;
    }
    Watch& watch = watches_[fd];
    watch.readable = readable;
    watch.writable = writable;
    if (watch.armed && watch.mask != maskOf(watch)) {
      remove_(userData(fd, watch.generation));
      watch.armed = false;
    }
    if (!watch.armed) arm(fd, watch);
  }

  // A completion with Owner::Discovery: the directions c-ares should
  // process on that fd, or nullopt when it is stale (or not a poll's). The
  // fd is then unarmed until rearm().
  std::optional<Ready> onCompletion(uint64_t data, int result) {
    ring::Tag tag = ring::unpack(data);
    if (tag.owner != ring::Owner::Discovery || tag.op != kOpPoll) return std::nullopt;
    int fd = static_cast<int>(tag.slot);
    auto it = watches_.find(fd);
    if (it == watches_.end() || !it->second.armed || it->second.generation != tag.generation) return std::nullopt;
    Watch& watch = it->second;
    watch.armed = false;
    // An error (POLLERR, POLLHUP, a failed poll) is for c-ares to find when
    // it reads or writes: the fd is ready in every direction it wanted.
    bool error = result < 0 || (result & (POLLERR | POLLHUP | POLLNVAL));
    return Ready{fd, watch.readable && (error || (result & POLLIN)),
                 watch.writable && (error || (result & POLLOUT))};
  }

  // After c-ares has processed a Ready fd: polls it again if c-ares still
  // watches it and nothing re-armed it meanwhile.
  void rearm(int fd) {
    auto it = watches_.find(fd);
    if (it != watches_.end() && !it->second.armed) arm(fd, it->second);
  }

  size_t watched() const { return watches_.size(); }
  size_t inFlight() const {
    size_t count = 0;
    for (const auto& [fd, watch] : watches_) count += watch.armed ? 1 : 0;
    return count;
  }

 private:
  struct Watch {
    bool readable = false;
    bool writable = false;
    bool armed = false;       // a poll is in flight
    uint32_t generation = 0;  // of that poll
    unsigned mask = 0;        // its events
  };

  static unsigned maskOf(const Watch& watch) {
    return (watch.readable ? POLLIN : 0u) | (watch.writable ? POLLOUT : 0u);
  }
  static uint64_t userData(int fd, uint32_t generation) {
    return ring::pack(ring::Tag{ring::Owner::Discovery, kOpPoll, static_cast<uint32_t>(fd), generation});
  }

  // An fd beyond the slot field cannot be named in user_data: it is left
  // unpolled (its lookups end at their deadline). Descriptor limits keep
  // fds far below 2^23.
  void arm(int fd, Watch& watch) {
    if (fd < 0 || static_cast<uint32_t>(fd) > ring::kMaxSlot) return;
    watch.armed = true;
    watch.generation = nextGeneration_++;
    watch.mask = maskOf(watch);
    add_(fd, watch.mask, userData(fd, watch.generation));
  }

  AddPoll add_;
  RemovePoll remove_;
  std::unordered_map<int, Watch> watches_;
  uint32_t nextGeneration_ = 1;
};

}  // namespace lb::discovery
