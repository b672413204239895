#include "lb/tls/context.h"

#include <arpa/inet.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <mutex>

#include <fmt/format.h>

#include "lb/tls/certificates.h"
#include "lb/tls/leg.h"
#include "lb/tls/server_names.h"
#include "lb/tls/ticket_keys.h"

namespace lb::tls {
namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are
// OpenSSL's defaults, all of them AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
// TLS 1.2 sessions each worker remembers by session id (OpenSSL evicts
// the oldest beyond it); about 1 KiB each.
constexpr long kSessionCacheSize = 16 * 1024;
// How long a session (cached or in a ticket) may be resumed: well within
// the time a ticket key still decrypts (lb/tls/ticket_keys.h).
constexpr long kSessionTimeoutSeconds = 2 * 3600;
// TLS 1.3 tickets sent after each full handshake (one per resumption).
constexpr size_t kTls13Tickets = 1;

int64_t nowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

// Everything a listener's contexts need, loaded once per config generation
// and only read afterwards (every worker's contexts point at it).
struct ServerConfig {
  std::string listener;
  std::vector<LoadedCertificate> certificates;  // [0]: the default
  ServerNameTable names;                         // certificate names -> index
  std::vector<X509Ptr> clientCa;
  config::VerifyClient verifyClient = config::VerifyClient::None;
  config::TlsVersion minVersion = config::TlsVersion::V1_2;
  std::string alpnWire;  // the protocols in order, each with its length byte
  std::array<unsigned char, SSL_MAX_SID_CTX_LENGTH> sessionIdContext{};
  std::shared_ptr<TicketKeys> tickets;
  std::vector<CertificateInfo> infos;
  std::chrono::milliseconds handshakeTimeout{};
};

// Attached to every SSL_CTX newWorkerContext() makes (ex_data), freed by
// SslCtxFree: not by an ex_data free callback, because OpenSSL keeps those
// per library context, and a worker's contexts live in its own (LibraryPtr)
// where the process's registration does not exist. The worker's main context is certificate 0's and the one
// the SSL objects are made from (their session context: the session cache
// and tickets); the SNI callback moves a handshake to the context of
// another certificate, which the main context's data owns.
struct ContextData {
  std::shared_ptr<const ServerConfig> config;
  std::vector<SslCtxPtr> byCertificate;  // main context only; [0] empty (itself)
};

int contextDataIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

const ContextData* contextData(const SSL* ssl) {
  return static_cast<const ContextData*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), contextDataIndex()));
}

int onServerName(SSL* ssl, int*, void* arg) {
  const auto* data = static_cast<const ContextData*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!sni) return SSL_TLSEXT_ERR_OK;  // the default certificate
  std::optional<uint32_t> index = data->config->names.find(sni);
  if (index && *index != 0 && *index < data->byCertificate.size())
    SSL_set_SSL_CTX(ssl, data->byCertificate[*index].get());
  return SSL_TLSEXT_ERR_OK;
}

// Server preference: the first configured protocol the client offers. A
// client whose ALPN list shares none is refused (no_application_protocol).
int onAlpn(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
           unsigned int inLength, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outLength, reinterpret_cast<const unsigned char*>(wire->data()),
                            static_cast<unsigned int>(wire->size()), in, inLength) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int onTicketKey(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                int encrypt) {
  const ContextData* data = contextData(ssl);
  if (!data || !data->config->tickets) return 0;  // no ticket, or a full handshake
  int result = data->config->tickets->onTicket(name, iv, cipher, mac, encrypt);
  // A TLS 1.3 ticket is for one use (RFC 8446, C.4): a resumption asks for
  // a fresh one (2), else OpenSSL sends none and the client's next
  // connection is a full handshake.
  if (!encrypt && result == 1 && SSL_version(ssl) == TLS1_3_VERSION) return 2;
  return result;
}

// What every context of a listener has, whichever certificate it holds.
bool configureServerContext(SSL_CTX* ctx, const std::shared_ptr<const ServerConfig>& config,
                            size_t certificate, X509_STORE* clientStore, OSSL_LIB_CTX* library) {
  auto* data = new ContextData{config, {}};
  if (SSL_CTX_set_ex_data(ctx, contextDataIndex(), data) != 1) {
    delete data;
    return false;
  }
  SSL_CTX_set_min_proto_version(ctx, config->minVersion == config::TlsVersion::V1_3 ? TLS1_3_VERSION
                                                                                   : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // The chain is the certificate file's: never built from a store per handshake.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, kGroups) != 1)
    return false;
  const LoadedCertificate& loaded = config->certificates[certificate];
  CertificateCopy copy;
  if (library && !copyInto(library, loaded, &copy)) return false;
  if (SSL_CTX_use_cert_and_key(ctx, library ? copy.cert.get() : loaded.cert.get(),
                               library ? copy.key.get() : loaded.key.get(),
                               library ? copy.chain.get() : loaded.chain.get(), 1) != 1)
    return false;
  if (!config->alpnWire.empty())
    SSL_CTX_set_alpn_select_cb(ctx, onAlpn, const_cast<std::string*>(&config->alpnWire));
  if (config->verifyClient != config::VerifyClient::None) {
    int mode = SSL_VERIFY_PEER;
    if (config->verifyClient == config::VerifyClient::Required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    X509_STORE_up_ref(clientStore);
    SSL_CTX_set_cert_store(ctx, clientStore);
    for (const X509Ptr& ca : config->clientCa) SSL_CTX_add_client_CA(ctx, ca.get());
  }
  SSL_CTX_set_session_id_context(ctx, config->sessionIdContext.data(),
                                 static_cast<unsigned int>(config->sessionIdContext.size()));
  SSL_CTX_set_timeout(ctx, kSessionTimeoutSeconds);
  SSL_CTX_set_num_tickets(ctx, kTls13Tickets);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, onTicketKey);
  Leg::enableDetach(ctx);  // on every context: the key log is the one SNI chose
  ERR_clear_error();
  return true;
}

class ServerSettingsImpl final : public ServerSettings {
 public:
  explicit ServerSettingsImpl(std::shared_ptr<const ServerConfig> config) : config_(std::move(config)) {}

  SslCtxPtr newWorkerContext(OSSL_LIB_CTX* library) const override {
    X509_STORE* clientStore =
        config_->verifyClient != config::VerifyClient::None ? newStore(config_->clientCa, library) : nullptr;
    SslCtxPtr main = newContextFor(0, clientStore, library);
    if (main) {
      auto* data = static_cast<ContextData*>(SSL_CTX_get_ex_data(main.get(), contextDataIndex()));
      data->byCertificate.resize(config_->certificates.size());
      for (size_t i = 1; i < config_->certificates.size() && main; ++i) {
        data->byCertificate[i] = newContextFor(i, clientStore, library);
        if (!data->byCertificate[i]) main.reset();
      }
      if (main) {
        SSL_CTX_set_session_cache_mode(main.get(), SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(main.get(), kSessionCacheSize);
        SSL_CTX_set_tlsext_servername_callback(main.get(), onServerName);
        SSL_CTX_set_tlsext_servername_arg(main.get(), data);
      }
    }
    X509_STORE_free(clientStore);
    ERR_clear_error();
    return main;
  }
  const std::vector<CertificateInfo>& certificates() const override { return config_->infos; }
  std::chrono::milliseconds handshakeTimeout() const override { return config_->handshakeTimeout; }

 private:
  SslCtxPtr newContextFor(size_t certificate, X509_STORE* clientStore, OSSL_LIB_CTX* library) const {
    SslCtxPtr ctx(SSL_CTX_new_ex(library, nullptr, TLS_server_method()));
    if (!ctx || !configureServerContext(ctx.get(), config_, certificate, clientStore, library)) return nullptr;
    return ctx;
  }

  std::shared_ptr<const ServerConfig> config_;
};

struct ClientConfig {
  std::string serverName;
  bool verify = true;
  std::optional<std::vector<X509Ptr>> ca;  // absent: the default trust store
  std::optional<LoadedCertificate> clientCertificate;
  std::vector<CertificateInfo> infos;
};

class ClientSettingsImpl final : public ClientSettings {
 public:
  explicit ClientSettingsImpl(std::shared_ptr<const ClientConfig> config) : config_(std::move(config)) {}

  SslCtxPtr newContext(OSSL_LIB_CTX* library) const override {
    SslCtxPtr ctx(SSL_CTX_new_ex(library, nullptr, TLS_client_method()));
    if (!ctx) return nullptr;
    SSL_CTX* c = ctx.get();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    // Sessions are kept by their user (per member), not in the context.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(c, kGroups) != 1)
      return nullptr;
    if (config_->verify) {
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
      if (config_->ca)
        SSL_CTX_set_cert_store(c, newStore(*config_->ca, library));
      else if (SSL_CTX_set_default_verify_paths(c) != 1)
        return nullptr;
    } else {
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    }
    if (const auto& own = config_->clientCertificate) {
      CertificateCopy copy;
      if (library && !copyInto(library, *own, &copy)) return nullptr;
      if (SSL_CTX_use_cert_and_key(c, library ? copy.cert.get() : own->cert.get(),
                                   library ? copy.key.get() : own->key.get(),
                                   library ? copy.chain.get() : own->chain.get(), 1) != 1)
        return nullptr;
    }
    ERR_clear_error();
    return ctx;
  }
  const std::string& serverName() const override { return config_->serverName; }
  const std::vector<CertificateInfo>& certificates() const override { return config_->infos; }
  bool verify() const override { return config_->verify; }

 private:
  std::shared_ptr<const ClientConfig> config_;
};

std::string alpnWire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& protocol : protocols) {
    if (protocol.empty() || protocol.size() > 255) continue;  // the loader refuses these
    wire += static_cast<char>(protocol.size());
    wire += protocol;
  }
  return wire;
}

bool isIpAddress(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 || inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

}  // namespace

void LibraryFree::operator()(OSSL_LIB_CTX* library) const { OSSL_LIB_CTX_free(library); }

void SslCtxFree::operator()(SSL_CTX* ctx) const {
  if (auto* data = static_cast<ContextData*>(SSL_CTX_get_ex_data(ctx, contextDataIndex()))) {
    SSL_CTX_set_ex_data(ctx, contextDataIndex(), nullptr);
    delete data;  // and with it the contexts of the other certificates
  }
  SSL_CTX_free(ctx);
}

LibraryPtr newLibrary() {
  LibraryPtr library(OSSL_LIB_CTX_new());
  if (!library) return nullptr;
  // The system's config (OPENSSL_CONF, else openssl.cnf): absent or
  // unreadable, OpenSSL's own defaults hold, as for the process's context.
  if (char* file = CONF_get1_default_config_file()) {
    (void)OSSL_LIB_CTX_load_config(library.get(), file);
    OPENSSL_free(file);
  }
  ERR_clear_error();
  // Unless the config chose providers (FIPS, say), the default one.
  if (!OSSL_PROVIDER_available(library.get(), "default") && !OSSL_PROVIDER_available(library.get(), "fips") &&
      !OSSL_PROVIDER_load(library.get(), "default")) {
    ERR_clear_error();
    return nullptr;
  }
  return library;
}

std::shared_ptr<const ServerSettings> buildServerSettings(const config::Listener& listener,
                                                          std::shared_ptr<TicketKeys> tickets,
                                                          BuildReport* report) {
  if (!listener.tls) return nullptr;
  const config::ListenerTls& spec = *listener.tls;
  size_t errorsBefore = report->errors.size();
  auto config = std::make_shared<ServerConfig>();
  config->listener = listener.name;
  int64_t now = nowUnix();
  for (const config::CertificateFiles& files : spec.certificates) {
    auto loaded = loadCertificate(files, listener.name, now, report);
    if (!loaded) continue;
    auto index = static_cast<uint32_t>(config->certificates.size());
    for (const std::string& name : loaded->names) config->names.add(name, index);
    config->infos.push_back(loaded->info);
    config->certificates.push_back(std::move(*loaded));
  }
  if (spec.clientCa)
    if (auto certificates = loadCaFile(*spec.clientCa, "client_ca", report))
      config->clientCa = std::move(*certificates);
  if (spec.certificates.empty())  // the loader refuses this; never serve without one
    report->errors.push_back({{}, fmt::format("listener {}: [listener.tls] has no certificate",
                                              config::printable(listener.name))});
  if (report->errors.size() != errorsBefore) return nullptr;
  config->verifyClient = spec.verifyClient;
  config->minVersion = spec.minVersion;
  config->alpnWire = alpnWire(spec.alpn);
  // Sessions of one listener resume only on that listener.
  unsigned int length = 0;
  std::string context = "ringlb listener " + listener.name;
  EVP_Digest(context.data(), context.size(), config->sessionIdContext.data(), &length, EVP_sha256(), nullptr);
  config->tickets = tickets ? std::move(tickets) : makeTicketKeys();
  config->handshakeTimeout = spec.handshakeTimeout;
  return std::make_shared<ServerSettingsImpl>(std::move(config));
}

std::shared_ptr<const ClientSettings> buildClientSettings(const config::Pool& pool, BuildReport* report) {
  if (!pool.tls) return nullptr;
  const config::PoolTls& spec = *pool.tls;
  size_t errorsBefore = report->errors.size();
  auto config = std::make_shared<ClientConfig>();
  config->serverName = spec.serverName;
  config->verify = spec.verify;
  std::string owner = "pool " + pool.name;
  if (spec.ca) config->ca = loadCaFile(*spec.ca, "ca", report);
  if (spec.clientCertificate) {
    config->clientCertificate = loadCertificate(*spec.clientCertificate, owner, nowUnix(), report);
    if (config->clientCertificate) config->infos.push_back(config->clientCertificate->info);
  }
  if (!spec.verify)
    report->warnings.push_back(
        {spec.position, fmt::format("pool {}: verify = false: the members' certificates are not checked "
                                    "(anyone on the path can read and change this traffic)",
                                    config::printable(pool.name))});
  if (report->errors.size() != errorsBefore) return nullptr;
  return std::make_shared<ClientSettingsImpl>(std::move(config));
}

bool configureClient(SSL* ssl, const ClientSettings& settings) {
  const std::string& name = settings.serverName();
  if (name.empty()) return true;
  if (isIpAddress(name)) {
    // No SNI for an address (RFC 6066); the certificate must list it.
    return !settings.verify() || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  }
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) return false;
  if (!settings.verify()) return true;
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(ssl, name.c_str()) == 1;
}

std::vector<config::Error> toConfigErrors(const std::vector<TlsProblem>& problems, const std::string& file) {
  std::vector<config::Error> errors;
  for (const TlsProblem& problem : problems)
    errors.push_back({file, problem.position.line, problem.position.column, problem.message});
  return errors;
}

}  // namespace lb::tls
