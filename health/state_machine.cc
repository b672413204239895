#include "health/state_machine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace health {
namespace {

// floor(span * random / 2^64): maps a uniform 64-bit value onto [0, span)
// without a 128-bit type (the high word of the full product).
uint64_t scaleBelow(uint64_t span, uint64_t random) {
  constexpr uint64_t kLow = 0xffffffffu;
  uint64_t aHigh = span >> 32, aLow = span & kLow;
  uint64_t bHigh = random >> 32, bLow = random & kLow;
  uint64_t lowLow = aLow * bLow;
  uint64_t carry = aHigh * bLow + (lowLow >> 32);
  uint64_t middle = (carry & kLow) + aLow * bHigh;
  return aHigh * bHigh + (carry >> 32) + (middle >> 32);
}

// A duration in [0, span), placed by `random`; zero when span is not positive.
Duration below(Duration span, uint64_t random) {
  if (span <= Duration::zero()) return Duration::zero();
  uint64_t ticks = scaleBelow(static_cast<uint64_t>(span.count()), random);
  return Duration(static_cast<Duration::rep>(ticks));
}

Options normalized(Options options) {
  options.rise = std::max(options.rise, 1);
  options.fall = std::max(options.fall, 1);
  options.passiveFall = std::max(options.passiveFall, 0);
  options.interval = std::max<Duration>(options.interval, std::chrono::milliseconds(1));
  if (options.downInterval <= Duration::zero()) options.downInterval = options.interval;
  options.downInterval = std::max<Duration>(options.downInterval, std::chrono::milliseconds(1));
  // NaN fails both comparisons and becomes 0 too.
  if (!(options.jitter >= 0.0)) options.jitter = 0.0;
  options.jitter = std::min(options.jitter, 1.0);
  return options;
}

// "1 probe failed (last: timeout)", "3 consecutive probes failed (last: timeout)"
std::string describe(int count, std::string_view noun, std::string_view verb,
                     const std::string& last) {
  std::string text = std::to_string(count);
  text += count == 1 ? " " : " consecutive ";
  text += noun;
  if (count != 1) text += "s";
  text += " ";
  text += verb;
  if (!last.empty()) {
    text += " (last: ";
    text += last;
    text += ")";
  }
  return text;
}

// Saturates instead of overflowing: a member can stay Up for years.
void bump(int& count) {
  if (count < std::numeric_limits<int>::max()) ++count;
}

}  // namespace

MemberHealth::MemberHealth(const Options& options, TimePoint now, uint64_t random, State initial)
    : options_(normalized(options)),
      state_(initial),
      nextProbeAt_(now + below(options_.interval, random)),
      lastTransitionAt_(now) {}

Duration MemberHealth::jittered(Duration period, double jitter, uint64_t random) {
  Duration span(std::llround(static_cast<double>(period.count()) * jitter));
  return period - span / 2 + below(span, random);
}

Duration MemberHealth::currentPeriod() const {
  return state_ == State::Up ? options_.interval : options_.downInterval;
}

Transition MemberHealth::moveTo(State to, std::string reason, TimePoint now) {
  Transition transition{state_, to, std::move(reason)};
  state_ = to;
  ++transitions_;
  lastTransitionAt_ = now;
  consecutivePassiveFailures_ = 0;
  return transition;
}

std::optional<Transition> MemberHealth::onProbeResult(bool passed, std::string reason,
                                                      TimePoint now, uint64_t random) {
  lastResult_ = passed ? ProbeResult::Passed : ProbeResult::Failed;
  lastReason_ = std::move(reason);
  std::optional<Transition> transition;
  if (passed) {
    consecutiveFailures_ = 0;
    bump(consecutivePasses_);
    if (state_ == State::Down && consecutivePasses_ >= options_.rise) {
      std::string why = describe(consecutivePasses_, "probe", "passed", lastReason_);
      transition = moveTo(State::Up, std::move(why), now);
    }
  } else {
    consecutivePasses_ = 0;
    bump(consecutiveFailures_);
    if (state_ == State::Up && consecutiveFailures_ >= options_.fall) {
      std::string why = describe(consecutiveFailures_, "probe", "failed", lastReason_);
      transition = moveTo(State::Down, std::move(why), now);
    }
  }
  nextProbeAt_ = now + jittered(currentPeriod(), options_.jitter, random);
  return transition;
}

std::optional<Transition> MemberHealth::onPassiveFailure(std::string reason, TimePoint now,
                                                         uint64_t random) {
  if (state_ == State::Down) return std::nullopt;
  bump(consecutivePassiveFailures_);
  if (options_.passiveFall == 0 || consecutivePassiveFailures_ < options_.passiveFall) {
    return std::nullopt;
  }
  std::string why = describe(consecutivePassiveFailures_, "connect", "failed", reason);
  consecutivePasses_ = 0;
  Transition transition = moveTo(State::Down, std::move(why), now);
  TimePoint soon = now + jittered(options_.downInterval, options_.jitter, random);
  nextProbeAt_ = std::min(nextProbeAt_, soon);
  return transition;
}

void MemberHealth::onPassiveSuccess() { consecutivePassiveFailures_ = 0; }

}  // namespace health
