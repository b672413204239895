#include "lb/status_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include "lb/status_chart.h"
#include "lb/status_page_script.h"

namespace lb {
namespace {

using Out = std::back_insert_iterator<std::string>;

std::string html(std::string_view text) { return htmlEscape(text); }

constexpr std::string_view kHead = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="2"></noscript>
<title>ringlb status</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:2em}
table{border-collapse:collapse;min-width:40em}
th,td{text-align:left;padding:4px 12px;border-bottom:1px solid #ddd;vertical-align:middle}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.charts,td.controls,td.nowrap{white-space:nowrap}
.state{font-weight:bold;padding:2px 8px;border-radius:4px;color:#fff}
.up{background:#2e7d32} .down{background:#c62828} .draining{background:#ef6c00}
.muted{color:#777}
svg.chart{background:#fafafa;border:1px solid #eee;margin-right:4px;vertical-align:middle}
svg.chart path{fill:none;stroke-width:1.5;stroke-linecap:round;stroke-linejoin:round;
  vector-effect:non-scaling-stroke}
svg.chart .line1{stroke:#1565c0} svg.chart .line2{stroke:#ef6c00}
.key1{color:#1565c0} .key2{color:#ef6c00}
html:not(.js) .js-only{display:none}
#controls{padding:8px 12px;background:#f5f5f5;border-radius:4px;max-width:60em}
#control-result.ok{color:#2e7d32} #control-result.error{color:#c62828;font-weight:bold}
input.weight{width:4em}
</style></head><body>
<h1>ringlb</h1>
<section id="controls" class="js-only" aria-label="admin token">
<label for="token">Admin token</label> <input id="token" type="password" autocomplete="off" size="24">
<button type="button" id="use-token">use</button>
<button type="button" id="forget-token" hidden>forget the token</button>
<span id="token-state" class="muted"></span>
<div id="control-result" role="status" aria-live="polite"></div>
</section>
<noscript><p class="muted">Read-only without JavaScript (refreshed every 2 s). The drain, undrain and weight
controls need JavaScript; without it use <code>ringlb ctl</code> or POST to /pools/POOL/members/MEMBER/ACTION.</p>
</noscript>
<main id="live">
)";

// What a row shows about one series: its current rates (from the latest
// sample), its charts and the state History saw it enter, or dashes where
// no history is kept.
struct SeriesCells {
  std::string newPerSecond = "-", bytesIn = "-", bytesOut = "-", failures = "-", probe = "-";
  std::string charts = "<span class=\"muted\">no history</span>";
  std::string state;  // at the latest sample (or noteState)
  int64_t stateSinceUnixMs = 0;
};

// What every row needs besides its own series: taken once per page.
struct PageContext {
  const ReportSources& s;
  int64_t nowUnixMs;
  std::vector<int64_t> times;  // of the kept samples
};

SeriesCells seriesCells(const PageContext& page, const SeriesKey& key) {
  SeriesCells cells;
  const History* history = page.s.history;
  std::optional<History::Series> series = history ? history->series(key) : std::nullopt;
  if (!series) return cells;
  auto latest = [&](HistoryMetric metric) {
    const std::vector<float>& values = series->values[static_cast<size_t>(metric)];
    return values.empty() ? NAN : values.back();
  };
  cells.newPerSecond = formatPerSecond(latest(HistoryMetric::NewPerSecond));
  cells.bytesIn = formatBytesPerSecond(latest(HistoryMetric::BytesInPerSecond));
  cells.bytesOut = formatBytesPerSecond(latest(HistoryMetric::BytesOutPerSecond));
  cells.failures = formatPerSecond(latest(HistoryMetric::FailuresPerSecond));
  cells.probe = formatMillis(latest(HistoryMetric::ProbeMillis));
  cells.charts = renderChart(*series, page.times, key, ChartKind::Connections) +
                 renderChart(*series, page.times, key, ChartKind::Throughput);
  cells.state = std::move(series->state);
  cells.stateSinceUnixMs = series->stateSinceUnixMs;
  return cells;
}

constexpr std::string_view kChartKey =
    "<span class=\"key1\">&#9632; active</span> <span class=\"key2\">&#9632; new/s</span> | "
    "<span class=\"key1\">&#9632; in</span> <span class=\"key2\">&#9632; out</span>";

void listenerTable(std::string& out, const PageContext& page) {
  const ReportSources& s = page.s;
  fmt::format_to(Out(out),
                 "<h2>listeners</h2>\n<table><tr><th>listener</th><th>bind</th><th>pool</th><th>active</th>"
                 "<th>accepted</th><th>new</th><th>in</th><th>out</th><th>rejected</th><th>{}</th></tr>\n",
                 kChartKey);
  for (const auto& l : s.runtime->listeners) {
    SeriesCells cells = seriesCells(page, SeriesKey{l->config.name, {}});
    fmt::format_to(Out(out),
                   "<tr data-listener=\"{0}\"><td>{0}</td><td>{1}</td><td>{2}</td><td class=\"n\">{3}</td>"
                   "<td class=\"n\">{4}</td><td class=\"n\">{5}</td><td class=\"n\">{6}</td><td class=\"n\">{7}</td>"
                   "<td class=\"n\">{8}</td><td class=\"charts\">{9}</td></tr>\n",
                   html(l->config.name), html(l->config.bind.text), html(l->config.pool),
                   l->state->active.value.load(), l->state->counters.accepted.load(), cells.newPerSecond,
                   cells.bytesIn, cells.bytesOut, cells.failures, cells.charts);
  }
  out += "</table>\n";
}

// "up for 3m 12s": how long the member has been in the state it shows,
// when History saw it enter that state (else nothing: it changed since).
std::string stateFor(const SeriesCells& cells, std::string_view state, int64_t nowUnixMs) {
  if (cells.state != state || cells.stateSinceUnixMs <= 0) return {};
  return fmt::format(" <span class=\"muted\" data-since=\"{}\">for {}</span>", cells.stateSinceUnixMs,
                     formatDuration(nowUnixMs - cells.stateSinceUnixMs));
}

// The last probe: its result and reason, and its duration from History.
std::string lastProbe(const ReportSources& s, const Member& m, const std::string& millis) {
  const health::MemberHealth* h = s.health ? s.health->healthOf(m) : nullptr;
  if (!h) return "-";
  if (h->lastResult() == health::ProbeResult::None) return "pending";
  std::string_view result = h->lastResult() == health::ProbeResult::Passed ? "passed" : "failed";
  return fmt::format("<span data-probe=\"{0}\">{0}</span>{1}{2}", result,
                     h->lastReason().empty() ? "" : ": " + html(h->lastReason()),
                     millis == "-" ? "" : " <span class=\"muted\">in " + millis + "</span>");
}

constexpr int kMemberColumns = 14;

void poolTable(std::string& out, const PageContext& page, const Pool& pool) {
  const ReportSources& s = page.s;
  fmt::format_to(Out(out), "<h2>pool {} <span class=\"muted\">({}{})</span></h2>\n", html(pool.name()),
                 config::toString(pool.config().balance),
                 pool.config().health ? ", health checked" : ", no health checks");
  fmt::format_to(Out(out),
                 "<table data-pool=\"{}\"><tr><th>member</th><th>address</th><th>state</th><th>weight</th>"
                 "<th>active</th><th>connections</th><th>new</th><th>in</th><th>out</th><th>failures</th>"
                 "<th>last probe</th><th>{}</th><th class=\"js-only\">control</th></tr>\n",
                 html(pool.name()), kChartKey);
  for (const auto& m : pool.members()) {
    SeriesKey key{pool.name(), m->name};
    SeriesCells cells = seriesCells(page, key);
    std::string_view state = memberState(*m);
    std::string name = html(m->name);
    fmt::format_to(Out(out),
                   "<tr data-member=\"{0}\" data-state=\"{1}\"><td>{0}{2}</td><td>{3}</td>"
                   "<td class=\"nowrap\"><span class=\"state {1}\">{1}</span>{4}</td><td class=\"n\">{5}</td>"
                   "<td class=\"n\">{6}</td><td class=\"n\">{7}</td>",
                   name, state, m->backup ? " <span class=\"muted\">(backup)</span>" : "",
                   html(m->address.text), stateFor(cells, state, page.nowUnixMs), m->weight.load(),
                   m->active.value.load(), m->counters.connections.load());
    fmt::format_to(Out(out),
                   "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
                   "<td>{}</td><td class=\"charts\">{}</td>",
                   cells.newPerSecond, cells.bytesIn, cells.bytesOut, cells.failures, lastProbe(s, *m, cells.probe),
                   cells.charts);
    fmt::format_to(Out(out),
                   "<td class=\"js-only controls\"><button type=\"button\" data-action=\"drain\">drain</button> "
                   "<button type=\"button\" data-action=\"undrain\">undrain</button> "
                   "<input class=\"weight\" type=\"number\" min=\"1\" max=\"256\" value=\"{}\" "
                   "aria-label=\"weight of {}\"> <button type=\"button\" data-action=\"weight\">set weight</button>"
                   "</td></tr>\n",
                   m->weight.load(), name);
  }
  // A pool whose members all come from DNS has none until it answers.
  if (pool.members().empty())
    fmt::format_to(Out(out), "<tr><td colspan=\"{}\" class=\"muted\">no members</td></tr>\n", kMemberColumns);
  out += "</table>\n";
}

// The newest events first, as the operator reads them.
void eventTable(std::string& out, const ReportSources& s) {
  out += "<h2>events <span class=\"muted\">(the latest; all: <a href=\"/events\">/events</a>)</span></h2>\n";
  if (!s.events || s.events->size() == 0) {
    out += "<p class=\"muted\" id=\"no-events\">none yet</p>\n";
    return;
  }
  out += "<table id=\"events\"><tr><th>time</th><th>kind</th><th>about</th><th>who</th><th>what</th></tr>\n";
  for (const Event* e : s.events->latest(kStatusPageEvents)) {
    std::string about = e->member.empty() ? html(e->pool) : html(e->pool) + "/" + html(e->member);
    fmt::format_to(Out(out),
                   "<tr data-event=\"{0}\" data-kind=\"{1}\"><td>{2}</td><td>{1}</td><td>{3}</td><td>{4}</td>"
                   "<td>{5}</td></tr>\n",
                   e->id, toString(e->kind), isoTime(e->unixMs / 1000), about, html(e->who), html(e->message));
  }
  out += "</table>\n";
}

// Certificates in use, the soonest to expire first.
void certificateTable(std::string& out, const ReportSources& s) {
  std::vector<CertificateRow> rows = certificateRowsSoonestFirst(*s.runtime);
  if (rows.empty()) return;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  out += "<h2>certificates</h2>\n<table><tr><th>used by</th><th>names</th><th>subject</th><th>file</th>"
         "<th>serial</th><th>expires</th></tr>\n";
  for (const CertificateRow& row : rows) {
    const tls::CertificateInfo& c = *row.info;
    std::string names;
    for (const std::string& name : c.names) names += (names.empty() ? "" : ", ") + html(name);
    int64_t left = c.notAfterUnix - now;
    std::string_view state = left <= 0 ? "down" : left <= 14 * 86400 ? "draining" : "up";
    std::string when = left <= 0 ? "expired" : fmt::format("in {} days", left / 86400);
    fmt::format_to(Out(out),
                   "<tr data-certificate=\"{4}\"><td>{0} {1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td>"
                   "<td><span class=\"state {6}\">{7}</span> <span class=\"muted\">{8}</span></td></tr>\n",
                   row.kind, html(row.owner), names, html(c.subject), html(c.file), html(c.serial), state, when,
                   isoTime(c.notAfterUnix));
  }
  out += "</table>\n";
}

// Each [[pool.NAME.discover]]: its last lookup and what the pool has from it.
void discoveryTable(std::string& out, const ReportSources& s) {
  if (!s.discovery) return;
  std::vector<discovery::EntryStatus> entries = s.discovery->status();
  if (entries.empty()) return;
  out += "<h2>discovery</h2>\n<table><tr><th>pool</th><th>name</th><th>type</th><th>last result</th>"
         "<th>at</th><th>records</th><th>members</th></tr>\n";
  for (const discovery::EntryStatus& e : entries) {
    std::string_view result = e.answered ? discovery::toString(e.lastStatus) : "pending";
    std::string_view state = !e.answered                                   ? "draining"
                             : e.lastStatus == discovery::LookupStatus::Ok ? "up"
                                                                           : "down";
    std::string at = "-";
    if (e.answered)
      at = isoTime(std::chrono::duration_cast<std::chrono::seconds>(e.lastAt.time_since_epoch()).count());
    std::string detail = e.lastDetail.empty() ? "" : " <span class=\"muted\">" + html(e.lastDetail) + "</span>";
    fmt::format_to(Out(out),
                   "<tr data-discovery=\"{1}\" data-result=\"{3}\"><td>{0}</td><td>{1}</td><td>{2}</td>"
                   "<td><span class=\"state {4}\">{3}</span>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td></tr>\n",
                   html(e.pool), html(e.name), discovery::typeName(e.type), result, state, detail, at, e.records,
                   e.members);
  }
  out += "</table>\n";
}

}  // namespace

std::string renderStatusPage(const ReportSources& s, int64_t nowUnixMs) {
  std::string out(kHead);
  if (s.history)
    fmt::format_to(Out(out),
                   "<p class=\"muted\" id=\"history\" data-samples=\"{}\">History: {} samples, one every {} s, "
                   "the last {} kept{}.</p>\n",
                   s.history->samples(), s.history->samples(), kHistoryInterval.count(),
                   formatDuration(int64_t(kHistorySamples) * 1000 * kHistoryInterval.count()),
                   s.history->untracked()
                       ? fmt::format(" ({} series not tracked: over {})", s.history->untracked(), kHistoryMaxSeries)
                       : "");
  PageContext page{s, nowUnixMs, s.history ? s.history->times() : std::vector<int64_t>()};
  listenerTable(out, page);
  for (const auto& pool : s.runtime->pools) poolTable(out, page, *pool);
  eventTable(out, s);
  discoveryTable(out, s);
  certificateTable(out, s);
  out += "</main>\n<p class=\"muted\">Refreshes every 2 s. <span id=\"refresh-state\"></span> Also: "
         "<a href=\"/status\">/status</a> (JSON), <a href=\"/events\">/events</a> (JSON), "
         "<a href=\"/metrics\">/metrics</a> (Prometheus).</p>\n<script>";
  out += kStatusPageScript;
  out += "</script>\n</body></html>\n";
  return out;
}

std::string renderStatusPage(const ReportSources& s) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return renderStatusPage(s, std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

}  // namespace lb
