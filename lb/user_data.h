#pragma once
// Every SQE a worker submits carries user_data = {operation, slot, generation}.
// The slot says which session (or listener) the completion belongs to; the
// generation says which life of that slot. A completion whose generation does
// not match the slot's current one is stale and is dropped, so a late
// completion never touches a reused slot.
//
// Layout (64 bits): op in bits 56..63, slot in bits 32..55, generation in 0..31.

#include <cstdint>

namespace lb {

enum class Op : uint8_t {
  Ignore = 0,     // cancel requests: their own completions carry no work
  Accept,         // multishot accept; slot = listener index
  AcceptRetry,    // timer re-arming an accept that stopped (EMFILE, ...)
  Wake,           // eventfd read: the control thread wants attention
  Tick,           // periodic timer: idle timeouts, shutdown deadline
  Connect,        // connect to a member
  ConnectTimeout, // linked timeout of Connect
  PollReadable0,  // direction 0 (client -> member): client readable
  PollReadable1,  // direction 1 (member -> client): member readable
  PollWritable0,  // direction 0: member writable
  PollWritable1,  // direction 1: client writable
  Continue0,      // NOP: direction 0 used its budget, resume it later
  Continue1,      // NOP: direction 1 used its budget, resume it later
  Recv0,          // direction 0: receive from the client into a ring buffer
  Recv1,          // direction 1: receive from the member into a ring buffer
  Send0,          // direction 0: send that buffer to the member
  Send1,          // direction 1: send that buffer to the client
  WatchClient,    // poll while connecting: the client reset before its member answered
  Count,
};

constexpr uint32_t kMaxSlot = (1u << 24) - 1;

struct UserData {
  Op op = Op::Ignore;
  uint32_t slot = 0;        // 0..kMaxSlot
  uint32_t generation = 0;

  friend bool operator==(const UserData&, const UserData&) = default;
};

constexpr uint64_t encode(UserData data) {
  return (uint64_t{static_cast<uint8_t>(data.op)} << 56) |
         (uint64_t{data.slot & kMaxSlot} << 32) | data.generation;
}

constexpr UserData decode(uint64_t raw) {
  return UserData{static_cast<Op>(raw >> 56), static_cast<uint32_t>(raw >> 32) & kMaxSlot,
                  static_cast<uint32_t>(raw)};
}

}  // namespace lb
