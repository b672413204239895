#pragma once
// What a Prober needs from the io_uring it runs on, supplied by the ring's
// owner. health/ never includes lb/, yet the prober must use the same
// get-an-SQE helper and the same user_data codec as every other owner of
// that ring (so their completions cannot be confused, and a full queue is
// handled one way). So the owner injects both through this interface;
// lb/ring/probe_ring_port.h implements it on lb's Submitter and codec.

#include <liburing.h>

#include <cstdint>

namespace health {

// One step of one probe, as it goes out in user_data and comes back.
struct ProbeOp {
  uint8_t step = 0;        // < kProbeStepLimit
  uint32_t target = 0;     // < kProbeTargetLimit
  uint16_t generation = 0; // the target's probe generation (wraps)
};

// What the codec must carry, at least. The generation may wrap: a target
// starts a new probe only once its previous one has no operation in flight.
constexpr uint32_t kProbeStepLimit = 8;
constexpr uint32_t kProbeTargetLimit = 1u << 20;

class ProbeRing {
 public:
  virtual ~ProbeRing() = default;
  // An SQE to fill, never null.
  virtual io_uring_sqe* getSqe() = 0;
  // user_data for `op` of the prober `prober` (the id it was created with).
  // The owner decodes completions and hands them to that prober's
  // onCompletion() as the same ProbeOp.
  virtual uint64_t userData(uint16_t prober, const ProbeOp& op) const = 0;
};

}  // namespace health
