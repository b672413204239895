#include "lb/history.h"

#include <cmath>
#include <limits>

namespace lb {

namespace {

constexpr float kGap = std::numeric_limits<float>::quiet_NaN();

size_t metricIndex(HistoryMetric metric) { return static_cast<size_t>(metric); }

// A counter's growth since the previous reading; a counter that went back
// was restarted (a member re-created by a reload), so it grew from zero.
uint64_t growth(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

}  // namespace

// One series: its values in slots parallel to History::times_ (slot i of
// every metric belongs to the sample taken at times_[i]), so every series
// advances with every sample, a value or a gap, and the oldest slot is
// overwritten once the ring is full.
struct History::Ring {
  std::array<std::vector<float>, kHistoryMetrics> values;
  // The counters at the previous reading, the rates' base.
  bool counted = false;
  int64_t countedUnixMs = 0;
  uint64_t started = 0;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t failures = 0;
  std::string state;
  int64_t stateSinceUnixMs = 0;
  size_t absentSamples = 0;  // in a row; at kHistorySamples the series is forgotten

  Ring() {
    for (auto& metric : values) metric.assign(kHistorySamples, kGap);
  }

  void record(size_t slot, int64_t unixMs, const HistoryReading& r) {
    values[metricIndex(HistoryMetric::Active)][slot] = static_cast<float>(r.active);
    double seconds = counted ? static_cast<double>(unixMs - countedUnixMs) / 1000.0 : 0.0;
    auto rate = [&](uint64_t now, uint64_t before) {
      // First reading, or a clock that did not move forward: no rate.
      if (seconds <= 0.0) return kGap;
      return static_cast<float>(static_cast<double>(growth(now, before)) / seconds);
    };
    values[metricIndex(HistoryMetric::NewPerSecond)][slot] = rate(r.started, started);
    values[metricIndex(HistoryMetric::BytesInPerSecond)][slot] = rate(r.bytesIn, bytesIn);
    values[metricIndex(HistoryMetric::BytesOutPerSecond)][slot] = rate(r.bytesOut, bytesOut);
    values[metricIndex(HistoryMetric::FailuresPerSecond)][slot] = rate(r.failures, failures);
    values[metricIndex(HistoryMetric::ProbeMillis)][slot] =
        r.probeMillis ? static_cast<float>(*r.probeMillis) : kGap;
    counted = true;
    countedUnixMs = unixMs;
    started = r.started;
    bytesIn = r.bytesIn;
    bytesOut = r.bytesOut;
    failures = r.failures;
    if (state != r.state) {
      state = std::string(r.state);
      stateSinceUnixMs = unixMs;
    }
    absentSamples = 0;
  }

  void gap(size_t slot) {
    for (auto& metric : values) metric[slot] = kGap;
    ++absentSamples;
  }
};

std::string_view toString(HistoryMetric metric) {
  switch (metric) {
    case HistoryMetric::Active: return "active";
    case HistoryMetric::NewPerSecond: return "new_per_second";
    case HistoryMetric::BytesInPerSecond: return "bytes_in_per_second";
    case HistoryMetric::BytesOutPerSecond: return "bytes_out_per_second";
    case HistoryMetric::FailuresPerSecond: return "failures_per_second";
    case HistoryMetric::ProbeMillis: return "probe_ms";
    case HistoryMetric::Count: break;
  }
  return "unknown";
}

History::History() = default;
History::~History() = default;

void History::sample(int64_t unixMs, const std::vector<HistoryReading>& readings) {
  size_t slot = next_;
  if (times_.size() < kHistorySamples)
    times_.push_back(unixMs);
  else
    times_[slot] = unixMs;
  next_ = (next_ + 1) % kHistorySamples;
  ++taken_;

  std::map<SeriesKey, const HistoryReading*> byKey;
  for (const auto& r : readings) byKey.emplace(r.key, &r);

  // Series without a reading first: forgetting those absent long enough
  // frees room for the new ones below.
  for (auto it = series_.begin(); it != series_.end();) {
    if (byKey.contains(it->first)) {
      ++it;
      continue;
    }
    it->second.gap(slot);
    if (it->second.absentSamples >= kHistorySamples)
      it = series_.erase(it);
    else
      ++it;
  }

  // In the readings' order: when there is no room left, those read first
  // (the control thread reads listeners before members) are kept.
  untracked_ = 0;
  for (const auto& reading : readings) {
    const SeriesKey& key = reading.key;
    if (byKey[key] != &reading) continue;  // a key read twice: its first reading counts
    auto it = series_.find(key);
    if (it == series_.end()) {
      if (series_.size() >= kHistoryMaxSeries) {
        ++untracked_;
        continue;
      }
      it = series_.emplace(key, Ring{}).first;
    }
    it->second.record(slot, unixMs, reading);
  }
}

void History::noteState(const SeriesKey& key, std::string_view state, int64_t unixMs) {
  auto it = series_.find(key);
  if (it == series_.end() || it->second.state == state) return;
  it->second.state = std::string(state);
  it->second.stateSinceUnixMs = unixMs;
}

std::optional<History::Series> History::series(const SeriesKey& key) const {
  auto it = series_.find(key);
  if (it == series_.end()) return std::nullopt;
  Series out;
  // Oldest first: before the ring is full that is slot 0, after, next_.
  size_t first = times_.size() < kHistorySamples ? 0 : next_;
  for (size_t m = 0; m < kHistoryMetrics; ++m) {
    out.values[m].reserve(times_.size());
    for (size_t i = 0; i < times_.size(); ++i)
      out.values[m].push_back(it->second.values[m][(first + i) % kHistorySamples]);
  }
  out.state = it->second.state;
  out.stateSinceUnixMs = it->second.stateSinceUnixMs;
  return out;
}

float History::latest(const SeriesKey& key, HistoryMetric metric) const {
  auto it = series_.find(key);
  if (it == series_.end() || taken_ == 0) return kGap;
  size_t slot = (next_ + kHistorySamples - 1) % kHistorySamples;
  return it->second.values[metricIndex(metric)][slot];
}

std::optional<std::pair<std::string_view, int64_t>> History::stateSince(const SeriesKey& key) const {
  auto it = series_.find(key);
  if (it == series_.end()) return std::nullopt;
  return std::pair<std::string_view, int64_t>(it->second.state, it->second.stateSinceUnixMs);
}

std::vector<int64_t> History::times() const {
  std::vector<int64_t> out;
  out.reserve(times_.size());
  size_t first = times_.size() < kHistorySamples ? 0 : next_;
  for (size_t i = 0; i < times_.size(); ++i) out.push_back(times_[(first + i) % kHistorySamples]);
  return out;
}

size_t History::samples() const { return times_.size(); }
size_t History::tracked() const { return series_.size(); }
size_t History::untracked() const { return untracked_; }

size_t History::valueBytes() const {
  size_t bytes = 0;
  for (const auto& [key, ring] : series_)
    for (const auto& metric : ring.values) bytes += metric.capacity() * sizeof(float);
  return bytes;
}

}  // namespace lb
