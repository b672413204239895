#pragma once

#include <string>

#include "lb/metrics.h"

namespace lb {

// The admin endpoint's "/" page: every pool and member with its state at a
// glance, rendered on the server, no external assets, refreshing itself.
std::string renderStatusPage(const ReportSources& sources);

}  // namespace lb
