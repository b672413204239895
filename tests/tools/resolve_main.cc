// Test-only: runs Resolver lookups against a DNS server on a real io_uring
// and prints each result as one JSON line (tests/integration/test_resolver.py).
//
//   resolve_main [--server IP:PORT]... [--timeout-ms N] [--attempts N]
//                [--type A|AAAA|SRV] [--port N] [--destroy-after-ms N] NAME...
//
// The lookups of every NAME run at once; the program exits 0 when every
// callback has run (each must run exactly once). --destroy-after-ms
// destroys the Resolver that long after the start instead, keeps draining
// the ring for a while (as the Control does in shutdown) and prints
// {"destroyed": true, ...}; a callback after that is a failure.

#include <arpa/inet.h>
#include <liburing.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "lb/discovery/resolver.h"
#include "lb/ring/submitter.h"
#include "lb/ring/user_data.h"

namespace {

using lb::discovery::LookupResult;
using Clock = std::chrono::steady_clock;

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string recordJson(const lb::discovery::Record& record) {
  char text[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (record.address.ss_family == AF_INET) {
    auto& v4 = reinterpret_cast<const sockaddr_in&>(record.address);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
    port = ntohs(v4.sin_port);
  } else if (record.address.ss_family == AF_INET6) {
    auto& v6 = reinterpret_cast<const sockaddr_in6&>(record.address);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
    port = ntohs(v6.sin6_port);
  }
  return "{\"address\": " + jsonString(text) + ", \"port\": " + std::to_string(port) +
         ", \"priority\": " + std::to_string(record.priority) + ", \"weight\": " + std::to_string(record.weight) + "}";
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "resolve_main: %s\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  config::Global::Dns dns;
  config::DiscoverType type = config::DiscoverType::A;
  uint16_t port = 0;
  long destroyAfterMs = -1;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("no value after " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--server") {
      std::string why;
      auto address = config::parseAddress(value(), &why);
      if (!address) usage(why.c_str());
      dns.servers.push_back(*address);
    } else if (arg == "--timeout-ms") {
      dns.timeout = std::chrono::milliseconds(std::stol(value()));
    } else if (arg == "--attempts") {
      dns.attempts = std::stoi(value());
    } else if (arg == "--type") {
      std::string text = value();
      if (text == "A") type = config::DiscoverType::A;
      else if (text == "AAAA") type = config::DiscoverType::AAAA;
      else if (text == "SRV") type = config::DiscoverType::SRV;
      else usage("--type is A, AAAA or SRV");
    } else if (arg == "--port") {
      port = static_cast<uint16_t>(std::stoi(value()));
    } else if (arg == "--destroy-after-ms") {
      destroyAfterMs = std::stol(value());
    } else if (!arg.empty() && arg[0] == '-') {
      usage(("unknown option " + arg).c_str());
    } else {
      names.push_back(arg);
    }
  }
  if (names.empty()) usage("no name to resolve");

  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int result = io_uring_queue_init_params(64, &ring, &params);
  if (result == -EINVAL) result = io_uring_queue_init(64, &ring, 0);
  if (result < 0) {
    std::fprintf(stderr, "resolve_main: io_uring_queue_init: %s\n", std::strerror(-result));
    return 1;
  }
  lb::ring::Submitter submitter(&ring, "resolve_main");
  auto resolver = std::make_unique<lb::discovery::Resolver>(&submitter);
  std::string why;
  if (!resolver->start(dns, &why)) {
    std::fprintf(stderr, "resolve_main: %s\n", why.c_str());
    return 1;
  }

  const Clock::time_point started = Clock::now();
  size_t finished = 0;
  bool destroyed = false;
  std::vector<int> calls(names.size(), 0);
  for (size_t i = 0; i < names.size(); ++i) {
    resolver->lookup(names[i], type, port, [&, i](LookupResult lookup) {
      if (destroyed || ++calls[i] != 1) {
        std::fprintf(stderr, "resolve_main: callback of %s ran after destruction or twice\n", names[i].c_str());
        std::abort();
      }
      ++finished;
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
      std::string line = "{\"name\": " + jsonString(names[i]) + ", \"status\": " +
                         jsonString(lb::discovery::toString(lookup.status)) +
                         ", \"ttl\": " + std::to_string(lookup.ttl.count()) +
                         ", \"elapsed_ms\": " + std::to_string(elapsed.count()) +
                         ", \"detail\": " + jsonString(lookup.detail) + ", \"records\": [";
      for (size_t r = 0; r < lookup.records.size(); ++r) line += (r ? ", " : "") + recordJson(lookup.records[r]);
      std::printf("%s]}\n", line.c_str());
      std::fflush(stdout);
    });
  }

  // The control loop in small: submit, wait up to one tick, hand the
  // Discovery completions over, tick.
  uint64_t lateCompletions = 0;
  Clock::time_point destroyedAt;
  for (;;) {
    submitter.submit();
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec tick{0, 20 * 1000 * 1000};
    io_uring_wait_cqe_timeout(&ring, &cqe, &tick);
    submitter.drain([&](const io_uring_cqe& completion) {
      if (lb::ring::unpack(completion.user_data).owner != lb::ring::Owner::Discovery) return;
      if (resolver) {
        resolver->onCompletion(completion.user_data, completion.res);
      } else {
        ++lateCompletions;  // dropped, as the Control drops them once its Resolver is gone
      }
    });
    if (resolver) resolver->onTick();
    auto elapsed = Clock::now() - started;
    if (!destroyed && destroyAfterMs >= 0 && elapsed >= std::chrono::milliseconds(destroyAfterMs)) {
      size_t pending = resolver->pending();
      resolver.reset();
      destroyed = true;
      destroyedAt = Clock::now();
      std::printf("{\"destroyed\": true, \"pending\": %zu}\n", pending);
      std::fflush(stdout);
    }
    if (destroyed && Clock::now() - destroyedAt > std::chrono::milliseconds(300)) break;
    if (!destroyed && finished == names.size()) break;
  }
  if (destroyed) {
    std::printf("{\"late_completions\": %llu}\n", static_cast<unsigned long long>(lateCompletions));
  }
  resolver.reset();  // it queues its polls' removal on the ring: before the ring goes
  io_uring_queue_exit(&ring);
  return 0;
}
