#pragma once
// Plain-text pieces of GET /status?format=text (lb/status_text.cc), kept
// apart so tests can check them without a running process.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lb {

// Bytes per second as "0 B/s", "950 B/s", "1.2 kB/s", "34 MB/s", "1.5 GB/s"
// (decimal units, two or three significant digits); NaN as "-".
std::string humanRate(double bytesPerSecond);
// Seconds as "45s", "3m12s", "2h05m", "4d03h"; negative as "0s".
std::string humanDuration(int64_t seconds);
// A count per second: "0", "0.5", "12", "1.2k"; NaN as "-".
std::string humanPerSecond(double perSecond);

// Columns padded to their widest cell, two spaces apart; `rightAligned`
// columns (numbers) are padded on the left. Lines carry no trailing spaces.
class TextTable {
 public:
  TextTable(std::vector<std::string> headers, std::vector<bool> rightAligned);
  void add(std::vector<std::string> row);  // as many cells as headers
  std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // headers first
  std::vector<bool> right_;
};

}  // namespace lb
