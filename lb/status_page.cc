#include "lb/status_page.h"

#include <fmt/format.h>

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
  out += "<p class=\"muted\">Refreshes every 2 s. Also: <a href=\"/status\">/status</a> (JSON), "
         "<a href=\"/metrics\">/metrics</a> (Prometheus).</p>\n</body></html>\n";
  return out;
}

}  // namespace lb
