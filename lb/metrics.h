#pragma once
// What the admin endpoint reports: Prometheus text for /metrics and JSON for
// /status, rendered from the live counters on the control thread.

#include <memory>
#include <span>
#include <string>

#include "health/prober.h"
#include "lb/discovery/discovery.h"
#include "lb/event_log.h"
#include "lb/history.h"
#include "lb/listener.h"
#include "lb/pool.h"
#include "lb/runtime.h"
#include "lb/worker.h"

namespace lb {

// Health checking as the reports see it: which members are probed, and how.
class HealthView {
 public:
  virtual ~HealthView() = default;
  // nullptr when the member's pool has no health checks.
  virtual const health::MemberHealth* healthOf(const Member& member) const = 0;
  virtual const DurationHistogram* probeDurationsOf(const Member& member) const = 0;
};

struct ReportSources {
  const Runtime* runtime = nullptr;  // the current config generation
  std::span<const std::unique_ptr<Worker>> workers;
  const HealthView* health = nullptr;
  const discovery::Discovery* discovery = nullptr;  // null: no discovery to report
  const History* history = nullptr;  // null: no history kept (tests of one renderer)
  EventLog* events = nullptr;        // null: none kept; the admin endpoint adds its actions here
};

std::string renderMetrics(const ReportSources& sources);
std::string renderStatusJson(const ReportSources& sources);

// "up", "down" or "draining", as the status page shows a member.
std::string_view memberState(const Member& member);

// A certificate of the current generation and what uses it: a listener
// (its [listener.tls] certificates) or a pool (its client certificate).
struct CertificateRow {
  std::string_view kind;  // "listener" | "pool"
  std::string_view owner;
  const tls::CertificateInfo* info;
};
std::vector<CertificateRow> certificateRows(const Runtime& runtime);
// The same, the soonest to expire first (as the status page and text list them).
std::vector<CertificateRow> certificateRowsSoonestFirst(const Runtime& runtime);
// `unix` (seconds since the epoch) as "2026-11-26T14:00:00Z".
std::string isoTime(int64_t unix);

}  // namespace lb
