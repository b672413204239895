// Fuzzes health::StatusLineParser, which reads a health probe's answer.
//
// Input: one byte that chooses where to cut, then the response bytes.
// Properties: the verdict matches a plain reference reading of the grammar
// in http_status.h; it does not depend on how the bytes are cut into feeds
// (one feed, two feeds, byte by byte); bytes after the verdict and after
// kMaxLineLength are never looked at; finish() turns only NeedMore into Bad.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "health/http_status.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using Parser = health::StatusLineParser;
using Result = Parser::Result;

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isReasonByte(char c) {
  auto byte = static_cast<unsigned char>(c);
  return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
}

// The reference: Done(status) when the bytes start with a whole valid status
// line, Bad when no continuation could make them one, else NeedMore. Bad
// reasons are not compared, only kinds.
Result reference(std::string_view bytes) {
  const std::string_view line = bytes.substr(0, Parser::kMaxLineLength);
  constexpr std::string_view kPrefix = "HTTP/1.";
  // Out of line bytes: the verdict waits for more, unless a byte past the
  // bound is already there.
  auto ranOut = [&] { return bytes.size() > line.size() ? Result::bad("x") : Result::needMore(); };
  size_t i = 0;
  for (; i < kPrefix.size(); ++i) {
    if (i == line.size()) return ranOut();
    if (line[i] != kPrefix[i]) return Result::bad("x");
  }
  if (i == line.size()) return ranOut();
  if (!isDigit(line[i++])) return Result::bad("x");
  if (i == line.size()) return ranOut();
  if (line[i++] != ' ') return Result::bad("x");
  int status = 0;
  for (int digit = 0; digit < 3; ++digit, ++i) {
    if (i == line.size()) return ranOut();
    if (!isDigit(line[i])) return Result::bad("x");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return Result::bad("x");
  if (i < line.size() && line[i] == ' ') {
    ++i;
    while (i < line.size() && isReasonByte(line[i])) ++i;
  } else if (i < line.size() && isDigit(line[i])) {
    return Result::bad("x");
  }
  if (i == line.size()) return ranOut();
  if (line[i] == '\n') return Result::done(status);
  if (line[i] != '\r') return Result::bad("x");
  if (++i == line.size()) return ranOut();
  return line[i] == '\n' ? Result::done(status) : Result::bad("x");
}

bool sameVerdict(const Result& a, const Result& b) {
  return a.kind == b.kind && a.status == b.status;
}

std::span<const char> bytesOf(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);

  Parser whole;
  const Result verdict = whole.feed(bytesOf(bytes));
  FUZZ_CHECK(sameVerdict(verdict, reference(bytes)));
  if (verdict.kind == Parser::Kind::NeedMore) FUZZ_CHECK(bytes.size() <= Parser::kMaxLineLength);
  if (verdict.kind == Parser::Kind::Done) FUZZ_CHECK(verdict.status >= 100 && verdict.status <= 599);
  if (verdict.kind == Parser::Kind::Bad) FUZZ_CHECK(!verdict.reason.empty());
  FUZZ_CHECK(whole.result() == verdict);

  Parser twoFeeds;
  twoFeeds.feed(bytesOf(bytes.substr(0, cut)));
  FUZZ_CHECK(twoFeeds.feed(bytesOf(bytes.substr(cut))) == verdict);

  Parser byteByByte;
  Result last;
  for (char c : bytes) last = byteByByte.feed(std::span<const char>(&c, 1));
  FUZZ_CHECK(last == verdict);

  // Only the first kMaxLineLength + 1 bytes can matter.
  Parser bounded;
  FUZZ_CHECK(bounded.feed(bytesOf(bytes.substr(0, Parser::kMaxLineLength + 1))) == verdict);

  // More bytes after a verdict change nothing; finish() settles NeedMore.
  if (verdict.kind != Parser::Kind::NeedMore) FUZZ_CHECK(whole.feed(bytesOf(bytes)) == verdict);
  const Result finished = whole.finish();
  if (verdict.kind == Parser::Kind::NeedMore) {
    FUZZ_CHECK(finished.kind == Parser::Kind::Bad && !finished.reason.empty());
  } else {
    FUZZ_CHECK(finished == verdict);
  }
  return 0;
}
