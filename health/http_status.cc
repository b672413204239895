#include "health/http_status.h"

#include <algorithm>

namespace health {
namespace {

constexpr std::string_view kPrefix = "HTTP/1.";
constexpr size_t kNameLength = 5;  // "HTTP/": a mismatch before here is not HTTP at all

constexpr std::string_view kNotHttp = "not HTTP";
constexpr std::string_view kBadVersion = "unsupported HTTP version";
constexpr std::string_view kBadLine = "bad status line";
constexpr std::string_view kBadStatus = "bad status code";
constexpr std::string_view kTooLong = "status line too long";

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// HTAB, SP, visible ASCII, obs-text (>= 0x80); not CR, LF, NUL, DEL or other controls.
bool isReasonByte(char c) {
  auto byte = static_cast<unsigned char>(c);
  return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
}

bool isToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

}  // namespace

StatusLineParser::Result StatusLineParser::feed(std::span<const char> bytes) {
  for (char c : bytes) {
    if (result_.kind != Kind::NeedMore) break;
    result_ = ++length_ > kMaxLineLength ? Result::bad(kTooLong) : take(c);
  }
  return result_;
}

StatusLineParser::Result StatusLineParser::finish() {
  if (result_.kind == Kind::NeedMore) {
    result_ = Result::bad(length_ == 0 ? "empty response" : "truncated status line");
  }
  return result_;
}

// One byte of the line, already counted in length_; returns NeedMore to
// continue, or the final result.
StatusLineParser::Result StatusLineParser::take(char c) {
  switch (step_) {
    case Step::Prefix:
      if (c != kPrefix[length_ - 1]) {
        return Result::bad(length_ <= kNameLength ? kNotHttp : kBadVersion);
      }
      if (length_ == kPrefix.size()) step_ = Step::Minor;
      return Result::needMore();
    case Step::Minor:
      if (!isDigit(c)) return Result::bad(kBadVersion);
      step_ = Step::Space;
      return Result::needMore();
    case Step::Space:
      if (c != ' ') return Result::bad(kBadLine);
      step_ = Step::Status;
      return Result::needMore();
    case Step::Status:
      if (!isDigit(c)) return Result::bad(kBadStatus);
      status_ = status_ * 10 + (c - '0');
      if (++statusDigits_ < 3) return Result::needMore();
      if (status_ < 100 || status_ > 599) return Result::bad(kBadStatus);
      step_ = Step::AfterStatus;
      return Result::needMore();
    case Step::AfterStatus:
      if (c == ' ') {
        step_ = Step::Reason;
        return Result::needMore();
      }
      if (isDigit(c)) return Result::bad(kBadStatus);
      return endOfLine(c);
    case Step::Reason:
      if (isReasonByte(c)) return Result::needMore();
      return endOfLine(c);
    case Step::LineFeed:
      if (c != '\n') return Result::bad(kBadLine);
      return Result::done(status_);
  }
  return Result::bad(kBadLine);
}

// CRLF or a bare LF ends the line; any other byte here is malformed.
StatusLineParser::Result StatusLineParser::endOfLine(char c) {
  if (c == '\n') return Result::done(status_);
  if (c != '\r') return Result::bad(kBadLine);
  step_ = Step::LineFeed;
  return Result::needMore();
}

std::string buildRequest(std::string_view path, std::string_view host) {
  if (!isToken(path) || path.front() != '/' || !isToken(host)) return {};
  std::string request;
  request.reserve(96 + path.size() + host.size());
  request += "GET ";
  request += path;
  request += " HTTP/1.1\r\nHost: ";
  request += host;
  request += "\r\nConnection: close\r\nUser-Agent: ringlb-health\r\n\r\n";
  return request;
}

}  // namespace health
