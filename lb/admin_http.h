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
  std::string path;           // without the query string
  std::string authorization;  // the Authorization header's value
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
ParseOutcome parseAdminRequest(std::string_view received, AdminRequest* request);

std::string serializeResponse(const AdminResponse& response);
std::string_view statusText(int status);

}  // namespace lb
