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

#include <span>

namespace lb {

// Exit status: 0 done; 1 the server refused or failed (its reason printed);
// 2 usage or config error; 3 the endpoint could not be reached.
int runCtl(std::span<char* const> args);  // the arguments after "ctl"

}  // namespace lb
