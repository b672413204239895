#include "lb/metrics.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <ctime>
#include <limits>

#include "lb/access_log.h"
#include "lb/log.h"

namespace lb {
namespace {

using Out = std::back_insert_iterator<std::string>;

std::string label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(Out(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void histogram(std::string& out, std::string_view name, const std::string& labels,
               const DurationHistogram& h) {
  const auto& bounds = DurationHistogram::kBoundsSeconds;
  for (size_t i = 0; i < bounds.size(); ++i)
    fmt::format_to(Out(out), "{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, bounds[i], h.cumulative(i));
  fmt::format_to(Out(out), "{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.count());
  fmt::format_to(Out(out), "{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, h.sumSeconds(), name,
                 labels, h.count());
}

uint64_t load(const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); }

std::string memberLabels(const Pool& pool, const Member& member) {
  return fmt::format("pool=\"{}\",member=\"{}\"", label(pool.name()), label(member.name));
}

// Emits one family with a line per member.
template <typename Value>
void perMember(std::string& out, const ReportSources& s, std::string_view name, std::string_view type,
               std::string_view help, Value value) {
  family(out, name, type, help);
  for (const auto& pool : s.runtime->pools)
    for (const auto& member : pool->members())
      fmt::format_to(Out(out), "{}{{{}}} {}\n", name, memberLabels(*pool, *member), value(*member));
}

void listenerMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_listener_connections_active", "gauge", "Sessions open on the listener.");
  for (const auto& l : s.runtime->listeners)
    fmt::format_to(Out(out), "ringlb_listener_connections_active{{listener=\"{}\"}} {}\n",
                   label(l->config.name), l->state->active.value.load());
  family(out, "ringlb_listener_connections_total", "counter", "Connections accepted by the listener.");
  for (const auto& l : s.runtime->listeners)
    fmt::format_to(Out(out), "ringlb_listener_connections_total{{listener=\"{}\"}} {}\n",
                   label(l->config.name), load(l->state->counters.accepted));
  family(out, "ringlb_listener_received_bytes_total", "counter",
         "Bytes from clients forwarded to members (added every 64 KiB while a session is open, the rest when it ends).");
  for (const auto& l : s.runtime->listeners)
    fmt::format_to(Out(out), "ringlb_listener_received_bytes_total{{listener=\"{}\"}} {}\n",
                   label(l->config.name), load(l->state->counters.bytesIn));
  family(out, "ringlb_listener_sent_bytes_total", "counter",
         "Bytes from members forwarded to clients (added every 64 KiB while a session is open, the rest when it ends).");
  for (const auto& l : s.runtime->listeners)
    fmt::format_to(Out(out), "ringlb_listener_sent_bytes_total{{listener=\"{}\"}} {}\n",
                   label(l->config.name), load(l->state->counters.bytesOut));
  family(out, "ringlb_listener_rejected_total", "counter",
         "Connections closed before reaching a member: at max_connections (limit), or because "
         "this host ran out of descriptors or memory (local_error).");
  for (const auto& l : s.runtime->listeners) {
    fmt::format_to(Out(out), "ringlb_listener_rejected_total{{listener=\"{}\",reason=\"limit\"}} {}\n",
                   label(l->config.name), load(l->state->counters.rejectedByLimit));
    fmt::format_to(Out(out),
                   "ringlb_listener_rejected_total{{listener=\"{}\",reason=\"local_error\"}} {}\n",
                   label(l->config.name), load(l->state->counters.rejectedByLocalError));
  }
}

// accept_proxy, allow/deny and per-source limits (worker_edge.cc): clients
// closed before any member was picked, by reason; the per-source tables'
// sizes; the sessions open in the whole process ([global] max_connections).
void edgeMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_listener_refused_total", "counter",
         "Clients closed before any member was picked: allow/deny (denied), per-source limits "
         "(source_limit, source_rate, source_table_full), accept_proxy (proxy_header_invalid, "
         "proxy_header_timeout, proxy_not_allowed: a sender outside proxy_from).");
  for (const auto& l : s.runtime->listeners) {
    const EdgeListenerCounters& c = l->state->counters.edge;
    const std::pair<std::string_view, const std::atomic<uint64_t>*> reasons[] = {
        {"denied", &c.denied},
        {"source_limit", &c.sourceLimit},
        {"source_rate", &c.sourceRate},
        {"source_table_full", &c.sourceTableFull},
        {"proxy_header_invalid", &c.proxyHeaderInvalid},
        {"proxy_header_timeout", &c.proxyHeaderTimeout},
        {"proxy_not_allowed", &c.proxyNotAllowed},
    };
    for (const auto& [reason, counter] : reasons)
      fmt::format_to(Out(out), "ringlb_listener_refused_total{{listener=\"{}\",reason=\"{}\"}} {}\n",
                     label(l->config.name), reason, load(*counter));
  }
  family(out, "ringlb_listener_sources_tracked", "gauge",
         "Source addresses in the listener's per-source limit table (at most [global] source_table_size).");
  for (const auto& l : s.runtime->listeners)
    if (l->sourceLimits)
      fmt::format_to(Out(out), "ringlb_listener_sources_tracked{{listener=\"{}\"}} {}\n", label(l->config.name),
                     l->sourceLimits->trackedSources());
  family(out, "ringlb_connections_active", "gauge",
         "Sessions open across every listener ([global] max_connections counts these).");
  fmt::format_to(Out(out), "ringlb_connections_active {}\n", s.runtime->globalSessions->open());
}

// What this host ran out of, by where it was needed (lb/stats.h), and the
// health probes that could not run for the same reasons. None of it is
// counted against a member.
void localErrorMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_local_errors_total", "counter",
         "Descriptors, memory or local ports this host lacked, by where they were needed; "
         "never counted against a member.");
  for (size_t k = 0; k < static_cast<size_t>(LocalError::Count); ++k) {
    auto kind = static_cast<LocalError>(k);
    uint64_t total = 0;
    for (const auto& worker : s.workers) total += worker->stats().localErrors.value(kind);
    fmt::format_to(Out(out), "ringlb_local_errors_total{{kind=\"{}\"}} {}\n", toString(kind), total);
  }
  fmt::format_to(Out(out), "ringlb_local_errors_total{{kind=\"probe\"}} {}\n",
                 health::Prober::localErrors());
}

void memberMetrics(std::string& out, const ReportSources& s) {
  perMember(out, s, "ringlb_member_connections_active", "gauge",
            "Connections attempted or established on the member, across workers.",
            [](const Member& m) { return m.active.value.load(); });
  perMember(out, s, "ringlb_member_connections_total", "counter", "Sessions connected to the member.",
            [](const Member& m) { return load(m.counters.connections); });
  perMember(out, s, "ringlb_member_received_bytes_total", "counter",
            "Bytes from clients written to the member (added every 64 KiB while a session is open, the rest when it ends).",
            [](const Member& m) { return load(m.counters.bytesIn); });
  perMember(out, s, "ringlb_member_sent_bytes_total", "counter",
            "Bytes from the member written to clients (added every 64 KiB while a session is open, the rest when it ends).",
            [](const Member& m) { return load(m.counters.bytesOut); });
  family(out, "ringlb_member_connect_failures_total", "counter", "Failed connects to the member.");
  for (const auto& pool : s.runtime->pools)
    for (const auto& m : pool->members()) {
      std::string labels = memberLabels(*pool, *m);
      fmt::format_to(Out(out), "ringlb_member_connect_failures_total{{{},reason=\"refused\"}} {}\n",
                     labels, load(m->counters.connectRefused));
      fmt::format_to(Out(out), "ringlb_member_connect_failures_total{{{},reason=\"timeout\"}} {}\n",
                     labels, load(m->counters.connectTimeout));
    }
  perMember(out, s, "ringlb_member_up", "gauge", "1 when health checks have the member up.",
            [](const Member& m) { return m.up.load() ? 1 : 0; });
  perMember(out, s, "ringlb_member_draining", "gauge", "1 when the member is draining.",
            [](const Member& m) { return m.draining.load() ? 1 : 0; });
  perMember(out, s, "ringlb_member_weight", "gauge", "The member's current weight.",
            [](const Member& m) { return m.weight.load(); });
}

void healthMetrics(std::string& out, const ReportSources& s) {
  if (!s.health) return;
  perMember(out, s, "ringlb_member_health_transitions_total", "counter",
            "Times health checks moved the member between up and down.", [&](const Member& m) {
              const health::MemberHealth* h = s.health->healthOf(m);
              return h ? h->transitions() : 0;
            });
  family(out, "ringlb_member_probe_duration_seconds", "histogram", "Health probe durations.");
  for (const auto& pool : s.runtime->pools)
    for (const auto& m : pool->members())
      if (const DurationHistogram* h = s.health->probeDurationsOf(*m))
        histogram(out, "ringlb_member_probe_duration_seconds", memberLabels(*pool, *m), *h);
}

// Handshakes by result and routing, for the listeners that have them
// (lb/stats.h TlsListenerCounters); TLS failures to members of pools that
// originate TLS; and every loaded certificate's time to expiry.
void tlsMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_tls_handshakes_total", "counter",
         "TLS handshakes with clients on listeners with [listener.tls], by result.");
  for (const auto& l : s.runtime->listeners) {
    if (!l->tls) continue;
    for (size_t r = 0; r < static_cast<size_t>(HandshakeResult::Count); ++r)
      fmt::format_to(Out(out), "ringlb_tls_handshakes_total{{listener=\"{}\",result=\"{}\"}} {}\n",
                     label(l->config.name), toString(static_cast<HandshakeResult>(r)),
                     load(l->state->counters.tls.handshakes[r]));
  }
  family(out, "ringlb_tls_resumed_handshakes_total", "counter",
         "Successful TLS handshakes that resumed a session (ticket or session cache).");
  for (const auto& l : s.runtime->listeners)
    if (l->tls)
      fmt::format_to(Out(out), "ringlb_tls_resumed_handshakes_total{{listener=\"{}\"}} {}\n",
                     label(l->config.name), load(l->state->counters.tls.resumed));
  family(out, "ringlb_tls_handshake_duration_seconds", "histogram",
         "From accept to a successful TLS handshake.");
  for (const auto& l : s.runtime->listeners)
    if (l->tls)
      histogram(out, "ringlb_tls_handshake_duration_seconds", fmt::format("listener=\"{}\"", label(l->config.name)),
                l->state->counters.tls.handshakeDuration);
  family(out, "ringlb_tls_kernel_tx_total", "counter",
         "Client connections whose transmit keys went to the kernel after the handshake (kTLS), or that "
         "the kernel refused (the leg then encrypts in user space).");
  for (const auto& l : s.runtime->listeners) {
    if (!l->tls) continue;
    fmt::format_to(Out(out), "ringlb_tls_kernel_tx_total{{listener=\"{}\",result=\"ok\"}} {}\n",
                   label(l->config.name), load(l->state->counters.tls.kernelTx));
    fmt::format_to(Out(out), "ringlb_tls_kernel_tx_total{{listener=\"{}\",result=\"refused\"}} {}\n",
                   label(l->config.name), load(l->state->counters.tls.kernelTxFailed));
  }
  family(out, "ringlb_listener_routed_total", "counter",
         "Connections on listeners with routes: sent to a route's pool by SNI, or to the default pool.");
  for (const auto& l : s.runtime->listeners) {
    if (l->config.routes.empty()) continue;
    fmt::format_to(Out(out), "ringlb_listener_routed_total{{listener=\"{}\",route=\"sni\"}} {}\n",
                   label(l->config.name), load(l->state->counters.tls.routedBySni));
    fmt::format_to(Out(out), "ringlb_listener_routed_total{{listener=\"{}\",route=\"default\"}} {}\n",
                   label(l->config.name), load(l->state->counters.tls.routedDefault));
  }
  family(out, "ringlb_member_tls_failures_total", "counter",
         "TLS handshakes with the member that failed (also counted as refused connects).");
  for (const auto& pool : s.runtime->pools)
    if (pool->tls)
      for (const auto& m : pool->members())
        fmt::format_to(Out(out), "ringlb_member_tls_failures_total{{{}}} {}\n", memberLabels(*pool, *m),
                       load(m->counters.tlsFailed));
  family(out, "ringlb_tls_certificate_expiry_seconds", "gauge",
         "Seconds until the certificate's notAfter (negative once expired).");
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (const CertificateRow& row : certificateRows(*s.runtime))
    fmt::format_to(Out(out), "ringlb_tls_certificate_expiry_seconds{{{}=\"{}\",file=\"{}\",subject=\"{}\"}} {}\n",
                   row.kind, label(row.owner), label(row.info->file), label(row.info->subject),
                   row.info->notAfterUnix - now);
}

void poolMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_pool_retries_total", "counter", "Connects started after a failed one.");
  for (const auto& p : s.runtime->pools)
    fmt::format_to(Out(out), "ringlb_pool_retries_total{{pool=\"{}\"}} {}\n", label(p->name()),
                   load(p->counters().retries));
  family(out, "ringlb_pool_no_member_total", "counter",
         "Clients closed because no member was available.");
  for (const auto& p : s.runtime->pools)
    fmt::format_to(Out(out), "ringlb_pool_no_member_total{{pool=\"{}\"}} {}\n", label(p->name()),
                   load(p->counters().noMember));
  family(out, "ringlb_pool_session_duration_seconds", "histogram", "Durations of ended sessions.");
  for (const auto& p : s.runtime->pools)
    histogram(out, "ringlb_pool_session_duration_seconds", fmt::format("pool=\"{}\"", label(p->name())),
              p->counters().sessionDuration);
}

void workerMetrics(std::string& out, const ReportSources& s) {
  family(out, "ringlb_worker_completions_total", "counter", "io_uring completions handled.");
  for (size_t i = 0; i < s.workers.size(); ++i)
    fmt::format_to(Out(out), "ringlb_worker_completions_total{{worker=\"{}\"}} {}\n", i,
                   load(s.workers[i]->stats().completions));
  family(out, "ringlb_worker_stale_completions_total", "counter",
         "Completions dropped because their session slot had moved on.");
  for (size_t i = 0; i < s.workers.size(); ++i)
    fmt::format_to(Out(out), "ringlb_worker_stale_completions_total{{worker=\"{}\"}} {}\n", i,
                   load(s.workers[i]->stats().staleCompletions));
  family(out, "ringlb_worker_dropped_completion_events_total", "counter",
         "Times the kernel dropped completions of the worker's ring under memory pressure (EBADR).");
  for (size_t i = 0; i < s.workers.size(); ++i)
    fmt::format_to(Out(out), "ringlb_worker_dropped_completion_events_total{{worker=\"{}\"}} {}\n", i,
                   s.workers[i]->submitter().droppedCompletionEvents());
  family(out, "ringlb_worker_pipes", "gauge", "Splice pipes held by the worker.");
  for (size_t i = 0; i < s.workers.size(); ++i) {
    fmt::format_to(Out(out), "ringlb_worker_pipes{{worker=\"{}\",state=\"in_use\"}} {}\n", i,
                   load(s.workers[i]->stats().pipesInUse));
    fmt::format_to(Out(out), "ringlb_worker_pipes{{worker=\"{}\",state=\"spare\"}} {}\n", i,
                   load(s.workers[i]->stats().pipesSpare));
  }
  family(out, "ringlb_worker_pipes_over_budget_total", "counter",
         "Bulk directions that found the process's pipe budget spent and copied through ring buffers instead.");
  for (size_t i = 0; i < s.workers.size(); ++i)
    fmt::format_to(Out(out), "ringlb_worker_pipes_over_budget_total{{worker=\"{}\"}} {}\n", i,
                   load(s.workers[i]->stats().pipesOverBudget));
  family(out, "ringlb_worker_receives_stopped_total", "counter",
         "Multishot receives stopped: their flow fell behind its source, or turned to splice.");
  for (size_t i = 0; i < s.workers.size(); ++i)
    fmt::format_to(Out(out), "ringlb_worker_receives_stopped_total{{worker=\"{}\"}} {}\n", i,
                   load(s.workers[i]->stats().receivesStopped));
  if (uint64_t budget = s.runtime->pipeBudget->limit(); budget != kNoPipeLimit) {
    family(out, "ringlb_pipe_budget", "gauge",
           "Splice pipes all workers may hold in use at once (what the open-file limit leaves after sessions).");
    fmt::format_to(Out(out), "ringlb_pipe_budget {}\n", budget);
  }
}

void accessLogMetrics(std::string& out, const ReportSources& s) {
  uint64_t dropped = 0;
  for (const auto& worker : s.workers) dropped += worker->accessLog().droppedLines();
  family(out, "ringlb_access_log_dropped_lines_total", "counter",
         "Access-log lines dropped because the output did not take them (all workers).");
  fmt::format_to(Out(out), "ringlb_access_log_dropped_lines_total {}\n", dropped);
  family(out, "ringlb_log_dropped_lines_total", "counter",
         "Operational log lines (stderr) dropped because the reader had no room for them.");
  fmt::format_to(Out(out), "ringlb_log_dropped_lines_total {}\n", log::droppedLines());
}

std::string discoveryLabels(const discovery::EntryStatus& e) {
  return fmt::format("pool=\"{}\",name=\"{}\"", label(e.pool), label(e.name));
}

int64_t unixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

void discoveryMetrics(std::string& out, const ReportSources& s) {
  if (!s.discovery) return;
  std::vector<discovery::EntryStatus> entries = s.discovery->status();
  if (entries.empty()) return;
  family(out, "ringlb_discovery_lookups_total", "counter",
         "DNS lookups of a [[pool.NAME.discover]] entry that finished, by result.");
  for (const auto& e : entries)
    for (size_t r = 0; r < std::size(e.lookups); ++r)
      fmt::format_to(Out(out), "ringlb_discovery_lookups_total{{{},result=\"{}\"}} {}\n", discoveryLabels(e),
                     discovery::toString(static_cast<discovery::LookupStatus>(r)), e.lookups[r]);
  family(out, "ringlb_discovery_members", "gauge", "Members the entry's answers give the pool now.");
  for (const auto& e : entries)
    fmt::format_to(Out(out), "ringlb_discovery_members{{{}}} {}\n", discoveryLabels(e), e.members);
  family(out, "ringlb_discovery_last_success_seconds", "gauge",
         "Unix time of the entry's last good answer (0: none yet).");
  for (const auto& e : entries)
    fmt::format_to(Out(out), "ringlb_discovery_last_success_seconds{{{}}} {}\n", discoveryLabels(e),
                   unixSeconds(e.lastSuccessAt));
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  appendJsonEscaped(out, text);
  out += '"';
  return out;
}

// A sampled value: null for a gap (no sample yet, no rate yet, not probed).
std::string jsonNumber(float value) {
  if (std::isnan(value) || std::isinf(value)) return "null";
  return fmt::format("{}", value);
}

// The latest sample's rates of a listener's or member's series.
std::string ratesJson(const ReportSources& s, const SeriesKey& key) {
  auto rate = [&](HistoryMetric metric) {
    return jsonNumber(s.history ? s.history->latest(key, metric) : std::numeric_limits<float>::quiet_NaN());
  };
  return fmt::format(
      R"({{"new_per_second":{},"bytes_in_per_second":{},"bytes_out_per_second":{},"failures_per_second":{}}})",
      rate(HistoryMetric::NewPerSecond), rate(HistoryMetric::BytesInPerSecond),
      rate(HistoryMetric::BytesOutPerSecond), rate(HistoryMetric::FailuresPerSecond));
}

int64_t unixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "rates", "state_since", "state_seconds" and "last_probe_ms" of a member.
std::string memberHistoryJson(const ReportSources& s, const Pool& p, const Member& m) {
  SeriesKey key{p.name(), m.name};
  std::string since = "null", seconds = "null", probe = "null";
  if (s.history) {
    // Known only while the history saw the state the member is in now.
    auto state = s.history->stateSince(key);
    if (state && state->first == memberState(m)) {
      since = jsonString(isoTime(state->second / 1000));
      seconds = fmt::format("{}", std::max<int64_t>(0, (unixNowMs() - state->second) / 1000));
    }
    if (s.health && s.health->healthOf(m)) probe = jsonNumber(s.history->latest(key, HistoryMetric::ProbeMillis));
  }
  return fmt::format(R"("rates":{},"state_since":{},"state_seconds":{},"last_probe_ms":{})", ratesJson(s, key), since,
                     seconds, probe);
}

std::string memberJson(const ReportSources& s, const Pool& p, const Member& m) {
  std::string healthJson = "null";
  if (const health::MemberHealth* h = s.health ? s.health->healthOf(m) : nullptr) {
    std::string_view last = h->lastResult() == health::ProbeResult::None     ? "none"
                            : h->lastResult() == health::ProbeResult::Passed ? "passed"
                                                                             : "failed";
    healthJson = fmt::format(R"({{"state":"{}","last_result":"{}","last_reason":{},"transitions":{}}})",
                             health::toString(h->state()), last, jsonString(h->lastReason()),
                             h->transitions());
  }
  return fmt::format(
      R"({{"name":{},"address":{},"state":"{}","weight":{},"backup":{},"active":{},"connections":{},"health":{},{}}})",
      jsonString(m.name), jsonString(m.address.text), memberState(m), m.weight.load(),
      m.backup ? "true" : "false", m.active.value.load(), load(m.counters.connections), healthJson,
      memberHistoryJson(s, p, m));
}

}  // namespace

std::vector<CertificateRow> certificateRows(const Runtime& runtime) {
  std::vector<CertificateRow> rows;
  for (const auto& l : runtime.listeners)
    if (l->tls)
      for (const auto& c : l->tls->certificates()) rows.push_back({"listener", l->config.name, &c});
  for (const auto& pool : runtime.pools)
    if (pool->tls)
      for (const auto& c : pool->tls->certificates()) rows.push_back({"pool", pool->name(), &c});
  return rows;
}

std::vector<CertificateRow> certificateRowsSoonestFirst(const Runtime& runtime) {
  std::vector<CertificateRow> rows = certificateRows(runtime);
  std::stable_sort(rows.begin(), rows.end(), [](const CertificateRow& a, const CertificateRow& b) {
    return a.info->notAfterUnix < b.info->notAfterUnix;
  });
  return rows;
}

std::string isoTime(int64_t unix) {
  time_t t = static_cast<time_t>(unix);
  tm parts{};
  gmtime_r(&t, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::string_view memberState(const Member& member) {
  if (member.draining.load()) return "draining";
  return member.up.load() ? "up" : "down";
}

std::string renderMetrics(const ReportSources& sources) {
  std::string out;
  listenerMetrics(out, sources);
  edgeMetrics(out, sources);
  memberMetrics(out, sources);
  healthMetrics(out, sources);
  poolMetrics(out, sources);
  tlsMetrics(out, sources);
  workerMetrics(out, sources);
  accessLogMetrics(out, sources);
  localErrorMetrics(out, sources);
  discoveryMetrics(out, sources);
  return out;
}

std::string renderStatusJson(const ReportSources& s) {
  std::string out = R"({"listeners":[)";
  for (size_t i = 0; i < s.runtime->listeners.size(); ++i) {
    const Listener& l = *s.runtime->listeners[i];
    fmt::format_to(Out(out), R"({}{{"name":{},"bind":{},"pool":{},"active":{},"accepted":{},"rates":{}}})",
                   i ? "," : "", jsonString(l.config.name), jsonString(l.config.bind.text),
                   jsonString(l.config.pool), l.state->active.value.load(), load(l.state->counters.accepted),
                   ratesJson(s, SeriesKey{l.config.name, {}}));
  }
  out += R"(],"pools":[)";
  for (size_t i = 0; i < s.runtime->pools.size(); ++i) {
    const Pool& p = *s.runtime->pools[i];
    fmt::format_to(Out(out), R"({}{{"name":{},"balance":"{}","health_checks":{},"members":[)",
                   i ? "," : "", jsonString(p.name()), config::toString(p.config().balance),
                   p.config().health ? "true" : "false");
    for (size_t m = 0; m < p.members().size(); ++m) {
      if (m) out += ',';
      out += memberJson(s, p, *p.members()[m]);
    }
    out += "]}";
  }
  out += R"(],"discovery":[)";
  if (s.discovery) {
    std::vector<discovery::EntryStatus> entries = s.discovery->status();
    for (size_t i = 0; i < entries.size(); ++i) {
      const discovery::EntryStatus& e = entries[i];
      std::string lastAt = e.answered ? jsonString(isoTime(unixSeconds(e.lastAt))) : "null";
      fmt::format_to(Out(out),
                     R"({}{{"pool":{},"name":{},"type":"{}","last_result":{},"last_detail":{},"last_at":{},)"
                     R"("records":{},"members":{},"changes":{}}})",
                     i ? "," : "", jsonString(e.pool), jsonString(e.name), discovery::typeName(e.type),
                     e.answered ? jsonString(discovery::toString(e.lastStatus)) : "null",
                     jsonString(e.lastDetail), lastAt, e.records, e.members, e.changes);
    }
  }
  out += R"(],"certificates":[)";
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<CertificateRow> rows = certificateRows(*s.runtime);
  for (size_t i = 0; i < rows.size(); ++i) {
    const tls::CertificateInfo& c = *rows[i].info;
    std::string names;
    for (size_t n = 0; n < c.names.size(); ++n) {
      if (n) names += ',';
      names += jsonString(c.names[n]);
    }
    fmt::format_to(Out(out),
                   R"({}{{"{}":{},"file":{},"subject":{},"names":[{}],"serial":{},"not_after":"{}","expires_in_seconds":{}}})",
                   i ? "," : "", rows[i].kind, jsonString(rows[i].owner), jsonString(c.file), jsonString(c.subject),
                   names, jsonString(c.serial), isoTime(c.notAfterUnix), c.notAfterUnix - now);
  }
  out += R"(],"history":)";
  if (s.history)
    fmt::format_to(Out(out), R"({{"interval_seconds":{},"samples":{},"series":{},"untracked":{}}})",
                   std::chrono::duration_cast<std::chrono::seconds>(kHistoryInterval).count(), s.history->samples(),
                   s.history->tracked(), s.history->untracked());
  else
    out += "null";
  out += "}\n";
  return out;
}

}  // namespace lb
