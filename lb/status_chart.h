#pragma once
// The status page's small charts and the numbers beside them, rendered from
// History alone: pure code, no clock (times come from the samples), so unit
// tests feed a History and read the markup.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "lb/history.h"

namespace lb {

enum class ChartKind : uint8_t {
  Connections,  // active sessions and new sessions per second, each on its own scale
  Throughput,   // bytes per second in and out, on one scale
};

// An inline <svg> of `key`'s kept samples: one <path> per metric, drawn
// left (oldest) to right (newest) over the samples History holds; a gap
// (NaN) ends a line and the next value starts a new one. For tests and
// screen readers it carries
//   <svg data-series="OWNER[/MEMBER]" data-chart="connections|throughput"
//        data-samples="N" ...><title>what it shows, latest and max</title>
//   <path data-metric="active" data-points="K" d="M.. L.."/> ...
// where K is the number of values drawn (N minus the gaps). Names are
// HTML-escaped. A key History does not track gives a short note instead.
std::string renderChart(const History& history, const SeriesKey& key, ChartKind kind);
// The same from a series already taken from History (and its times()), so a
// page with many members copies each series once.
std::string renderChart(const History::Series& series, std::span<const int64_t> times, const SeriesKey& key,
                        ChartKind kind);

// Text for the tables: "-" for NaN (no sample yet).
std::string formatPerSecond(float perSecond);    // "0/s", "3.5/s", "120/s"
std::string formatBytesPerSecond(float bytes);   // "0 B/s", "12.3 KiB/s", "1.5 MiB/s"
std::string formatMillis(float millis);          // "0.42 ms", "12 ms", "1.3 s"
std::string formatDuration(int64_t millis);      // "45s", "3m 12s", "2h 05m", "3d 4h"

// `text` with & < > " ' as character references, for element text and
// quoted attribute values alike.
std::string htmlEscape(std::string_view text);

}  // namespace lb
