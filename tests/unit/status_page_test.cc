// The status page and its charts, rendered from a History and an EventLog
// fed here (no clock, no sockets): points drawn per sample, gaps that
// break a line, rates beside the counts, how long a member has been in
// its state, the latest events newest first, and hostile names escaped.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "lb/history.h"
#include "lb/metrics.h"
#include "lb/runtime.h"
#include "lb/status_chart.h"
#include "lb/status_page.h"

namespace lb {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // unix ms of the first sample
constexpr int64_t kStep = 2000;

HistoryReading reading(std::string owner, std::string member, uint64_t active, uint64_t started,
                       std::string_view state = {}) {
  HistoryReading r;
  r.key = SeriesKey{std::move(owner), std::move(member)};
  r.active = active;
  r.started = started;
  r.bytesIn = started * 1000;
  r.bytesOut = started * 3000;
  r.state = state;
  return r;
}

// The value of attribute `name` of the first element that has it after `from`.
std::string attribute(const std::string& markup, std::string_view name, size_t from = 0) {
  std::string key = fmt::format(" {}=\"", name);
  size_t at = markup.find(key, from);
  if (at == std::string::npos) return "";
  at += key.size();
  return markup.substr(at, markup.find('"', at) - at);
}

// The <path> of `metric` in a rendered chart: {data-points, d}.
std::pair<int, std::string> pathOf(const std::string& svg, std::string_view metric) {
  size_t at = svg.find(fmt::format("data-metric=\"{}\"", metric));
  if (at == std::string::npos) return {-1, ""};
  return {std::stoi(attribute(svg, "data-points", at)), attribute(svg, "d", at)};
}

size_t count(const std::string& text, char c) { return static_cast<size_t>(std::count(text.begin(), text.end(), c)); }

TEST(StatusChart, OnePointPerSampleAndGapsBreakTheLine) {
  History history;
  for (int i = 0; i < 10; ++i) {
    std::vector<HistoryReading> readings = {reading("front", "", 5 + i, 10 * i)};
    if (i != 4 && i != 5) readings.push_back(reading("p", "m1", i, 10 * i, "up"));
    history.sample(kT0 + i * kStep, readings);
  }
  std::string listener = renderChart(history, {"front", ""}, ChartKind::Connections);
  EXPECT_EQ(attribute(listener, "data-series"), "front");
  EXPECT_EQ(attribute(listener, "data-chart"), "connections");
  EXPECT_EQ(attribute(listener, "data-samples"), "10");
  auto [points, d] = pathOf(listener, "active");
  EXPECT_EQ(points, 10) << listener;
  EXPECT_EQ(count(d, 'M'), 1u) << d;
  EXPECT_EQ(count(d, 'L'), 9u) << d;
  EXPECT_NE(listener.find("<title>front: active connections (now 14, max 14)"), std::string::npos) << listener;

  // m1 missed samples 4 and 5: two lines, 8 points.
  std::string member = renderChart(history, {"p", "m1"}, ChartKind::Connections);
  EXPECT_EQ(attribute(member, "data-series"), "p/m1");
  std::tie(points, d) = pathOf(member, "active");
  EXPECT_EQ(points, 8) << member;
  EXPECT_EQ(count(d, 'M'), 2u) << d;
  EXPECT_EQ(count(d, 'L'), 6u) << d;

  // Rates: as many points as History has values, whatever it does with the first.
  std::optional<History::Series> series = history.series({"p", "m1"});
  ASSERT_TRUE(series);
  for (HistoryMetric metric : {HistoryMetric::BytesInPerSecond, HistoryMetric::BytesOutPerSecond}) {
    const auto& values = series->values[static_cast<size_t>(metric)];
    auto finite = static_cast<int>(std::count_if(values.begin(), values.end(), [](float v) { return !std::isnan(v); }));
    std::string throughput = renderChart(history, {"p", "m1"}, ChartKind::Throughput);
    EXPECT_EQ(pathOf(throughput, toString(metric)).first, finite) << throughput;
  }
  EXPECT_EQ(renderChart(history, {"p", "nobody"}, ChartKind::Connections), "<span class=\"muted\">no history</span>");
}

TEST(StatusChart, ALoneValueIsADot) {
  History history;
  history.sample(kT0, {reading("front", "", 3, 0)});
  std::string svg = renderChart(history, {"front", ""}, ChartKind::Connections);
  auto [points, d] = pathOf(svg, "active");
  EXPECT_EQ(points, 1);
  EXPECT_EQ(count(d, 'M'), 1u);
  EXPECT_NE(d.find(" h0"), std::string::npos) << d;  // zero-length: the round cap draws it
}

TEST(StatusChart, Formats) {
  EXPECT_EQ(formatPerSecond(NAN), "-");
  EXPECT_EQ(formatPerSecond(0), "0/s");
  EXPECT_EQ(formatPerSecond(2.5f), "2.5/s");
  EXPECT_EQ(formatPerSecond(120), "120/s");
  EXPECT_EQ(formatBytesPerSecond(512), "512 B/s");
  EXPECT_EQ(formatBytesPerSecond(1536), "1.5 KiB/s");
  EXPECT_EQ(formatBytesPerSecond(50.0f * 1024 * 1024), "50 MiB/s");
  EXPECT_EQ(formatMillis(0.25f), "0.25 ms");
  EXPECT_EQ(formatMillis(12.4f), "12 ms");
  EXPECT_EQ(formatMillis(1500), "1.5 s");
  EXPECT_EQ(formatDuration(45'900), "45s");
  EXPECT_EQ(formatDuration(192'000), "3m 12s");
  EXPECT_EQ(formatDuration(2 * 3600'000 + 5 * 60'000), "2h 05m");
  EXPECT_EQ(formatDuration(-5), "0s");
  EXPECT_EQ(htmlEscape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

// ---------------------------------------------------------------- the page

constexpr std::string_view kHostile = "<script>alert(\"m\")</script>'&";

std::shared_ptr<const Runtime> runtimeWith(std::string_view memberName) {
  std::string quoted;  // a TOML basic string's content
  for (char c : memberName) quoted += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  std::string text = fmt::format(
      "[[listener]]\nname = \"front\"\nbind = \"127.0.0.1:8080\"\npool = \"p\"\n"
      "[pool.p]\n[[pool.p.member]]\nname = \"m1\"\naddress = \"127.0.0.1:9001\"\n"
      "[[pool.p.member]]\nname = \"{}\"\naddress = \"127.0.0.1:9002\"\n",
      quoted);
  config::LoadResult result = config::loadString(text, "x.toml");
  EXPECT_TRUE(result.config.has_value()) << (result.errors.empty() ? "" : config::formatError(result.errors[0]));
  return buildRuntime(*result.config, nullptr, nullptr, nullptr);
}

struct StatusPage : testing::Test {
  std::shared_ptr<const Runtime> runtime = runtimeWith(kHostile);
  History history;
  EventLog events;
  ReportSources sources() const {
    ReportSources s;
    s.runtime = runtime.get();
    s.history = &history;
    s.events = const_cast<EventLog*>(&events);
    return s;
  }
};

TEST_F(StatusPage, RatesChartsAndStateSince) {
  ASSERT_TRUE(runtime);
  for (int i = 0; i < 4; ++i)
    history.sample(kT0 + i * kStep, {reading("front", "", 2, 20 * i), reading("p", "m1", 1, 20 * i, "up"),
                                     reading("p", std::string(kHostile), 1, 0, "up")});
  std::string page = renderStatusPage(sources(), kT0 + 3 * kStep + 192'000);
  // 20 sessions every 2 s: 10/s, 10 kB in and 30 kB out each second.
  size_t row = page.find("<tr data-member=\"m1\" data-state=\"up\">");
  ASSERT_NE(row, std::string::npos) << page;
  std::string m1 = page.substr(row, page.find("</tr>", row) - row);
  EXPECT_NE(m1.find(">10/s<"), std::string::npos) << m1;
  EXPECT_NE(m1.find(">9.8 KiB/s<"), std::string::npos) << m1;
  EXPECT_NE(m1.find(">29 KiB/s<"), std::string::npos) << m1;
  // In "up" since the first sample (3 samples and 192 s ago).
  EXPECT_NE(m1.find(">for 3m 18s<"), std::string::npos) << m1;
  EXPECT_NE(m1.find("data-series=\"p/m1\" data-chart=\"connections\" data-samples=\"4\""), std::string::npos) << m1;
  EXPECT_NE(m1.find("data-series=\"p/m1\" data-chart=\"throughput\""), std::string::npos) << m1;
  EXPECT_NE(page.find("data-series=\"front\" data-chart=\"connections\" data-samples=\"4\""), std::string::npos);
  EXPECT_NE(page.find("id=\"history\" data-samples=\"4\""), std::string::npos);
}

TEST_F(StatusPage, LatestEventsNewestFirst) {
  ASSERT_TRUE(runtime);
  for (int i = 1; i <= static_cast<int>(kStatusPageEvents) + 5; ++i)
    events.add(kT0 + i * 1000, i % 2 ? EventKind::Health : EventKind::Admin, fmt::format("event {}", i), "p", "m1",
               i % 2 ? "" : "127.0.0.1:5555");
  std::string page = renderStatusPage(sources(), kT0);
  std::vector<int> ids;  // of every <tr data-event="ID"> in order
  constexpr std::string_view kRow = "<tr data-event=\"";
  for (size_t at = page.find(kRow); at != std::string::npos; at = page.find(kRow, at + 1))
    ids.push_back(std::stoi(page.substr(at + kRow.size())));
  ASSERT_EQ(ids.size(), kStatusPageEvents) << page;
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<int>(kStatusPageEvents + 5 - i));
  EXPECT_NE(page.find("<td>event 25</td>"), std::string::npos);
  EXPECT_EQ(page.find("<td>event 5</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>127.0.0.1:5555</td>"), std::string::npos);
  EXPECT_NE(page.find("href=\"/events\""), std::string::npos);
}

// A member named like markup, and events carrying it: nowhere raw.
TEST_F(StatusPage, HostileNamesAreEscaped) {
  ASSERT_TRUE(runtime);
  history.sample(kT0, {reading("p", std::string(kHostile), 1, 0, "up")});
  events.add(kT0, EventKind::Admin, std::string("drain ") + std::string(kHostile), "p", std::string(kHostile),
             std::string(kHostile));
  std::string page = renderStatusPage(sources(), kT0);
  EXPECT_EQ(page.find("<script>alert"), std::string::npos) << page;
  EXPECT_EQ(page.find("alert(\"m\")"), std::string::npos);
  EXPECT_EQ(page.find("</script>'"), std::string::npos);
  std::string escaped = "&lt;script&gt;alert(&quot;m&quot;)&lt;/script&gt;&#39;&amp;";
  EXPECT_NE(page.find("data-member=\"" + escaped + "\""), std::string::npos) << page;
  EXPECT_NE(page.find("<table data-pool=\"p\">"), std::string::npos);
  EXPECT_NE(page.find("data-series=\"p/" + escaped + "\""), std::string::npos);
  EXPECT_NE(page.find("<td>p/" + escaped + "</td><td>" + escaped + "</td><td>drain " + escaped + "</td>"),
            std::string::npos);
  // The page's own one script, and no other.
  size_t scripts = 0;
  for (size_t at = page.find("<script"); at != std::string::npos; at = page.find("<script", at + 1)) ++scripts;
  EXPECT_EQ(scripts, 1u);
}

// Readable without JavaScript: the refresh is a <meta> inside <noscript>,
// the controls are marked js-only, and nothing is a <form> that could put
// the token into a URL.
TEST_F(StatusPage, WorksWithoutJavaScriptAndHasNoForm) {
  ASSERT_TRUE(runtime);
  std::string page = renderStatusPage(sources(), kT0);
  EXPECT_NE(page.find("<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript>"), std::string::npos);
  EXPECT_EQ(page.find("<form"), std::string::npos);
  EXPECT_NE(page.find("<section id=\"controls\" class=\"js-only\""), std::string::npos);
  EXPECT_NE(page.find("html:not(.js) .js-only{display:none}"), std::string::npos);
  EXPECT_NE(page.find("<td class=\"js-only controls\"><button type=\"button\" data-action=\"drain\">"),
            std::string::npos);
  EXPECT_NE(page.find("sessionStorage"), std::string::npos);
  EXPECT_EQ(page.find("localStorage"), std::string::npos);
  // Without a history or an event log (tests of one renderer): dashes.
  ReportSources bare;
  bare.runtime = runtime.get();
  std::string plain = renderStatusPage(bare, kT0);
  EXPECT_NE(plain.find("no history"), std::string::npos);
  EXPECT_NE(plain.find("id=\"no-events\""), std::string::npos);
}

}  // namespace
}  // namespace lb
