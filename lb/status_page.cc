#include "lb/status_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace lb {
namespace {

using Out = std::back_insert_iterator<std::string>;

std::string html(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

constexpr std::string_view kHead = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>ringlb status</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:2em}
table{border-collapse:collapse;min-width:40em}
th,td{text-align:left;padding:4px 12px;border-bottom:1px solid #ddd}
.state{font-weight:bold;padding:2px 8px;border-radius:4px;color:#fff}
.up{background:#2e7d32} .down{background:#c62828} .draining{background:#ef6c00}
.muted{color:#777}
</style></head><body>
<h1>ringlb</h1>
)";

void poolTable(std::string& out, const ReportSources& s, const Pool& pool) {
  fmt::format_to(Out(out), "<h2>pool {} <span class=\"muted\">({}{})</span></h2>\n", html(pool.name()),
                 config::toString(pool.config().balance),
                 pool.config().health ? ", health checked" : ", no health checks");
  out += "<table><tr><th>member</th><th>address</th><th>state</th><th>weight</th>"
         "<th>active</th><th>connections</th><th>last probe</th></tr>\n";
  for (const auto& m : pool.members()) {
    std::string probe = "-";
    if (const health::MemberHealth* h = s.health ? s.health->healthOf(*m) : nullptr)
      probe = h->lastReason().empty() ? "pending" : h->lastReason();
    std::string_view state = memberState(*m);
    fmt::format_to(Out(out),
                   "<tr data-member=\"{0}\" data-state=\"{2}\"><td>{0}{6}</td><td>{1}</td>"
                   "<td><span class=\"state {2}\">{2}</span></td><td>{3}</td><td>{4}</td><td>{5}</td>"
                   "<td>{7}</td></tr>\n",
                   html(m->name), html(m->address.text), state, m->weight.load(), m->active.value.load(),
                   m->counters.connections.load(), m->backup ? " <span class=\"muted\">(backup)</span>" : "",
                   html(probe));
  }
  // A pool whose members all come from DNS has none until it answers.
  if (pool.members().empty()) out += "<tr><td colspan=\"7\" class=\"muted\">no members</td></tr>\n";
  out += "</table>\n";
}

// Certificates in use, the soonest to expire first.
void certificateTable(std::string& out, const ReportSources& s) {
  std::vector<CertificateRow> rows = certificateRows(*s.runtime);
  if (rows.empty()) return;
  std::stable_sort(rows.begin(), rows.end(), [](const CertificateRow& a, const CertificateRow& b) {
    return a.info->notAfterUnix < b.info->notAfterUnix;
  });
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

std::string renderStatusPage(const ReportSources& s) {
  std::string out(kHead);
  out += "<table><tr><th>listener</th><th>bind</th><th>pool</th><th>active</th><th>accepted</th></tr>\n";
  for (const auto& l : s.runtime->listeners)
    fmt::format_to(Out(out), "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                   html(l->config.name), html(l->config.bind.text), html(l->config.pool),
                   l->state->active.value.load(), l->state->counters.accepted.load());
  out += "</table>\n";
  for (const auto& pool : s.runtime->pools) poolTable(out, s, *pool);
  discoveryTable(out, s);
  certificateTable(out, s);
  out += "<p class=\"muted\">Refreshes every 2 s. Also: <a href=\"/status\">/status</a> (JSON), "
         "<a href=\"/metrics\">/metrics</a> (Prometheus).</p>\n</body></html>\n";
  return out;
}

}  // namespace lb
