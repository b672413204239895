#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "lb/metrics.h"

namespace lb {

// The admin endpoint's "/" page: every listener, pool and member with its
// state, current rates and charts of the kept history, the latest events,
// and (with JavaScript) drain/undrain/weight controls. Rendered on the
// server, no external assets, readable and refreshing without JavaScript.
std::string renderStatusPage(const ReportSources& sources);
// The same at `nowUnixMs` (how long members have been in their state).
std::string renderStatusPage(const ReportSources& sources, int64_t nowUnixMs);
inline constexpr size_t kStatusPageEvents = 20;  // the latest events listed

// GET /status?format=text: the page's state as plain-text tables (what
// `ringlb ctl status` prints): listeners and members with rates, states and
// how long each has been in it, discovery and certificates.
std::string renderStatusText(const ReportSources& sources);

}  // namespace lb
