#pragma once

#include <string>

#include "lb/metrics.h"

namespace lb {

// The admin endpoint's "/" page: every pool and member with its state at a
// glance, rendered on the server, no external assets, refreshing itself.
std::string renderStatusPage(const ReportSources& sources);

// GET /status?format=text: the page's state as plain-text tables (what
// `ringlb ctl status` prints): listeners and members with rates, states and
// how long each has been in it, discovery and certificates.
std::string renderStatusText(const ReportSources& sources);

}  // namespace lb
