#pragma once
// The HTTP side of a health probe without the socket: the request it sends and
// an incremental parser of the status line it gets back. Bytes come from the
// network, so anything is possible; the parser never buffers, never reads past
// kMaxLineLength bytes, and gives its verdict as soon as the bytes allow.
//
// Accepted: "HTTP/1." DIGIT SP 3DIGIT [SP reason-phrase] (CRLF | LF), status
// 100..599, reason phrase of HTAB, SP, visible ASCII and bytes >= 0x80.

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace health {

class StatusLineParser {
 public:
  static constexpr size_t kMaxLineLength = 1024;  // including the line ending

  enum class Kind { NeedMore, Done, Bad };
  struct Result {
    Kind kind = Kind::NeedMore;
    int status = 0;           // Done only
    std::string_view reason;  // Bad only: why, static text such as "not HTTP"

    static Result needMore() { return {}; }
    static Result done(int status) { return {Kind::Done, status, {}}; }
    static Result bad(std::string_view reason) { return {Kind::Bad, 0, reason}; }
    bool operator==(const Result&) const = default;
  };

  // Feeds the next bytes. Once Done or Bad, the result is final and further
  // bytes (headers, body, garbage) are ignored. A std::string_view converts;
  // a string literal would bring its NUL along.
  Result feed(std::span<const char> bytes);

  // The peer closed. Done stays Done; anything short of a full line is Bad
  // ("empty response" if no byte ever came, else "truncated status line").
  Result finish();

  const Result& result() const { return result_; }

 private:
  // Prefix -> Minor -> Space -> Status -> AfterStatus -> [Reason] -> [LineFeed] -> final
  enum class Step { Prefix, Minor, Space, Status, AfterStatus, Reason, LineFeed };

  Result take(char c);
  Result endOfLine(char c);

  Step step_ = Step::Prefix;
  size_t length_ = 0;  // bytes of the status line consumed so far
  int status_ = 0;
  int statusDigits_ = 0;
  Result result_;
};

// "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n
//  User-Agent: ringlb-health\r\n\r\n", or "" when path does not start with
// "/" or either value is empty or holds a space, control byte or non-ASCII byte.
std::string buildRequest(std::string_view path, std::string_view host);

}  // namespace health
