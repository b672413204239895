// ringlb CONFIG | --check CONFIG | ctl ... | --version | --help
#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "config/config.h"
#include "lb/ctl.h"
#include "lb/preview.h"
#include "lb/process.h"
#include "lb/runtime.h"
#include "lb/upgrade.h"

namespace {

constexpr std::string_view kUsage =
    "usage: ringlb CONFIG            run with CONFIG (a TOML file)\n"
    "       ringlb --check CONFIG    validate CONFIG: print errors and exit 1, or a summary and exit 0\n"
    "       ringlb --check NEW --against OLD\n"
    "                                validate NEW and show what reloading from OLD to NEW would change\n"
    "       ringlb ctl [-c CONFIG] [--json] status|events [--since ID]|drain POOL MEMBER|\n"
    "                  undrain POOL MEMBER|weight POOL MEMBER N|reload\n"
    "                                talk to a running ringlb's admin endpoint (ringlb ctl --help)\n"
    "       ringlb --version\n"
    "       ringlb --help\n";

// Loads and validates; on errors prints each as file:line:col: message,
// and warnings (a token file every user can read) as file:line:col: warning: message.
std::optional<config::Config> load(const std::string& path) {
  config::LoadResult result = config::loadFile(path);
  for (const config::Error& error : result.errors)
    fmt::print(stderr, "{}\n", config::formatError(error));
  for (config::Error warning : result.warnings) {
    warning.message = "warning: " + warning.message;
    fmt::print(stderr, "{}\n", config::formatError(warning));
  }
  return std::move(result.config);
}

// What a start would find in the files the config names (certificates and
// keys): warnings and errors as file:line:col; false on errors.
bool checkFiles(const config::Config& config) {
  lb::tls::BuildReport report;
  bool built = lb::buildRuntime(config, nullptr, nullptr, &report) != nullptr;
  for (const config::Error& error : lb::tls::toConfigErrors(report.errors, config.sourceName))
    fmt::print(stderr, "{}\n", config::formatError(error));
  for (config::Error warning : lb::tls::toConfigErrors(report.warnings, config.sourceName)) {
    warning.message = "warning: " + warning.message;
    fmt::print(stderr, "{}\n", config::formatError(warning));
  }
  return built;
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything else: the binary SIGUSR2 will start is the one this
  // process was started from, at the path it was started from.
  lb::upgrade::StartCommand command = lb::upgrade::startCommand(argc, argv);
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  if (argc >= 2 && std::string_view(argv[1]) == "ctl")
    return lb::runCtl(std::span<char* const>(argv + 2, argv + argc));
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    fmt::print("ringlb {}\n", RINGLB_VERSION);
    return 0;
  }
  if (argc == 3 && std::string_view(argv[1]) == "--check") {
    auto config = load(argv[2]);
    if (!config || !checkFiles(*config)) return 1;
    fmt::print("{}\n", config::summary(*config));
    return 0;
  }
  if (argc == 5 && std::string_view(argv[1]) == "--check" && std::string_view(argv[3]) == "--against") {
    auto after = load(argv[2]);
    auto before = load(argv[4]);
    if (!after || !before || !checkFiles(*after)) return 1;
    fmt::print("{}\n{}", config::summary(*after), lb::previewReload(*before, *after));
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') {
    fmt::print(stderr, "{}", kUsage);
    return 2;
  }
  auto config = load(argv[1]);
  if (!config) return 1;
  return lb::runProcess(argv[1], *config, std::move(command));
}
