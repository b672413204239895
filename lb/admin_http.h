#pragma once
// The admin endpoint's HTTP/1.1, kept to what it serves: one request per
// connection, a bounded head and body, the response closes the connection.
// Pure code: tests feed it bytes.

#include <cstddef>
#include <string>
#include <string_view>

namespace lb {

struct AdminRequest {
  std::string method;
  std::string path;           // without the query string, still percent-encoded
  std::string query;          // after '?', raw (empty: none)
  std::string authorization;  // the Authorization header's value
  std::string host;           // the Host header's value (empty: none sent)
  bool hasOrigin = false;     // an Origin header was sent (a browser's request from a page)
  std::string origin;         // its value ("http://127.0.0.1:9090"; "null" from an opaque origin)
  std::string peer;           // the client's address as text: set by Admin, not by the parser
  std::string body;
};

struct AdminResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
  std::string extraHeaders;  // whole "Name: value\r\n" lines
  bool headOnly = false;     // a HEAD request: Content-Length of the body, no body
};

constexpr size_t kMaxAdminHead = 8 * 1024;
constexpr size_t kMaxAdminBody = 4 * 1024;

enum class ParseOutcome { NeedMore, Done, Bad, TooLarge };

// Parses a whole request from the bytes received so far. NeedMore until the
// head (and Content-Length bytes of body) are in; Bad for malformed input
// (the caller answers 400); TooLarge for a head or body over the bounds (413).
// Strict, so that no other HTTP reader could see a different request in the
// same bytes: a bare LF (Bad as soon as it arrives, not at the deadline),
// obs-fold, whitespace before a colon, Content-Length given twice with
// different values or as a list, and a repeated Authorization, Host or Origin are Bad.
ParseOutcome parseAdminRequest(std::string_view received, AdminRequest* request);

// True when the request head is complete (the deadline for it is met).
bool adminHeadComplete(std::string_view received);

// Decodes %XX escapes (a path segment); false for a '%' not followed by two
// hex digits. '+' is left as it is.
bool percentDecode(std::string_view text, std::string* out);

std::string serializeResponse(const AdminResponse& response);
std::string_view statusText(int status);

}  // namespace lb
