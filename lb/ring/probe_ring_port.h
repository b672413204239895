#pragma once
// health::ProbeRing on lb's shared plumbing: SQEs from the ring owner's
// Submitter, user_data from the one codec (Owner::Prober). health/ declares
// the interface so that it never includes lb/ (see health/probe_ring.h).

#include "health/probe_ring.h"
#include "lb/ring/submitter.h"
#include "lb/ring/user_data.h"

namespace lb::ring {

static_assert(health::kProbeStepLimit <= kMaxOp + 1u, "the codec must carry every probe step");
static_assert(health::kProbeTargetLimit <= kMaxSlot + 1u, "the codec must carry every probe target");

class ProbeRingPort final : public health::ProbeRing {
 public:
  explicit ProbeRingPort(Submitter* submitter) : submitter_(submitter) {}

  io_uring_sqe* getSqe() override { return submitter_->getSqe(); }
  uint64_t userData(uint16_t prober, const health::ProbeOp& op) const override {
    return encodeProbe(ProbeData{prober, op.step, op.target, op.generation});
  }

  // The other way, for the owner's completion loop.
  static health::ProbeOp probeOp(const ProbeData& data) {
    return health::ProbeOp{data.step, data.target, data.generation};
  }

 private:
  Submitter* submitter_;
};

}  // namespace lb::ring
