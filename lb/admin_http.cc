#include "lb/admin_http.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace lb {
namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c <= ' ' || c >= 127) return false;
  return true;
}

// HTAB, SP, visible ASCII and bytes >= 0x80: no CR, LF, NUL, DEL or other
// controls, so a header line means the same to every HTTP reader.
bool isFieldValue(std::string_view s) {
  for (char c : s) {
    auto byte = static_cast<unsigned char>(c);
    if ((byte < ' ' && byte != '\t') || byte == 127) return false;
  }
  return true;
}

// "GET /path HTTP/1.1"
bool parseRequestLine(std::string_view line, AdminRequest* request) {
  size_t first = line.find(' ');
  size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos) return false;
  std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, second - first - 1);
  std::string_view version = line.substr(second + 1);
  if (!isToken(method) || !isToken(target) || target.front() != '/') return false;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  request->method = method;
  size_t question = target.find('?');
  request->path = target.substr(0, question);
  request->query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  return true;
}

// True while the head may still end (with CRLFCRLF starting at or before
// kMaxAdminHead) once more bytes arrive, however the bytes were split.
bool mayStillEndInBound(std::string_view received) {
  if (received.size() <= kMaxAdminHead) return true;
  constexpr std::string_view kEnd = "\r\n\r\n";
  for (size_t start = received.size() - std::min<size_t>(received.size(), 3); start <= kMaxAdminHead;
       ++start)
    if (kEnd.substr(0, received.size() - start) == received.substr(start)) return true;
  return false;
}

// A LF not preceded by CR within the first kMaxAdminHead bytes of the head.
// Only the head is looked at (a body may hold anything), and only within
// the bound, so a verdict never changes as more bytes arrive: a longer input
// has the same head up to here.
bool hasBareLf(std::string_view received, size_t headEnd) {
  std::string_view head = received.substr(0, std::min({headEnd, received.size(), kMaxAdminHead}));
  for (size_t at = head.find('\n'); at != std::string_view::npos; at = head.find('\n', at + 1))
    if (at == 0 || head[at - 1] != '\r') return true;
  return false;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One header line of the head; Bad for anything a lenient reader could
// take differently (see parseAdminRequest()).
ParseOutcome parseHeader(std::string_view line, AdminRequest* request, std::optional<size_t>* contentLength,
                         bool* sawAuthorization, bool* sawHost, bool* sawOrigin) {
  if (line.empty() || line.front() == ' ' || line.front() == '\t') return ParseOutcome::Bad;  // obs-fold
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return ParseOutcome::Bad;
  std::string_view name = line.substr(0, colon);  // a token: no whitespace before the colon
  std::string_view value = trim(line.substr(colon + 1));
  if (!isToken(name) || !isFieldValue(value)) return ParseOutcome::Bad;
  if (equalsIgnoreCase(name, "content-length")) {
    size_t length = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (error != std::errc{} || end != value.data() + value.size()) return ParseOutcome::Bad;
    if (*contentLength && **contentLength != length) return ParseOutcome::Bad;
    if (length > kMaxAdminBody) return ParseOutcome::TooLarge;
    *contentLength = length;
  } else if (equalsIgnoreCase(name, "transfer-encoding")) {
    return ParseOutcome::Bad;  // chunked bodies are not needed here
  } else if (equalsIgnoreCase(name, "authorization")) {
    if (*sawAuthorization) return ParseOutcome::Bad;
    *sawAuthorization = true;
    request->authorization = value;
  } else if (equalsIgnoreCase(name, "host")) {
    if (*sawHost) return ParseOutcome::Bad;
    *sawHost = true;
    request->host = value;
  } else if (equalsIgnoreCase(name, "origin")) {
    // Twice could name two origins, one of them this endpoint's.
    if (*sawOrigin) return ParseOutcome::Bad;
    *sawOrigin = true;
    request->hasOrigin = true;
    request->origin = value;
  }
  return ParseOutcome::Done;
}

}  // namespace

bool adminHeadComplete(std::string_view received) { return received.find("\r\n\r\n") != std::string_view::npos; }

ParseOutcome parseAdminRequest(std::string_view received, AdminRequest* request) {
  size_t headEnd = received.find("\r\n\r\n");
  if (hasBareLf(received, headEnd)) return ParseOutcome::Bad;
  if (headEnd == std::string_view::npos)
    return mayStillEndInBound(received) ? ParseOutcome::NeedMore : ParseOutcome::TooLarge;
  if (headEnd > kMaxAdminHead) return ParseOutcome::TooLarge;
  std::string_view head = received.substr(0, headEnd);
  size_t lineEnd = head.find("\r\n");
  if (!parseRequestLine(head.substr(0, lineEnd), request)) return ParseOutcome::Bad;

  std::optional<size_t> contentLength;
  bool sawAuthorization = false, sawHost = false, sawOrigin = false;
  while (lineEnd != std::string_view::npos) {
    head.remove_prefix(lineEnd + 2);
    lineEnd = head.find("\r\n");
    ParseOutcome outcome =
        parseHeader(head.substr(0, lineEnd), request, &contentLength, &sawAuthorization, &sawHost, &sawOrigin);
    if (outcome != ParseOutcome::Done) return outcome;
  }
  std::string_view rest = received.substr(headEnd + 4);
  size_t length = contentLength.value_or(0);
  if (rest.size() < length) return ParseOutcome::NeedMore;
  request->body = rest.substr(0, length);
  return ParseOutcome::Done;
}

bool percentDecode(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      *out += text[i];
      continue;
    }
    int high = i + 2 < text.size() ? hexValue(text[i + 1]) : -1;
    int low = high >= 0 ? hexValue(text[i + 2]) : -1;
    if (low < 0) return false;
    *out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return true;
}

std::string_view statusText(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 403: return "Forbidden";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    default: return "Unknown";
  }
}

std::string serializeResponse(const AdminResponse& response) {
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
      "Connection: close\r\n{}\r\n{}",
      response.status, statusText(response.status), response.contentType, response.body.size(),
      response.extraHeaders, response.headOnly ? std::string() : response.body);
}

}  // namespace lb
