#pragma once
// Rise/fall hysteresis for one member, apart from the probes' I/O. The prober
// asks nextProbeAt(), runs a probe, and reports the result here; the data
// plane reports its own connect outcomes (passive checks). Every input carries
// `now` and, where a period is drawn, a caller-supplied random value, so tests
// drive it with a fake clock and fixed numbers.
//
// States and counters:
//   Up   --`fall` consecutive failed probes-------------------> Down
//   Up   --`passiveFall` consecutive failed connects (if > 0)--> Down
//   Down --`rise` consecutive passed probes-------------------> Up
// A pass resets the failure count and a failure resets the pass count, so at
// most one of consecutivePasses()/consecutiveFailures() is non-zero.
// Invariants: while Up, consecutiveFailures() < fall; while Down,
// consecutivePasses() < rise. The passive count is reset by onPassiveSuccess()
// and by every transition, and passive reports are ignored while Down: the
// way back Up is always `rise` passed probes.
//
// A member starts Up with nothing counted (as HAProxy does): traffic flows as
// soon as the process starts or reloads, and a dead member costs at most
// `fall` probe periods of failed connects, which the data plane already
// retries on another member (and passiveFall shortens). Starting Down would
// refuse all traffic for rise * interval after every start of a pool whose
// members are all healthy. A reload that keeps a member's state passes it as
// `initial`.

#include <cstdint>
#include <optional>
#include <string>

#include "health/health.h"

namespace health {

// Values are normalized, not rejected (config validation owns the error
// messages): rise and fall at least 1, passiveFall at least 0, interval at
// least 1ms, downInterval <= 0 means interval, jitter clamped to [0, 1].
struct Options {
  int rise = 2;
  int fall = 3;
  int passiveFall = 0;  // 0 = passive failures never take a member down
  Duration interval = std::chrono::seconds(2);  // probe period while Up
  Duration downInterval = Duration::zero();     // probe period while Down
  Duration timeout = std::chrono::seconds(1);   // the prober's deadline; unused here
  // Each period p is drawn uniformly from [p - j*p/2, p + j*p/2) (to the
  // nearest clock tick), so probes of many members drift apart.
  double jitter = 0.2;
};

struct Transition {
  State from;
  State to;
  std::string reason;  // e.g. "3 consecutive probes failed (last: timeout)"
};

enum class ProbeResult { None, Passed, Failed };

class MemberHealth {
 public:
  // The first probe is at now + [0, interval), placed by `random`, so that a
  // thousand members configured at once do not probe in one burst.
  MemberHealth(const Options& options, TimePoint now, uint64_t random, State initial = State::Up);

  // Counts one probe and schedules the next at now + a jittered interval
  // (downInterval if the member is Down after this result). Returns the
  // transition this result caused, if any; each transition is returned once.
  std::optional<Transition> onProbeResult(bool passed, std::string reason, TimePoint now,
                                          uint64_t random);

  // A failed connect seen by the data plane. Taking the member down moves the
  // next probe to no later than now + a jittered downInterval; a probe already
  // in flight reschedules anyway when its result arrives.
  std::optional<Transition> onPassiveFailure(std::string reason, TimePoint now, uint64_t random);
  void onPassiveSuccess();

  State state() const { return state_; }
  // When the next probe should start; meaningful while no probe is in flight.
  TimePoint nextProbeAt() const { return nextProbeAt_; }
  const Options& options() const { return options_; }

  int consecutivePasses() const { return consecutivePasses_; }
  int consecutiveFailures() const { return consecutiveFailures_; }
  int consecutivePassiveFailures() const { return consecutivePassiveFailures_; }
  uint64_t transitions() const { return transitions_; }
  ProbeResult lastResult() const { return lastResult_; }
  const std::string& lastReason() const { return lastReason_; }  // of the last probe
  TimePoint lastTransitionAt() const { return lastTransitionAt_; }  // construction until the first

  // `period` drawn from [period - span/2, period - span/2 + span) with
  // span = round(period * jitter); random = 0 gives the lower bound.
  static Duration jittered(Duration period, double jitter, uint64_t random);

 private:
  Transition moveTo(State to, std::string reason, TimePoint now);
  Duration currentPeriod() const;

  Options options_;
  State state_;
  TimePoint nextProbeAt_;
  TimePoint lastTransitionAt_;
  int consecutivePasses_ = 0;
  int consecutiveFailures_ = 0;
  int consecutivePassiveFailures_ = 0;
  uint64_t transitions_ = 0;
  ProbeResult lastResult_ = ProbeResult::None;
  std::string lastReason_;
};

}  // namespace health
