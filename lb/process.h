#pragma once
// The running process: builds pools and listeners from a validated config,
// binds every listening socket before starting anything, runs the workers,
// and serves signals on the calling (control) thread until stopped.

#include <string>

#include "config/config.h"
#include "lb/upgrade.h"

namespace lb {

// Returns the process exit code: 0 after a clean stop, 1 when the config
// could not be put into effect (a port in use, no io_uring, ...).
// `configPath` is read again on reload (SIGHUP, POST /reload); `command`
// is what SIGUSR2 starts (lb/upgrade.h).
int runProcess(const std::string& configPath, const config::Config& config, upgrade::StartCommand command);

}  // namespace lb
