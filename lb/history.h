#pragma once
// Rates and levels over the last minutes, kept in the process so the status
// page can chart them without an external Prometheus. The control thread
// reads every listener's and member's counters each kHistoryInterval and
// hands the readings to sample(); History turns counter deltas into rates
// and keeps the last kHistorySamples of each series in a fixed ring.
//
// Memory is bounded whatever the config: at most kHistoryMaxSeries series
// (listeners and members together; past that, new ones get no history and
// are counted in untracked()), each kHistorySeriesBytes. Series are keyed
// by name, so a member kept across a reload or a DNS change keeps its
// history; one absent from kHistorySamples samples in a row is forgotten.
//
// Pure code: no clock, no I/O. Tests feed readings and times.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lb {

inline constexpr auto kHistoryInterval = std::chrono::seconds(2);
inline constexpr size_t kHistorySamples = 450;  // 15 minutes at kHistoryInterval
inline constexpr size_t kHistoryMaxSeries = 512;

// What one sample of a series holds. Rates are per second over the
// interval since the previous sample.
enum class HistoryMetric : uint8_t {
  Active,             // sessions open at the sample
  NewPerSecond,       // sessions started (listener: accepted; member: reached it)
  BytesInPerSecond,   // client -> member
  BytesOutPerSecond,  // member -> client
  FailuresPerSecond,  // connects refused or timed out (members; listeners: rejected by a limit)
  ProbeMillis,        // the last health probe's duration (members with health checks)
  Count,
};
inline constexpr size_t kHistoryMetrics = static_cast<size_t>(HistoryMetric::Count);
inline constexpr size_t kHistorySeriesBytes = kHistoryMetrics * kHistorySamples * sizeof(float);

std::string_view toString(HistoryMetric metric);  // "active", "new_per_second", ...

// Which object a series follows. member empty: the listener `owner`;
// else member `member` of pool `owner`.
struct SeriesKey {
  std::string owner;
  std::string member;
  auto operator<=>(const SeriesKey&) const = default;
};

// Cumulative counters and levels as read at a sample. Counters may go
// back (a member re-created by a reload starts at zero): that interval's
// rate is then taken from zero, never negative.
struct HistoryReading {
  SeriesKey key;
  uint64_t active = 0;
  uint64_t started = 0;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t failures = 0;
  std::optional<double> probeMillis;  // none: not probed (the sample is a gap)
  std::string_view state;             // members: "up" | "down" | "draining"; listeners: empty
};

class History {
 public:
  History();
  ~History();  // out of line: Ring is complete only in history.cc
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // One series' kept samples, oldest first; a gap (the series did not
  // exist yet, was absent, or had no value) is NaN.
  struct Series {
    std::array<std::vector<float>, kHistoryMetrics> values;
    std::string state;             // at the latest sample
    int64_t stateSinceUnixMs = 0;  // first sample (or noteState) that saw that state
  };

  // Records one sample taken at `unixMs` (wall clock, for the charts'
  // labels). Readings of series not seen before start them (within
  // kHistoryMaxSeries); series without a reading get a gap.
  void sample(int64_t unixMs, const std::vector<HistoryReading>& readings);
  // A state change seen between samples (a health transition, an admin
  // drain), so "in this state since" is exact rather than to the sample.
  void noteState(const SeriesKey& key, std::string_view state, int64_t unixMs);

  // The series of `key` with its samples in order, or none (untracked).
  std::optional<Series> series(const SeriesKey& key) const;
  // The latest sample's value of `metric` (NaN when none).
  float latest(const SeriesKey& key, HistoryMetric metric) const;
  // series(key)'s state and stateSinceUnixMs without copying its samples;
  // none when untracked.
  std::optional<std::pair<std::string_view, int64_t>> stateSince(const SeriesKey& key) const;
  // Sample times, oldest first (as many as series() has values).
  std::vector<int64_t> times() const;
  size_t samples() const;    // taken so far, at most kHistorySamples
  size_t tracked() const;    // series kept
  size_t untracked() const;  // series refused by kHistoryMaxSeries at their last appearance
  // Bytes the kept series' sample rings hold: kHistorySeriesBytes each,
  // so at most kHistoryMaxSeries x kHistorySeriesBytes.
  size_t valueBytes() const;

 private:
  struct Ring;  // defined in history.cc
  std::map<SeriesKey, Ring> series_;
  std::vector<int64_t> times_;  // ring of sample times
  size_t next_ = 0;             // times_ index the next sample goes to
  size_t taken_ = 0;
  size_t untracked_ = 0;
};

}  // namespace lb
