#include "lb/history.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace lb {
namespace {

const SeriesKey kListener{"web", ""};
const SeriesKey kMember{"pool", "m1"};

HistoryReading reading(const SeriesKey& key, uint64_t started, uint64_t bytesIn = 0, uint64_t bytesOut = 0,
                       uint64_t failures = 0) {
  HistoryReading r;
  r.key = key;
  r.started = started;
  r.bytesIn = bytesIn;
  r.bytesOut = bytesOut;
  r.failures = failures;
  return r;
}

std::vector<float> valuesOf(const History& h, const SeriesKey& key, HistoryMetric metric) {
  auto s = h.series(key);
  EXPECT_TRUE(s.has_value());
  if (!s) return {};
  return s->values[static_cast<size_t>(metric)];
}

TEST(History, RatesAreCounterDeltasOverTheRealTimeBetweenSamples) {
  History h;
  h.sample(10'000, {reading(kListener, 100, 1000, 4000, 3)});
  // The first sample of a series has nothing to take a delta from.
  EXPECT_TRUE(std::isnan(h.latest(kListener, HistoryMetric::NewPerSecond)));
  EXPECT_TRUE(std::isnan(h.latest(kListener, HistoryMetric::BytesInPerSecond)));
  // 2 s later: +20 sessions, +2000 bytes in, +8000 out, +1 failure.
  h.sample(12'000, {reading(kListener, 120, 3000, 12'000, 4)});
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::NewPerSecond), 10.0f);
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::BytesInPerSecond), 1000.0f);
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::BytesOutPerSecond), 4000.0f);
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::FailuresPerSecond), 0.5f);
  // A late tick: 4 s passed, the rate is over 4 s, not the nominal 2.
  h.sample(16'000, {reading(kListener, 160)});
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::NewPerSecond), 10.0f);
  EXPECT_EQ(h.times(), (std::vector<int64_t>{10'000, 12'000, 16'000}));
  EXPECT_EQ(h.samples(), 3u);
}

TEST(History, LevelsAndProbeTimesAreKeptAsRead) {
  History h;
  HistoryReading r = reading(kMember, 0);
  r.active = 7;
  r.probeMillis = 12.5;
  h.sample(1000, {r});
  r.active = 3;
  r.probeMillis.reset();  // not probed: a gap
  h.sample(3000, {r});
  EXPECT_EQ(valuesOf(h, kMember, HistoryMetric::Active), (std::vector<float>{7, 3}));
  auto probes = valuesOf(h, kMember, HistoryMetric::ProbeMillis);
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_FLOAT_EQ(probes[0], 12.5f);
  EXPECT_TRUE(std::isnan(probes[1]));
}

TEST(History, ASeriesWithoutAReadingGetsAGapAndALateStarterGapsBeforeIt) {
  History h;
  h.sample(1000, {reading(kListener, 0)});
  h.sample(3000, {reading(kListener, 10), reading(kMember, 0)});
  h.sample(5000, {reading(kMember, 4)});
  h.sample(7000, {reading(kListener, 30), reading(kMember, 8)});

  auto listener = valuesOf(h, kListener, HistoryMetric::NewPerSecond);
  ASSERT_EQ(listener.size(), 4u);
  EXPECT_TRUE(std::isnan(listener[0]));
  EXPECT_FLOAT_EQ(listener[1], 5.0f);
  EXPECT_TRUE(std::isnan(listener[2]));  // absent
  EXPECT_FLOAT_EQ(listener[3], 5.0f);    // 20 over the 4 s since its last reading

  auto member = valuesOf(h, kMember, HistoryMetric::NewPerSecond);
  ASSERT_EQ(member.size(), 4u);
  EXPECT_TRUE(std::isnan(member[0]));  // did not exist yet
  EXPECT_TRUE(std::isnan(member[1]));  // its first reading
  EXPECT_FLOAT_EQ(member[2], 2.0f);
  EXPECT_FLOAT_EQ(member[3], 2.0f);
}

TEST(History, TheRingKeepsTheNewestSamplesInOrder) {
  History h;
  const size_t total = kHistorySamples + 37;
  for (size_t i = 0; i < total; ++i) {
    HistoryReading r = reading(kListener, 0);
    r.active = i;
    h.sample(static_cast<int64_t>(i) * 2000, {r});
  }
  EXPECT_EQ(h.samples(), kHistorySamples);
  std::vector<int64_t> times = h.times();
  ASSERT_EQ(times.size(), kHistorySamples);
  auto active = valuesOf(h, kListener, HistoryMetric::Active);
  ASSERT_EQ(active.size(), kHistorySamples);
  for (size_t i = 0; i < kHistorySamples; ++i) {
    size_t taken = total - kHistorySamples + i;  // the oldest 37 were dropped
    EXPECT_EQ(times[i], static_cast<int64_t>(taken) * 2000) << i;
    EXPECT_EQ(active[i], static_cast<float>(taken)) << i;
  }
  EXPECT_EQ(h.latest(kListener, HistoryMetric::Active), static_cast<float>(total - 1));
}

TEST(History, ACounterThatWentBackCountsFromZero) {
  History h;
  h.sample(1000, {reading(kMember, 500, 90'000)});
  // The member was re-created by a reload: its counters start again.
  h.sample(3000, {reading(kMember, 6, 4000)});
  EXPECT_FLOAT_EQ(h.latest(kMember, HistoryMetric::NewPerSecond), 3.0f);
  EXPECT_FLOAT_EQ(h.latest(kMember, HistoryMetric::BytesInPerSecond), 2000.0f);
  h.sample(5000, {reading(kMember, 10, 6000)});
  EXPECT_FLOAT_EQ(h.latest(kMember, HistoryMetric::NewPerSecond), 2.0f);
}

TEST(History, AClockThatDidNotMoveGivesNoRate) {
  History h;
  h.sample(5000, {reading(kListener, 0)});
  h.sample(5000, {reading(kListener, 10)});
  EXPECT_TRUE(std::isnan(h.latest(kListener, HistoryMetric::NewPerSecond)));
  h.sample(4000, {reading(kListener, 20)});  // stepped back
  EXPECT_TRUE(std::isnan(h.latest(kListener, HistoryMetric::NewPerSecond)));
  h.sample(6000, {reading(kListener, 24)});
  EXPECT_FLOAT_EQ(h.latest(kListener, HistoryMetric::NewPerSecond), 2.0f);
}

std::vector<HistoryReading> manyMembers(size_t count, size_t from = 0) {
  std::vector<HistoryReading> out;
  for (size_t i = from; i < from + count; ++i) out.push_back(reading({"big", "m" + std::to_string(i)}, i));
  return out;
}

TEST(History, SeriesAreBoundedAndTheRefusedAreCounted) {
  History h;
  h.sample(1000, manyMembers(kHistoryMaxSeries + 40));
  EXPECT_EQ(h.tracked(), kHistoryMaxSeries);
  EXPECT_EQ(h.untracked(), 40u);
  EXPECT_LE(h.valueBytes(), kHistoryMaxSeries * kHistorySeriesBytes);
  // Those read first are kept (the control thread reads listeners first).
  std::vector<HistoryReading> readings = manyMembers(kHistoryMaxSeries + 40);
  for (size_t i = 0; i < readings.size(); ++i) {
    EXPECT_EQ(h.series(readings[i].key).has_value(), i < kHistoryMaxSeries) << i;
    if (i >= kHistoryMaxSeries) {
      EXPECT_TRUE(std::isnan(h.latest(readings[i].key, HistoryMetric::Active)));
    }
  }
  // Fewer members now: nothing refused at this sample.
  h.sample(3000, manyMembers(10));
  EXPECT_EQ(h.untracked(), 0u);
}

TEST(History, ASeriesAbsentForTheWholeWindowIsForgottenAndMakesRoom) {
  History h;
  h.sample(0, manyMembers(kHistoryMaxSeries));
  // Other members from now on: the old ones are absent, the new refused.
  for (size_t i = 1; i < kHistorySamples; ++i) {
    h.sample(static_cast<int64_t>(i) * 2000, manyMembers(5, kHistoryMaxSeries));
    ASSERT_EQ(h.tracked(), kHistoryMaxSeries) << i;
    ASSERT_EQ(h.untracked(), 5u) << i;
  }
  // The kHistorySamples-th sample in a row without them: forgotten, and
  // their room goes to the new members at once.
  h.sample(static_cast<int64_t>(kHistorySamples) * 2000, manyMembers(5, kHistoryMaxSeries));
  EXPECT_EQ(h.tracked(), 5u);
  EXPECT_EQ(h.untracked(), 0u);
  EXPECT_FALSE(h.series({"big", "m0"}).has_value());
  EXPECT_TRUE(h.series({"big", "m" + std::to_string(kHistoryMaxSeries)}).has_value());
}

TEST(History, AMemberBackWithinTheWindowKeepsItsHistory) {
  History h;
  h.sample(0, {reading(kMember, 0)});
  for (size_t i = 1; i + 1 < kHistorySamples; ++i) h.sample(static_cast<int64_t>(i) * 2000, {});
  h.sample(static_cast<int64_t>(kHistorySamples) * 2000, {reading(kMember, 0)});
  auto s = h.series(kMember);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->values[0].front(), 0.0f);
}

TEST(History, StateSinceFollowsSamplesAndNotedChanges) {
  History h;
  HistoryReading r = reading(kMember, 0);
  r.state = "up";
  h.sample(1000, {r});
  h.sample(3000, {r});
  EXPECT_EQ(h.series(kMember)->state, "up");
  EXPECT_EQ(h.series(kMember)->stateSinceUnixMs, 1000);

  // A health transition between samples: exact time, kept by the next
  // sample that sees the same state.
  h.noteState(kMember, "down", 3700);
  EXPECT_EQ(h.series(kMember)->state, "down");
  EXPECT_EQ(h.series(kMember)->stateSinceUnixMs, 3700);
  r.state = "down";
  h.sample(5000, {r});
  EXPECT_EQ(h.series(kMember)->stateSinceUnixMs, 3700);

  // Noting the state it is in already changes nothing.
  h.noteState(kMember, "down", 5500);
  EXPECT_EQ(h.series(kMember)->stateSinceUnixMs, 3700);

  // A change no one noted is dated by the sample that saw it.
  r.state = "draining";
  h.sample(7000, {r});
  EXPECT_EQ(h.series(kMember)->state, "draining");
  EXPECT_EQ(h.series(kMember)->stateSinceUnixMs, 7000);

  // stateSince() says the same without copying the samples.
  auto state = h.stateSince(kMember);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->first, "draining");
  EXPECT_EQ(state->second, 7000);

  // A series not kept is not started by a note.
  h.noteState({"pool", "other"}, "down", 8000);
  EXPECT_FALSE(h.series({"pool", "other"}).has_value());
  EXPECT_FALSE(h.stateSince({"pool", "other"}).has_value());
}

TEST(History, EachSeriesHoldsAFixedRingWhateverItsAge) {
  EXPECT_EQ(kHistorySeriesBytes, kHistoryMetrics * kHistorySamples * sizeof(float));
  History h;
  EXPECT_EQ(h.valueBytes(), 0u);
  h.sample(0, {reading(kListener, 0), reading(kMember, 0)});
  EXPECT_EQ(h.valueBytes(), 2 * kHistorySeriesBytes);
  for (size_t i = 1; i < 3 * kHistorySamples; ++i)
    h.sample(static_cast<int64_t>(i) * 2000, {reading(kListener, i), reading(kMember, i)});
  EXPECT_EQ(h.valueBytes(), 2 * kHistorySeriesBytes);
  for (size_t m = 0; m < kHistoryMetrics; ++m) EXPECT_EQ(h.series(kMember)->values[m].size(), kHistorySamples);
}

TEST(History, MetricNames) {
  EXPECT_EQ(toString(HistoryMetric::Active), "active");
  EXPECT_EQ(toString(HistoryMetric::NewPerSecond), "new_per_second");
  EXPECT_EQ(toString(HistoryMetric::BytesInPerSecond), "bytes_in_per_second");
  EXPECT_EQ(toString(HistoryMetric::BytesOutPerSecond), "bytes_out_per_second");
  EXPECT_EQ(toString(HistoryMetric::FailuresPerSecond), "failures_per_second");
  EXPECT_EQ(toString(HistoryMetric::ProbeMillis), "probe_ms");
}

}  // namespace
}  // namespace lb
