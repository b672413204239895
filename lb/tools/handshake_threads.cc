// ringlb-handshake-threads: how full TLS handshakes scale with threads when
// each thread holds what one ringlb worker holds (scripts/bench, TLS section).
//
//   ringlb-handshake-threads CONFIG LISTENER THREADS SECONDS [--shared-library]
//
// Each thread builds LISTENER's worker context the way a worker does (in an
// OpenSSL library context of its own, unless --shared-library) and a client
// context beside it, then completes full handshakes between a server leg,
// driven as the worker drives it (it detaches after TLS 1.3), and a client
// leg, through memory: no sockets, so two threads on two cores measure
// OpenSSL and ringlb's contexts, not the machine's loopback or the load
// generator. Prints "handshakes/s N" (all threads together) and exits 0, or
// says what failed and exits 1.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "lb/tls/context.h"
#include "lb/tls/in_memory.h"
#include "lb/tls/leg.h"

namespace {

std::atomic<bool> stopping{false};
std::atomic<bool> failed{false};

// `library`: the thread's own (as a worker's), or null for the process's.
// Like a worker's, it is freed only after the thread has ended.
void run(const lb::tls::ServerSettings* settings, OSSL_LIB_CTX* library, long* count) {
  if (library) OSSL_LIB_CTX_set0_default(library);
  lb::tls::SslCtxPtr server = settings->newWorkerContext(library);
  lb::tls::SslCtxPtr client(SSL_CTX_new_ex(library, nullptr, TLS_client_method()));
  if (!server || !client) return failed.store(true);
  SSL_CTX_set_session_cache_mode(client.get(), SSL_SESS_CACHE_OFF);  // every handshake a full one
  SSL_CTX_set_verify(client.get(), SSL_VERIFY_NONE, nullptr);
  lb::tls::BlockPool pool;
  long done = 0;
  while (!stopping.load(std::memory_order_relaxed)) {
    lb::tls::Leg serverLeg, clientLeg;
    if (!serverLeg.open(server.get(), true, &pool, false, true) || !clientLeg.open(client.get(), false, &pool))
      return failed.store(true);
    std::string toServer, toClient;
    lb::tls::LegStatus s = lb::tls::LegStatus::WantRead, c = lb::tls::LegStatus::WantRead;
    for (int round = 0; round < 10 && (s != lb::tls::LegStatus::Ok || c != lb::tls::LegStatus::Ok); ++round) {
      if (c != lb::tls::LegStatus::Ok) c = clientLeg.handshake();
      lb::tls::carryOutput(clientLeg, serverLeg, &toServer);
      if (s != lb::tls::LegStatus::Ok) s = serverLeg.handshake();
      lb::tls::carryOutput(serverLeg, clientLeg, &toClient);
    }
    if (s != lb::tls::LegStatus::Ok || c != lb::tls::LegStatus::Ok) {
      std::fprintf(stderr, "handshake failed: %.*s\n", static_cast<int>(serverLeg.failureText().size()),
                   serverLeg.failureText().data());
      return failed.store(true);
    }
    ++done;
  }
  *count = done;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CONFIG LISTENER THREADS SECONDS [--shared-library]\n", argv[0]);
    return 1;
  }
  int threads = std::atoi(argv[3]);
  double seconds = std::atof(argv[4]);
  bool ownLibrary = !(argc > 5 && std::strcmp(argv[5], "--shared-library") == 0);
  config::LoadResult loaded = config::loadFile(argv[1]);
  if (!loaded.config) {
    std::fprintf(stderr, "%s: the config does not load\n", argv[1]);
    return 1;
  }
  const config::Listener* listener = nullptr;
  for (const auto& l : loaded.config->listeners)
    if (l.name == argv[2]) listener = &l;
  if (!listener || !listener->tls || threads < 1 || seconds <= 0) {
    std::fprintf(stderr, "no TLS listener %s (or a bad thread count or duration)\n", argv[2]);
    return 1;
  }
  lb::tls::BuildReport report;
  auto settings = lb::tls::buildServerSettings(*listener, nullptr, &report);
  if (!settings) {
    std::fprintf(stderr, "the listener's certificates do not load\n");
    return 1;
  }
  std::vector<long> counts(static_cast<size_t>(threads));
  std::vector<lb::tls::LibraryPtr> libraries(static_cast<size_t>(threads));
  std::vector<std::thread> running;
  for (int i = 0; i < threads; ++i) {
    auto& library = libraries[static_cast<size_t>(i)];
    if (ownLibrary && !(library = lb::tls::newLibrary())) {
      std::fprintf(stderr, "no OpenSSL library context\n");
      return 1;
    }
    running.emplace_back(run, settings.get(), library.get(), &counts[static_cast<size_t>(i)]);
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stopping = true;
  long total = 0;
  for (int i = 0; i < threads; ++i) {
    running[static_cast<size_t>(i)].join();
    total += counts[static_cast<size_t>(i)];
  }
  if (failed) return 1;
  std::printf("handshakes/s %.0f\n", static_cast<double>(total) / seconds);
  return 0;
}
