#pragma once
// TLS settings as the data plane uses them, built from the config once per
// config generation (start, reload, --check), and the OpenSSL contexts
// workers make from them.
//
// OpenSSL 3.0 loses much of its handshake rate to lock contention when
// threads share an SSL_CTX and to algorithm look-ups repeated per
// handshake, so: certificates and keys are parsed once per generation
// (shared, immutable X509/EVP_PKEY, reference-counted), and every worker
// builds its own SSL_CTX from them (newWorkerContext()); nothing a
// handshake touches is shared between workers except the ticket keys,
// read under a short lock only when a ticket is made or opened.
//
// Nothing here does I/O on sockets; certificates are read from disk only
// while building settings.

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace lb::tls {

// Also frees what ringlb attached to the context (its ex_data).
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// A worker's own OpenSSL library context. OpenSSL 3.0 looks algorithms up
// in its library context, under read locks every handshake takes several
// times; two workers sharing the process's one spend their time on those
// locks (in memory, 2 threads make 1.4-1.6x the handshakes of one; with a
// library context each, 1.9x: scripts/bench, TLS section). Each worker's contexts, certificates and
// keys live in its own, and the worker thread makes it its default
// (OSSL_LIB_CTX_set0_default) so that implicit fetches stay in it too.
// It must outlive everything made in it. The system's OpenSSL config is
// loaded into it, as into the process's.
struct LibraryFree {
  void operator()(OSSL_LIB_CTX* library) const;
};
using LibraryPtr = std::unique_ptr<OSSL_LIB_CTX, LibraryFree>;
LibraryPtr newLibrary();

// A problem with a TLS file or setting, found while building settings:
// `position` is the config key's; the message names the file.
struct TlsProblem {
  config::Position position;
  std::string message;
};

struct BuildReport {
  std::vector<TlsProblem> errors;    // any error: the config is refused
  std::vector<TlsProblem> warnings;  // logged (expiring within 14 days,
                                     // key readable by others, verify = false)
};

// One certificate as /status and the metrics show it.
struct CertificateInfo {
  std::string listener;  // or "pool NAME" for a client certificate
  std::string file;
  std::string subject;
  std::vector<std::string> names;  // DNS subjectAltNames (else the CN)
  std::string serial;              // hex
  int64_t notAfterUnix = 0;        // expiry, seconds since the epoch
};

// Stateless session ticket keys shared by every worker of the process (a
// returning client may reach another worker's socket), rotated: a new key
// encrypts, the previous ones still decrypt until they age out. Survives
// reloads (the process keeps one).
class TicketKeys;
std::shared_ptr<TicketKeys> makeTicketKeys();

// One [listener.tls], loaded.
class ServerSettings {
 public:
  virtual ~ServerSettings() = default;
  // A context for one worker's handshakes (its own SSL_CTX: certificates
  // chosen by SNI, ALPN, client verification, tickets, a session cache).
  // `library`: where the context, its certificates and keys are made
  // (copies of the loaded ones); null: the process's.
  virtual SslCtxPtr newWorkerContext(OSSL_LIB_CTX* library = nullptr) const = 0;
  virtual const std::vector<CertificateInfo>& certificates() const = 0;
  virtual std::chrono::milliseconds handshakeTimeout() const = 0;
};

// One [pool.NAME.tls], loaded (CA, client certificate).
class ClientSettings {
 public:
  virtual ~ClientSettings() = default;
  // A context for one thread's connections to the members (a worker's, or
  // the health prober's): verification against the CA and server_name
  // unless verify = false, the client certificate if any.
  virtual SslCtxPtr newContext(OSSL_LIB_CTX* library = nullptr) const = 0;
  virtual const std::string& serverName() const = 0;  // empty: no SNI, no name check
  virtual const std::vector<CertificateInfo>& certificates() const = 0;
  // false: verify = false, the members' certificates are not checked.
  virtual bool verify() const { return true; }
};

// Sets what each connection to a member carries on `ssl` (made from
// settings.newContext()): serverName() as SNI and, when verifying, as the
// name the member's certificate must hold (an IP address is checked
// against the certificate's IP subjectAltNames and sent as no SNI). The
// data path and health probes both call it. False when OpenSSL refused.
bool configureClient(SSL* ssl, const ClientSettings& settings);

// Load and check every file once (lb/tls/certificates.h). nullptr when
// `report` got an error for them; warnings are added but do not refuse.
// `tickets` null: the settings get ticket keys of their own.
std::shared_ptr<const ServerSettings> buildServerSettings(const config::Listener& listener,
                                                          std::shared_ptr<TicketKeys> tickets,
                                                          BuildReport* report);
std::shared_ptr<const ClientSettings> buildClientSettings(const config::Pool& pool,
                                                          BuildReport* report);

// `problems` as config errors of `file` ("file:line:col: message").
std::vector<config::Error> toConfigErrors(const std::vector<TlsProblem>& problems, const std::string& file);

}  // namespace lb::tls
