#include "lb/status_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace lb {
namespace {

// Drawn at kWidth x kHeight pixels, in chart units: x is the sample's index
// (0 .. samples - 1) and y 0 (the scale's max) .. kScale (zero), stretched to
// the box (preserveAspectRatio none; the stroke keeps its width). Integers:
// a full window is 450 points a line, so every byte of a point counts.
constexpr int kWidth = 180;
constexpr int kHeight = 40;
constexpr int kScale = 100;

struct Line {
  HistoryMetric metric;
  std::string_view what;  // for the title
  std::string (*format)(float);
};

struct ChartSpec {
  std::string_view name;
  std::array<Line, 2> lines;
  bool sharedScale;
};

std::string formatLevel(float value) { return std::isfinite(value) ? fmt::format("{:.0f}", value) : "-"; }

ChartSpec specOf(ChartKind kind) {
  if (kind == ChartKind::Connections)
    return {"connections",
            {Line{HistoryMetric::Active, "active connections", formatLevel},
             Line{HistoryMetric::NewPerSecond, "new connections", formatPerSecond}},
            false};
  return {"throughput",
          {Line{HistoryMetric::BytesInPerSecond, "bytes in (client to member)", formatBytesPerSecond},
           Line{HistoryMetric::BytesOutPerSecond, "bytes out (member to client)", formatBytesPerSecond}},
          true};
}

float maxOf(const std::vector<float>& values) {
  float max = 0;
  for (float v : values)
    if (std::isfinite(v)) max = std::max(max, v);
  return max;
}

// "Mx y Lx y ..." restarting with M after every gap; a value alone between
// gaps is a zero-length segment, which the round line cap draws as a dot.
std::string pathOf(const std::vector<float>& values, float scaleMax, size_t* points) {
  std::string d;
  size_t n = values.size();
  bool inLine = false;
  *points = 0;
  for (size_t i = 0; i < n; ++i) {
    float v = values[i];
    if (!std::isfinite(v)) {
      inLine = false;
      continue;
    }
    long y = kScale - (scaleMax > 0 ? std::lround(double(std::max(v, 0.0f)) / scaleMax * kScale) : 0);
    bool alone = !inLine && (i + 1 == n || !std::isfinite(values[i + 1]));
    fmt::format_to(std::back_inserter(d), "{}{}{} {}", d.empty() ? "" : " ", inLine ? 'L' : 'M', i, y);
    if (alone) d += " h0";
    inLine = true;
    ++*points;
  }
  return d;
}

}  // namespace

std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string formatPerSecond(float perSecond) {
  if (!std::isfinite(perSecond)) return "-";
  if (perSecond == 0) return "0/s";
  if (perSecond < 10) return fmt::format("{:.1f}/s", perSecond);
  return fmt::format("{:.0f}/s", perSecond);
}

std::string formatBytesPerSecond(float bytes) {
  if (!std::isfinite(bytes)) return "-";
  constexpr std::array<std::string_view, 4> kUnits = {"B/s", "KiB/s", "MiB/s", "GiB/s"};
  double value = bytes;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{:.0f} B/s", value);
  if (value < 10) return fmt::format("{:.1f} {}", value, kUnits[unit]);
  return fmt::format("{:.0f} {}", value, kUnits[unit]);
}

std::string formatMillis(float millis) {
  if (!std::isfinite(millis)) return "-";
  if (millis < 1) return fmt::format("{:.2f} ms", millis);
  if (millis < 1000) return fmt::format("{:.0f} ms", millis);
  return fmt::format("{:.1f} s", millis / 1000);
}

std::string formatDuration(int64_t millis) {
  int64_t s = std::max<int64_t>(millis, 0) / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d {}h", s / 86400, s % 86400 / 3600);
}

std::string renderChart(const History& history, const SeriesKey& key, ChartKind kind) {
  std::optional<History::Series> series = history.series(key);
  if (!series) return "<span class=\"muted\">no history</span>";
  return renderChart(*series, history.times(), key, kind);
}

std::string renderChart(const History::Series& series, std::span<const int64_t> times, const SeriesKey& key,
                        ChartKind kind) {
  ChartSpec spec = specOf(kind);
  std::string name = htmlEscape(key.member.empty() ? key.owner : key.owner + "/" + key.member);
  size_t samples = series.values[static_cast<size_t>(spec.lines[0].metric)].size();
  std::string window = times.size() >= 2 ? formatDuration(times.back() - times.front()) : "0s";

  std::array<float, 2> maxima{};
  for (size_t i = 0; i < spec.lines.size(); ++i)
    maxima[i] = maxOf(series.values[static_cast<size_t>(spec.lines[i].metric)]);
  if (spec.sharedScale) maxima[0] = maxima[1] = std::max(maxima[0], maxima[1]);

  std::string title = fmt::format("{}: ", name);
  std::string paths;
  for (size_t i = 0; i < spec.lines.size(); ++i) {
    const Line& line = spec.lines[i];
    const std::vector<float>& values = series.values[static_cast<size_t>(line.metric)];
    float latest = values.empty() ? NAN : values.back();
    fmt::format_to(std::back_inserter(title), "{}{} (now {}, max {})", i ? " and " : "", line.what,
                   line.format(latest), line.format(maxOf(values)));
    size_t points = 0;
    std::string d = pathOf(values, maxima[i], &points);
    fmt::format_to(std::back_inserter(paths), "<path class=\"line{}\" data-metric=\"{}\" data-points=\"{}\" d=\"{}\"/>",
                   i + 1, toString(line.metric), points, d);
  }
  fmt::format_to(std::back_inserter(title), ", over the last {} ({} samples)", window, samples);
  // A margin of about 2 pixels around the lines, so that neither a line at
  // an edge nor a dot's cap is cut off.
  // A single sample sits at the right, where the newest always is.
  double last = samples > 1 ? double(samples - 1) : 1;
  double margin = last * 2 / kWidth;
  double left = samples > 1 ? -margin : -last - margin;
  return fmt::format(
      "<svg class=\"chart\" width=\"{}\" height=\"{}\" viewBox=\"{:.2f} -5 {:.2f} {}\" "
      "preserveAspectRatio=\"none\" role=\"img\" data-series=\"{}\" data-chart=\"{}\" data-samples=\"{}\">"
      "<title>{}</title>{}</svg>",
      kWidth, kHeight, left, last + 2 * margin, kScale + 10, name, spec.name, samples, title, paths);
}

}  // namespace lb
