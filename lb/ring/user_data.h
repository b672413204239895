#pragma once
// The one user_data layout for every SQE ringlb submits, on every ring
// (workers, control: signals, tick, admin, prober). An owner tag in the top
// bits says whose completion it is, so owners sharing a ring can never read
// each other's completions, and a value from one owner never decodes as a
// valid value of another.
//
// Layout (64 bits):
//   owner (4, bits 60..63) | op (5, bits 55..59) | slot (23, bits 32..54) |
//   generation (32, bits 0..31)
// `op` is the owner's operation or step; `slot` the index of the thing the
// completion belongs to (session, listener, admin connection, probe target);
// `generation` which life of that slot. A completion whose generation does
// not match the slot's current one is stale and is dropped, so a late
// completion never touches a reused slot. user_data 0 is Owner::None: SQEs
// whose completions carry no work (cancels) use it.
//
// The prober splits `generation` in two: the prober's own id (16 bits) and
// the probe's generation (16 bits), see ProbeData below.

#include <cstdint>

namespace lb::ring {

enum class Owner : uint8_t {
  None = 0,        // no work: cancels and other fire-and-forget SQEs
  WorkerSession,   // op, session slot, session generation
  WorkerListener,  // Accept / AcceptRetry, listener slot
  WorkerTimer,     // Wake / Tick, the worker's own
  ControlSignal,   // the signalfd read
  ControlTick,     // the control thread's periodic timer
  Admin,           // step, connection slot, connection generation
  Prober,          // step, target, prober id, probe generation
  Discovery,       // the DNS resolver's socket polls (lb/discovery/resolver.h)
  Upgrade,         // SIGUSR2: the new process's readiness pipe, read by the old
  Count,
};

constexpr unsigned kOwnerBits = 4;
constexpr unsigned kOpBits = 5;
constexpr unsigned kSlotBits = 23;
static_assert(kOwnerBits + kOpBits + kSlotBits == 32, "the generation keeps the low 32 bits");
static_assert(static_cast<unsigned>(Owner::Count) <= (1u << kOwnerBits));

constexpr uint8_t kMaxOp = (1u << kOpBits) - 1;
constexpr uint32_t kMaxSlot = (1u << kSlotBits) - 1;

struct Tag {
  Owner owner = Owner::None;
  uint8_t op = 0;        // 0..kMaxOp
  uint32_t slot = 0;     // 0..kMaxSlot
  uint32_t generation = 0;

  friend bool operator==(const Tag&, const Tag&) = default;
};

// Fields beyond their limits are cut to their width, never spilled into a
// neighbouring field.
constexpr uint64_t pack(Tag tag) {
  auto owner = static_cast<uint64_t>(static_cast<uint8_t>(tag.owner) & ((1u << kOwnerBits) - 1));
  auto op = static_cast<uint64_t>(tag.op & kMaxOp);
  return (owner << 60) | (op << 55) | (uint64_t{tag.slot & kMaxSlot} << 32) | tag.generation;
}

constexpr Tag unpack(uint64_t raw) {
  return Tag{static_cast<Owner>(raw >> 60), static_cast<uint8_t>((raw >> 55) & kMaxOp),
             static_cast<uint32_t>(raw >> 32) & kMaxSlot, static_cast<uint32_t>(raw)};
}

constexpr uint64_t encodeOwner(Owner owner) { return pack(Tag{owner, 0, 0, 0}); }

// The prober's completions: `prober` tells a current prober's completions
// from a retired one's (see allocateProberId), `generation` one probe of a
// target from the next.
struct ProbeData {
  uint16_t prober = 0;
  uint8_t step = 0;
  uint32_t target = 0;  // 0..kMaxSlot
  uint16_t generation = 0;

  friend bool operator==(const ProbeData&, const ProbeData&) = default;
};

constexpr uint64_t encodeProbe(ProbeData data) {
  return pack(Tag{Owner::Prober, data.step, data.target,
                  (uint32_t{data.prober} << 16) | data.generation});
}

// Only meaningful when unpack(raw).owner == Owner::Prober.
constexpr ProbeData decodeProbe(uint64_t raw) {
  Tag tag = unpack(raw);
  return ProbeData{static_cast<uint16_t>(tag.generation >> 16), tag.op, tag.slot,
                   static_cast<uint16_t>(tag.generation)};
}

// The next prober id after `*next`, skipping every id `inUse` still holds
// (the current prober, retired ones with probes in flight), so a retired
// prober can never receive a current prober's completions however many
// reloads happen while it drains. 65,536 ids cannot all be held: a retired
// prober is dropped as soon as its last cancelled probe has completed.
template <typename InUse>
uint16_t allocateProberId(uint16_t* next, InUse&& inUse) {
  for (uint32_t tries = 0; tries <= UINT16_MAX; ++tries) {
    uint16_t id = (*next)++;
    if (!inUse(id)) return id;
  }
  return (*next)++;  // unreachable in practice (see above)
}

}  // namespace lb::ring

namespace lb {

// A worker's vocabulary on top of the codec: {operation, slot, generation}.
// The owner tag follows from the operation.
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
  Continue0,      // NOP or pause timer: direction 0 resumes later (budget spent, or out of memory)
  Continue1,      // NOP or pause timer: direction 1 resumes later
  Recv0,          // direction 0: receive from the client into a ring buffer
  Recv1,          // direction 1: receive from the member into a ring buffer
  Send0,          // direction 0: send that buffer to the member
  Send1,          // direction 1: send that buffer to the client
  WatchClient,    // poll while connecting: the client reset before its member answered
  LegSend0,       // send of the client TLS leg's output (ciphertext to the client)
  LegSend1,       // send of the member TLS leg's output (ciphertext to the member)
  ProxyHeaderSend,     // send of the PROXY header to a just-connected member
  ProxyHeaderTimeout,  // linked timeout of ProxyHeaderSend
  RecvMultishot0,      // direction 0: the flow's multishot receive (many completions)
  RecvMultishot1,      // direction 1: the same from the member
  Count,
};
static_assert(static_cast<unsigned>(Op::Count) <= ring::kMaxOp + 1u, "Op must fit the codec's op field");

constexpr uint32_t kMaxSlot = ring::kMaxSlot;

struct UserData {
  Op op = Op::Ignore;
  uint32_t slot = 0;        // 0..kMaxSlot
  uint32_t generation = 0;

  friend bool operator==(const UserData&, const UserData&) = default;
};

constexpr ring::Owner ownerOf(Op op) {
  switch (op) {
    case Op::Ignore: return ring::Owner::None;
    case Op::Accept:
    case Op::AcceptRetry: return ring::Owner::WorkerListener;
    case Op::Wake:
    case Op::Tick: return ring::Owner::WorkerTimer;
    default: return ring::Owner::WorkerSession;
  }
}

constexpr uint64_t encode(UserData data) {
  if (data.op == Op::Ignore) return 0;
  return ring::pack(ring::Tag{ownerOf(data.op), static_cast<uint8_t>(data.op), data.slot, data.generation});
}

// A value some other owner encoded, or one whose owner does not match its
// operation, decodes as Ignore: it is never mistaken for a worker's work.
constexpr UserData decode(uint64_t raw) {
  ring::Tag tag = ring::unpack(raw);
  auto op = static_cast<Op>(tag.op);
  if (tag.owner == ring::Owner::None || tag.op >= static_cast<uint8_t>(Op::Count) || op == Op::Ignore ||
      ownerOf(op) != tag.owner)
    return UserData{};
  return UserData{op, tag.slot, tag.generation};
}

}  // namespace lb
