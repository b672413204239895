// GET /status?format=text, what `ringlb ctl status` prints: the status
// page's state as aligned plain-text tables. Rates, probe latency and
// "in state for" come from the history (ReportSources::history); without
// one (or before its first sample) they are "-".
#include "lb/status_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#include "lb/status_page.h"

namespace lb {

std::string humanRate(double bytesPerSecond) {
  if (std::isnan(bytesPerSecond)) return "-";
  double value = std::max(bytesPerSecond, 0.0);
  constexpr std::string_view kUnits[] = {"B/s", "kB/s", "MB/s", "GB/s", "TB/s"};
  size_t unit = 0;
  while (value >= 999.5 && unit + 1 < std::size(kUnits)) {
    value /= 1000;
    ++unit;
  }
  if (unit == 0 || value >= 9.95) return fmt::format("{:.0f} {}", value, kUnits[unit]);
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string humanPerSecond(double perSecond) {
  if (std::isnan(perSecond)) return "-";
  double value = std::max(perSecond, 0.0);
  if (value >= 9950) return fmt::format("{:.0f}k", value / 1000);
  if (value >= 999.5) return fmt::format("{:.1f}k", value / 1000);
  if (value == 0 || value >= 9.95) return fmt::format("{:.0f}", value);
  return fmt::format("{:.1f}", value);
}

std::string humanDuration(int64_t seconds) {
  if (seconds < 60) return fmt::format("{}s", std::max<int64_t>(seconds, 0));
  if (seconds < 3600) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  if (seconds < 86400) return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
  return fmt::format("{}d{:02}h", seconds / 86400, seconds % 86400 / 3600);
}

TextTable::TextTable(std::vector<std::string> headers, std::vector<bool> rightAligned)
    : right_(std::move(rightAligned)) {
  right_.resize(headers.size(), false);
  rows_.push_back(std::move(headers));
}

void TextTable::add(std::vector<std::string> row) {
  row.resize(rows_.front().size());
  rows_.push_back(std::move(row));
}

namespace {

// Characters as a terminal shows them (UTF-8 continuation bytes take no room).
size_t displayWidth(std::string_view text) {
  return static_cast<size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

std::string TextTable::render() const {
  std::vector<size_t> widths(rows_.front().size(), 0);
  for (const auto& row : rows_)
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], displayWidth(row[c]));
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c) line += "  ";
      std::string pad(widths[c] - displayWidth(row[c]), ' ');
      line += right_[c] ? pad + row[c] : row[c] + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

namespace {

// Names come from the config and from DNS: shown escaped, one line each.
std::string shown(std::string_view text) { return config::printable(text, 256); }

float latest(const ReportSources& s, const SeriesKey& key, HistoryMetric metric) {
  return s.history ? s.history->latest(key, metric) : std::nanf("");
}

void listenerTable(std::string& out, const ReportSources& s) {
  TextTable table({"LISTENER", "BIND", "POOL", "ACTIVE", "ACCEPTED", "NEW/S", "IN", "OUT"},
                  {false, false, false, true, true, true, true, true});
  for (const auto& l : s.runtime->listeners) {
    SeriesKey key{l->config.name, {}};
    table.add({shown(l->config.name), l->config.bind.text, shown(l->config.pool),
               fmt::format("{}", l->state->active.value.load()),
               fmt::format("{}", l->state->counters.accepted.load()),
               humanPerSecond(latest(s, key, HistoryMetric::NewPerSecond)),
               humanRate(latest(s, key, HistoryMetric::BytesInPerSecond)),
               humanRate(latest(s, key, HistoryMetric::BytesOutPerSecond))});
  }
  out += table.render();
}

// "passed (1.2 ms)", "failed: connection refused (3.0 ms)", "pending", or
// "-" for a member whose pool has no health checks.
std::string lastProbe(const ReportSources& s, const Member& m, const SeriesKey& key) {
  const health::MemberHealth* h = s.health ? s.health->healthOf(m) : nullptr;
  if (!h) return "-";
  if (h->lastResult() == health::ProbeResult::None) return "pending";
  std::string text = h->lastResult() == health::ProbeResult::Passed ? "passed" : "failed";
  if (h->lastResult() == health::ProbeResult::Failed && !h->lastReason().empty())
    text += ": " + config::printable(h->lastReason(), 80);
  float ms = latest(s, key, HistoryMetric::ProbeMillis);
  if (!std::isnan(ms)) text += fmt::format(" ({:.1f} ms)", ms);
  return text;
}

void poolTable(std::string& out, const ReportSources& s, const Pool& pool, int64_t nowMs) {
  fmt::format_to(std::back_inserter(out), "\npool {} ({}, {})\n", shown(pool.name()),
                 config::toString(pool.config().balance),
                 pool.config().health ? "health checked" : "no health checks");
  if (pool.members().empty()) {
    out += "no members\n";
    return;
  }
  TextTable table({"MEMBER", "ADDRESS", "STATE", "FOR", "WEIGHT", "ACTIVE", "CONNECTIONS", "NEW/S", "IN", "OUT",
                   "LAST PROBE"},
                  {false, false, false, true, true, true, true, true, true, true, false});
  for (const auto& m : pool.members()) {
    SeriesKey key{pool.name(), m->name};
    std::string since = "-";
    if (s.history)
      if (auto series = s.history->series(key); series && series->stateSinceUnixMs > 0)
        since = humanDuration((nowMs - series->stateSinceUnixMs) / 1000);
    table.add({shown(m->name) + (m->backup ? " (backup)" : ""), m->address.text, std::string(memberState(*m)),
               since, fmt::format("{}", m->weight.load()), fmt::format("{}", m->active.value.load()),
               fmt::format("{}", m->counters.connections.load()),
               humanPerSecond(latest(s, key, HistoryMetric::NewPerSecond)),
               humanRate(latest(s, key, HistoryMetric::BytesInPerSecond)),
               humanRate(latest(s, key, HistoryMetric::BytesOutPerSecond)), lastProbe(s, *m, key)});
  }
  out += table.render();
}

void discoveryTable(std::string& out, const ReportSources& s) {
  if (!s.discovery) return;
  std::vector<discovery::EntryStatus> entries = s.discovery->status();
  if (entries.empty()) return;
  TextTable table({"DISCOVERY", "POOL", "TYPE", "LAST RESULT", "AT", "RECORDS", "MEMBERS"},
                  {false, false, false, false, false, true, true});
  for (const discovery::EntryStatus& e : entries) {
    std::string result = e.answered ? std::string(discovery::toString(e.lastStatus)) : "pending";
    if (e.answered && !e.lastDetail.empty()) result += ": " + config::printable(e.lastDetail, 80);
    std::string at = "-";
    if (e.answered)
      at = isoTime(std::chrono::duration_cast<std::chrono::seconds>(e.lastAt.time_since_epoch()).count());
    table.add({shown(e.name), shown(e.pool), std::string(discovery::typeName(e.type)), result, at,
               fmt::format("{}", e.records), fmt::format("{}", e.members)});
  }
  out += '\n';
  out += table.render();
}

// Certificates in use, the soonest to expire first.
void certificateTable(std::string& out, const ReportSources& s) {
  std::vector<CertificateRow> rows = certificateRowsSoonestFirst(*s.runtime);
  if (rows.empty()) return;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  TextTable table({"CERTIFICATE", "USED BY", "NAMES", "EXPIRES", "IN", "SERIAL"},
                  {false, false, false, false, true, false});
  for (const CertificateRow& row : rows) {
    const tls::CertificateInfo& c = *row.info;
    std::string names;
    for (const std::string& name : c.names) {
      if (!names.empty()) names += ',';
      names += shown(name);
    }
    int64_t left = c.notAfterUnix - now;
    table.add({shown(c.file), fmt::format("{} {}", row.kind, shown(row.owner)), names, isoTime(c.notAfterUnix),
               left <= 0 ? "expired" : humanDuration(left), shown(c.serial)});
  }
  out += '\n';
  out += table.render();
}

}  // namespace

std::string renderStatusText(const ReportSources& s) {
  int64_t nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::string out;
  listenerTable(out, s);
  for (const auto& pool : s.runtime->pools) poolTable(out, s, *pool, nowMs);
  discoveryTable(out, s);
  certificateTable(out, s);
  return out;
}

}  // namespace lb
