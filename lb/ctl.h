#pragma once
// `ringlb ctl`: the admin endpoint from the command line. Finds the
// endpoint's address and token in the same config file the server runs
// with, sends one request, prints the answer as a readable table (or the
// JSON with --json), and exits non-zero with the server's reason on
// failure.
//
//   ringlb ctl [-c CONFIG] [--json] status
//   ringlb ctl [-c CONFIG] [--json] events [--since ID]
//   ringlb ctl [-c CONFIG] drain|undrain POOL MEMBER
//   ringlb ctl [-c CONFIG] weight POOL MEMBER N
//   ringlb ctl [-c CONFIG] reload
//
// CONFIG defaults to /etc/ringlb/ringlb.toml.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lb {

// Exit status: 0 done; 1 the server refused or failed (its reason printed);
// 2 usage or config error; 3 the endpoint could not be reached.
int runCtl(std::span<char* const> args);  // the arguments after "ctl"

}  // namespace lb

// The pure parts of runCtl, for tests: no sockets, no files.
namespace lb::ctl {

enum class Action { Status, Events, Drain, Undrain, Weight, Reload };

struct Command {
  std::string configPath = "/etc/ringlb/ringlb.toml";
  bool json = false;
  Action action = Action::Status;
  std::string pool;
  std::string member;
  std::string weight;  // as given: the server says whether it is one
  uint64_t since = 0;  // events: after this id
};

// The arguments after "ctl"; none and a message for a usage error.
std::optional<Command> parseArgs(std::span<char* const> args, std::string* error);

// Every byte but A-Z a-z 0-9 - . _ ~ as %XX: a path segment ('/' too).
std::string percentEncode(std::string_view text);

struct Request {
  std::string method;
  std::string target;  // path and query
  std::string body;
};
Request requestFor(const Command& command);
// HTTP/1.1, one request then the server closes: Host `host`, the bearer
// token when not empty, Content-Length for a body, never an Origin.
std::string serializeRequest(const Request& request, std::string_view host, std::string_view token);

struct Response {
  int status = 0;
  std::string reason;  // the status line's phrase
  std::string body;
};
// A whole response as read up to the server's close. None, with why, for
// anything but a status line, headers and a body of its Content-Length
// (a truncated answer is not taken for a short one).
std::optional<Response> parseResponse(std::string_view raw, std::string* whyNot);

// A top-level member of a JSON object: a string's decoded value, or a
// number's or literal's text. None when the text is not one JSON object,
// the key is absent, or its value is an object or array.
std::optional<std::string> jsonField(std::string_view json, std::string_view key);

// What a successful change prints: "pool p member m1: draining (weight 1)"
// from the server's JSON answer, or "reloaded".
std::string confirmation(const Command& command, const Response& response);

}  // namespace lb::ctl
