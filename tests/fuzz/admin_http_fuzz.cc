// Fuzzes lb::parseAdminRequest, the admin endpoint's HTTP request parser,
// with the bytes as they would sit in its receive buffer.
//
// Properties: a finished request's method and path are tokens taken from the
// request line (the path starts with "/" and has no query), its body is the
// Content-Length bytes right after the head; nothing longer than the bounds
// is ever waited for; and the verdict does not depend on how the bytes were
// split: once a prefix gets Done, Bad or TooLarge, every longer input with
// that prefix gets the same (the endpoint stops reading there).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lb/admin_http.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte > ' ' && byte < 127;
  });
}

bool sameRequest(const lb::AdminRequest& a, const lb::AdminRequest& b) {
  return a.method == b.method && a.path == b.path && a.authorization == b.authorization &&
         a.body == b.body;
}

void checkDone(std::string_view input, const lb::AdminRequest& request) {
  const size_t headEnd = input.find("\r\n\r\n");
  FUZZ_CHECK(headEnd != std::string_view::npos && headEnd <= lb::kMaxAdminHead);
  const std::string_view requestLine = input.substr(0, input.find("\r\n"));

  FUZZ_CHECK(isToken(request.method));
  FUZZ_CHECK(requestLine.starts_with(request.method + " "));
  FUZZ_CHECK(isToken(request.path) && request.path.front() == '/');
  FUZZ_CHECK(request.path.find('?') == std::string::npos);
  FUZZ_CHECK(requestLine.substr(request.method.size() + 1).starts_with(request.path));

  FUZZ_CHECK(request.body.size() <= lb::kMaxAdminBody);
  FUZZ_CHECK(input.substr(headEnd + 4).starts_with(request.body));
  // A header value holds no control byte but HTAB (a bare CR or LF would
  // make the line mean something else to another HTTP reader).
  FUZZ_CHECK(std::none_of(request.authorization.begin(), request.authorization.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return (byte < ' ' && byte != '\t') || byte == 127;
  }));
  FUZZ_CHECK(request.authorization.size() < headEnd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  lb::AdminRequest request;
  const lb::ParseOutcome outcome = lb::parseAdminRequest(input, &request);
  if (outcome == lb::ParseOutcome::Done) checkDone(input, request);
  if (outcome == lb::ParseOutcome::NeedMore)
    FUZZ_CHECK(size <= lb::kMaxAdminHead + 4 + lb::kMaxAdminBody);

  // The verdict of every prefix that is not NeedMore is final. Every prefix
  // for short inputs, a spread of cuts for long ones (keeps runs fast).
  const size_t step = size <= 256 ? 1 : size / 64;
  for (size_t cut = 0; cut < size; cut += step) {
    lb::AdminRequest early;
    const lb::ParseOutcome earlyOutcome = lb::parseAdminRequest(input.substr(0, cut), &early);
    if (earlyOutcome == lb::ParseOutcome::NeedMore) continue;
    FUZZ_CHECK(earlyOutcome == outcome);
    if (outcome == lb::ParseOutcome::Done) FUZZ_CHECK(sameRequest(early, request));
  }
  return 0;
}
