// TLS settings (lb/tls/context.h): certificate and key files checked with
// the config key's position; SNI, ALPN, versions, client certificates and
// resumption across workers through real handshakes between two SSL
// objects in memory; ticket key rotation on an injected clock.
#include "lb/tls/context.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <map>

#include "lb/tls/ticket_keys.h"
#include "tests/unit/tls_test_pki.h"

namespace {

using namespace testpki;
using lb::tls::BuildReport;

constexpr int64_t kDay = 86400;

// One PKI for the whole file: key generation (RSA) is the slow part.
struct Pki {
  TempDir dir;
  Pkey caKey = makeKey(KeyKind::EcP256);
  Cert ca = makeCert({.commonName = "Test Root CA", .ca = true}, caKey.get(), nullptr, nullptr);
  Pkey intermediateKey = makeKey(KeyKind::EcP256);
  Cert intermediate = makeCert({.commonName = "Test Intermediate", .ca = true, .serial = 2},
                               intermediateKey.get(), ca.get(), caKey.get());
  Pkey rsaKey = makeKey(KeyKind::Rsa2048);
  Pkey ecKey = makeKey(KeyKind::EcP256);
  Pkey otherKey = makeKey(KeyKind::EcP256);
  Pkey otherCaKey = makeKey(KeyKind::EcP256);
  Cert otherCa = makeCert({.commonName = "Other CA", .ca = true, .serial = 3}, otherCaKey.get(), nullptr, nullptr);

  // edge: RSA, signed by the intermediate (a chain); api: ECDSA with a
  // wildcard; both valid for 30 days.
  std::string edgeCert, edgeKey, apiCert, apiKey, caFile, otherCaFile;
  // A client certificate from the CA and one from another CA.
  std::string clientCert, clientKey, strangerCert, strangerKey;

  Pki() {
    Cert edge = makeCert({.commonName = "edge.example.com", .dnsNames = {"edge.example.com", "www.example.com"},
                          .serial = 0x1001},
                         rsaKey.get(), intermediate.get(), intermediateKey.get());
    edgeCert = writeCerts(dir.file("edge.pem"), {edge.get(), intermediate.get()});
    edgeKey = writeKey(dir.file("edge.key"), rsaKey.get());
    Cert api = makeCert({.commonName = "api", .dnsNames = {"api.example.com", "*.svc.example.com"}, .serial = 0x1002},
                        ecKey.get(), ca.get(), caKey.get());
    apiCert = writeCerts(dir.file("api.pem"), {api.get()});
    apiKey = writeKey(dir.file("api.key"), ecKey.get());
    caFile = writeCerts(dir.file("ca.pem"), {ca.get()});
    otherCaFile = writeCerts(dir.file("other-ca.pem"), {otherCa.get()});
    Cert client = makeCert({.commonName = "client-1", .serial = 0x2001}, otherKey.get(), ca.get(), caKey.get());
    clientCert = writeCerts(dir.file("client.pem"), {client.get()});
    clientKey = writeKey(dir.file("client.key"), otherKey.get());
    Cert stranger =
        makeCert({.commonName = "stranger", .serial = 0x2002}, otherKey.get(), otherCa.get(), otherCaKey.get());
    strangerCert = writeCerts(dir.file("stranger.pem"), {stranger.get()});
    strangerKey = clientKey;
  }
};

Pki& pki() {
  static Pki instance;  // its directory is removed at exit
  return instance;
}

config::FilePath at(std::string path, int line, int column = 1) { return {std::move(path), {line, column}}; }

config::Listener listenerWith(std::vector<config::CertificateFiles> certificates) {
  config::Listener listener;
  listener.name = "edge";
  listener.tls.emplace();
  listener.tls->certificates = std::move(certificates);
  return listener;
}

config::Listener twoCertificates() {
  return listenerWith({{at(pki().edgeCert, 10, 5), at(pki().edgeKey, 10, 30)},
                       {at(pki().apiCert, 11, 5), at(pki().apiKey, 11, 30)}});
}

std::shared_ptr<const lb::tls::ServerSettings> build(const config::Listener& listener, BuildReport* report,
                                                     std::shared_ptr<lb::tls::TicketKeys> tickets = nullptr) {
  return lb::tls::buildServerSettings(listener, std::move(tickets), report);
}

std::string describe(const BuildReport& report) {
  std::string out;
  for (const auto& e : report.errors)
    out += "error " + std::to_string(e.position.line) + ":" + std::to_string(e.position.column) + " " + e.message + "\n";
  for (const auto& w : report.warnings)
    out += "warning " + std::to_string(w.position.line) + ":" + std::to_string(w.position.column) + " " + w.message + "\n";
  return out;
}

// --- loading and checking -------------------------------------------------

TEST(TlsSettings, LoadsRsaAndEcdsaCertificatesWithChain) {
  BuildReport report;
  auto settings = build(twoCertificates(), &report);
  ASSERT_TRUE(settings) << describe(report);
  EXPECT_TRUE(report.errors.empty() && report.warnings.empty()) << describe(report);
  const auto& certificates = settings->certificates();
  ASSERT_EQ(certificates.size(), 2u);
  EXPECT_EQ(certificates[0].listener, "edge");
  EXPECT_EQ(certificates[0].file, pki().edgeCert);
  EXPECT_EQ(certificates[0].subject, "CN=edge.example.com,O=ringlb tests");
  EXPECT_EQ(certificates[0].names, (std::vector<std::string>{"edge.example.com", "www.example.com"}));
  EXPECT_EQ(certificates[0].serial, "1001");
  EXPECT_NEAR(static_cast<double>(certificates[0].notAfterUnix), static_cast<double>(time(nullptr) + 30 * kDay), 60);
  EXPECT_EQ(certificates[1].names, (std::vector<std::string>{"api.example.com", "*.svc.example.com"}));
  EXPECT_TRUE(settings->newWorkerContext());
}

TEST(TlsSettings, NamesAreTheCommonNameWithoutSubjectAltNames) {
  Pki& p = pki();
  Cert cert = makeCert({.commonName = "Only.CN.example.com"}, p.ecKey.get(), p.ca.get(), p.caKey.get());
  std::string file = writeCerts(p.dir.file("cn-only.pem"), {cert.get()});
  BuildReport report;
  auto settings = build(listenerWith({{at(file, 1), at(p.apiKey, 2)}}), &report);
  ASSERT_TRUE(settings) << describe(report);
  EXPECT_EQ(settings->certificates()[0].names, (std::vector<std::string>{"Only.CN.example.com"}));
}

struct ErrorCase {
  const char* what;
  std::function<config::CertificateFiles()> files;
  int line;               // where the error must point
  std::string mentions;   // a part of the message (the file)
  std::string says;       // another part
};

TEST(TlsSettings, EveryFileErrorNamesTheFileAtTheKeysPosition) {
  Pki& p = pki();
  writeText(p.dir.file("empty.pem"), "no certificate in here\n");
  writeText(p.dir.file("broken.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n");
  mkdir(p.dir.file("a-directory").c_str(), 0700);
  Cert expired = makeCert({.commonName = "old", .notBeforeSeconds = -60 * kDay, .notAfterSeconds = -kDay},
                          p.ecKey.get(), p.ca.get(), p.caKey.get());
  std::string expiredFile = writeCerts(p.dir.file("expired.pem"), {expired.get()});
  Cert future = makeCert({.commonName = "future", .notBeforeSeconds = 2 * kDay, .notAfterSeconds = 30 * kDay},
                         p.ecKey.get(), p.ca.get(), p.caKey.get());
  std::string futureFile = writeCerts(p.dir.file("future.pem"), {future.get()});
  std::vector<ErrorCase> cases = {
      {"missing certificate", [&] { return config::CertificateFiles{at(p.dir.file("nope.pem"), 3), at(p.apiKey, 4)}; },
       3, "nope.pem", "No such file or directory"},
      {"certificate is a directory",
       [&] { return config::CertificateFiles{at(p.dir.file("a-directory"), 3), at(p.apiKey, 4)}; }, 3, "a-directory",
       "not a regular file"},
      {"no certificate", [&] { return config::CertificateFiles{at(p.dir.file("empty.pem"), 3), at(p.apiKey, 4)}; }, 3,
       "empty.pem", "holds no PEM certificate"},
      {"broken certificate",
       [&] { return config::CertificateFiles{at(p.dir.file("broken.pem"), 3), at(p.apiKey, 4)}; }, 3, "broken.pem",
       "does not parse"},
      {"missing key", [&] { return config::CertificateFiles{at(p.apiCert, 3), at(p.dir.file("nope.key"), 4)}; }, 4,
       "nope.key", "No such file or directory"},
      {"key file without a key", [&] { return config::CertificateFiles{at(p.apiCert, 3), at(p.apiCert, 4)}; }, 4,
       "api.pem", "holds no PEM private key"},
      {"key of another certificate", [&] { return config::CertificateFiles{at(p.apiCert, 3), at(p.edgeKey, 4)}; }, 4,
       "edge.key", "does not match certificate " + p.apiCert},
      {"expired", [&] { return config::CertificateFiles{at(expiredFile, 3), at(p.apiKey, 4)}; }, 3, "expired.pem",
       "expired on"},
      {"not yet valid", [&] { return config::CertificateFiles{at(futureFile, 3), at(p.apiKey, 4)}; }, 3, "future.pem",
       "is not valid before"},
  };
  for (const ErrorCase& c : cases) {
    BuildReport report;
    auto listener = listenerWith({{at(p.edgeCert, 1), at(p.edgeKey, 2)}, c.files()});
    EXPECT_FALSE(build(listener, &report)) << c.what;
    ASSERT_EQ(report.errors.size(), 1u) << c.what << "\n" << describe(report);
    EXPECT_EQ(report.errors[0].position.line, c.line) << c.what;
    EXPECT_NE(report.errors[0].message.find(c.mentions), std::string::npos) << c.what << ": " << report.errors[0].message;
    EXPECT_NE(report.errors[0].message.find(c.says), std::string::npos) << c.what << ": " << report.errors[0].message;
  }
}

TEST(TlsSettings, UnreadableClientCaIsAnError) {
  Pki& p = pki();
  for (const std::string& file : {p.dir.file("no-ca.pem"), p.dir.file("empty.pem")}) {
    writeText(p.dir.file("empty.pem"), "\n");
    config::Listener listener = twoCertificates();
    listener.tls->clientCa = at(file, 7, 13);
    listener.tls->verifyClient = config::VerifyClient::Required;
    BuildReport report;
    EXPECT_FALSE(build(listener, &report));
    ASSERT_EQ(report.errors.size(), 1u) << describe(report);
    EXPECT_EQ(report.errors[0].position.line, 7);
    EXPECT_EQ(report.errors[0].position.column, 13);
    EXPECT_NE(report.errors[0].message.find("client_ca file " + file), std::string::npos) << report.errors[0].message;
  }
}

TEST(TlsSettings, WarnsOfACertificateExpiringWithinTwoWeeks) {
  Pki& p = pki();
  Cert soon = makeCert({.commonName = "soon", .notAfterSeconds = 3 * kDay - 1800}, p.ecKey.get(), p.ca.get(), p.caKey.get());
  std::string file = writeCerts(p.dir.file("soon.pem"), {soon.get()});
  BuildReport report;
  auto settings = build(listenerWith({{at(file, 5, 9), at(p.apiKey, 6)}}), &report);
  EXPECT_TRUE(settings) << "a warning does not refuse";
  ASSERT_EQ(report.warnings.size(), 1u) << describe(report);
  EXPECT_EQ(report.warnings[0].position.line, 5);
  EXPECT_EQ(report.warnings[0].position.column, 9);
  EXPECT_NE(report.warnings[0].message.find(file + " (CN=soon,O=ringlb tests) expires in 2 days 23 hours"),
            std::string::npos)
      << report.warnings[0].message;
}

TEST(TlsSettings, WarnsOfAKeyEveryUserCanRead) {
  Pki& p = pki();
  std::string open = writeKey(p.dir.file("open.key"), p.ecKey.get(), 0644);
  std::string group = writeKey(p.dir.file("group.key"), p.ecKey.get(), 0640);
  BuildReport report;
  EXPECT_TRUE(build(listenerWith({{at(p.apiCert, 1), at(open, 2, 20)}}), &report));
  ASSERT_EQ(report.warnings.size(), 1u) << describe(report);
  EXPECT_EQ(report.warnings[0].position.line, 2);
  EXPECT_EQ(report.warnings[0].position.column, 20);
  EXPECT_NE(report.warnings[0].message.find("private key file " + open + " is readable by every user"),
            std::string::npos)
      << report.warnings[0].message;
  EXPECT_NE(report.warnings[0].message.find("mode 0644"), std::string::npos) << report.warnings[0].message;
  BuildReport groupReport;
  EXPECT_TRUE(build(listenerWith({{at(p.apiCert, 1), at(group, 2)}}), &groupReport));
  EXPECT_TRUE(groupReport.warnings.empty()) << "0640 is the ssl-cert group convention: " << describe(groupReport);
}

// --- handshakes -----------------------------------------------------------

struct ClientOptions {
  std::string sni{};
  std::vector<std::string> alpn{};
  int maxVersion = TLS1_3_VERSION;
  std::string certFile{};
  std::string keyFile{};
  SSL_SESSION* session = nullptr;
  bool noTickets = false;
};

lb::tls::SslCtxPtr clientContext(const ClientOptions& options) {
  lb::tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(ctx.get(), options.maxVersion);
  // No client-side cache: freeing a context flushes its cache, and
  // OpenSSL marks every session it flushes as not resumable.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (options.noTickets) SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (!options.certFile.empty()) {
    SSL_CTX_use_certificate_chain_file(ctx.get(), options.certFile.c_str());
    SSL_CTX_use_PrivateKey_file(ctx.get(), options.keyFile.c_str(), SSL_FILETYPE_PEM);
  }
  return ctx;
}

struct Result {
  bool ok = false;
  std::string certificate;  // the server certificate's CN
  std::string alpn;
  bool resumed = false;
  std::string version;
  SSL_SESSION* session = nullptr;  // the client's, owned by the caller when set
  std::string clientCertificate;   // the CN the server saw
};

Result connect(SSL_CTX* server, const ClientOptions& options = {}) {
  auto clientCtx = clientContext(options);
  Ssl client(SSL_new(clientCtx.get()));
  Ssl serverSsl(SSL_new(server));
  if (!options.sni.empty()) SSL_set_tlsext_host_name(client.get(), options.sni.c_str());
  if (!options.alpn.empty()) {
    std::string wire;
    for (const auto& p : options.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(client.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  if (options.session) SSL_set_session(client.get(), options.session);
  Result result;
  result.ok = handshake(client.get(), serverSsl.get());
  if (!result.ok) return result;
  result.certificate = peerCommonName(client.get());
  result.clientCertificate = peerCommonName(serverSsl.get());
  const unsigned char* alpn = nullptr;
  unsigned alpnLength = 0;
  SSL_get0_alpn_selected(serverSsl.get(), &alpn, &alpnLength);
  result.alpn.assign(reinterpret_cast<const char*>(alpn), alpnLength);
  result.resumed = SSL_session_reused(serverSsl.get()) == 1;
  result.version = SSL_get_version(serverSsl.get());
  result.session = SSL_get1_session(client.get());
  // A clean end: OpenSSL drops the session of a connection freed without
  // one from the caches.
  SSL_set_shutdown(client.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_set_shutdown(serverSsl.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  return result;
}

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using Session = std::unique_ptr<SSL_SESSION, SessionFree>;

TEST(TlsHandshake, CertificateChosenBySniExactThenWildcardElseTheFirst) {
  BuildReport report;
  auto settings = build(twoCertificates(), &report);
  ASSERT_TRUE(settings) << describe(report);
  auto ctx = settings->newWorkerContext();
  ASSERT_TRUE(ctx);
  std::map<std::string, std::string> expected = {
      {"", "edge.example.com"},                  // no SNI: the first
      {"api.example.com", "api"},                 // exact, ECDSA while the default is RSA
      {"API.Example.COM.", "api"},                // any case, a trailing dot
      {"x.svc.example.com", "api"},               // wildcard
      {"www.example.com", "edge.example.com"},    // the first's second name
      {"a.b.svc.example.com", "edge.example.com"},  // a wildcard covers one label
      {"unknown.example.org", "edge.example.com"},  // no match: the first
  };
  for (const auto& [sni, cn] : expected) {
    Result result = connect(ctx.get(), {.sni = sni});
    Session session(result.session);
    EXPECT_TRUE(result.ok) << sni;
    EXPECT_EQ(result.certificate, cn) << "SNI " << sni;
  }
  // Over TLS 1.2 too, where the certificate's key type decides the suite.
  Result tls12 = connect(ctx.get(), {.sni = "api.example.com", .maxVersion = TLS1_2_VERSION});
  Session session(tls12.session);
  EXPECT_TRUE(tls12.ok);
  EXPECT_EQ(tls12.version, "TLSv1.2");
  EXPECT_EQ(tls12.certificate, "api");
}

TEST(TlsHandshake, AlpnInTheConfiguredOrder) {
  config::Listener listener = twoCertificates();
  listener.tls->alpn = {"h2", "http/1.1"};
  BuildReport report;
  auto ctx = build(listener, &report)->newWorkerContext();
  Result both = connect(ctx.get(), {.alpn = {"http/1.1", "h2"}});
  Session s1(both.session);
  EXPECT_TRUE(both.ok);
  EXPECT_EQ(both.alpn, "h2") << "server preference";
  Result one = connect(ctx.get(), {.alpn = {"http/1.1"}});
  Session s2(one.session);
  EXPECT_EQ(one.alpn, "http/1.1");
  Result none = connect(ctx.get());
  Session s3(none.session);
  EXPECT_TRUE(none.ok) << "a client without ALPN is served";
  EXPECT_EQ(none.alpn, "");
  Result other = connect(ctx.get(), {.alpn = {"spdy/3"}});
  EXPECT_FALSE(other.ok) << "no protocol in common: no_application_protocol";
}

TEST(TlsHandshake, MinimumVersion) {
  config::Listener listener = twoCertificates();
  BuildReport report;
  auto tls12 = build(listener, &report)->newWorkerContext();
  Result old = connect(tls12.get(), {.maxVersion = TLS1_2_VERSION});
  Session s1(old.session);
  EXPECT_TRUE(old.ok);
  Result tls11 = connect(tls12.get(), {.maxVersion = TLS1_1_VERSION});
  EXPECT_FALSE(tls11.ok) << "TLS 1.1 is never offered";
  listener.tls->minVersion = config::TlsVersion::V1_3;
  auto tls13 = build(listener, &report)->newWorkerContext();
  EXPECT_FALSE(connect(tls13.get(), {.maxVersion = TLS1_2_VERSION}).ok);
  Result modern = connect(tls13.get());
  Session s2(modern.session);
  EXPECT_TRUE(modern.ok);
  EXPECT_EQ(modern.version, "TLSv1.3");
}

TEST(TlsHandshake, ClientCertificatesRequiredOrOptional) {
  Pki& p = pki();
  config::Listener listener = twoCertificates();
  listener.tls->clientCa = at(p.caFile, 3);
  listener.tls->verifyClient = config::VerifyClient::Required;
  BuildReport report;
  auto required = build(listener, &report)->newWorkerContext();
  ASSERT_TRUE(required) << describe(report);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Result with = connect(required.get(), {.maxVersion = version, .certFile = p.clientCert, .keyFile = p.clientKey});
    Session s(with.session);
    EXPECT_TRUE(with.ok) << version;
    EXPECT_EQ(with.clientCertificate, "client-1");
    EXPECT_FALSE(connect(required.get(), {.maxVersion = version}).ok) << "none sent, " << version;
    EXPECT_FALSE(
        connect(required.get(), {.maxVersion = version, .certFile = p.strangerCert, .keyFile = p.strangerKey}).ok)
        << "another CA's, " << version;
  }
  listener.tls->verifyClient = config::VerifyClient::Optional;
  auto optional = build(listener, &report)->newWorkerContext();
  Result without = connect(optional.get());
  Session s1(without.session);
  EXPECT_TRUE(without.ok);
  EXPECT_EQ(without.clientCertificate, "");
  Result with = connect(optional.get(), {.sni = "api.example.com", .certFile = p.clientCert, .keyFile = p.clientKey});
  Session s2(with.session);
  EXPECT_TRUE(with.ok) << "verified also on another certificate's context";
  EXPECT_EQ(with.clientCertificate, "client-1");
  EXPECT_FALSE(connect(optional.get(), {.certFile = p.strangerCert, .keyFile = p.strangerKey}).ok)
      << "one sent must verify";
}

TEST(TlsHandshake, TicketFromOneWorkerResumesOnAnother) {
  BuildReport report;
  auto settings = build(twoCertificates(), &report, lb::tls::makeTicketKeys());
  auto worker1 = settings->newWorkerContext();
  auto worker2 = settings->newWorkerContext();
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    Result first = connect(worker1.get(), {.sni = "api.example.com", .maxVersion = version});
    Session session(first.session);
    ASSERT_TRUE(first.ok);
    EXPECT_FALSE(first.resumed);
    Result again = connect(worker2.get(), {.sni = "api.example.com", .maxVersion = version, .session = session.get()});
    Session s2(again.session);
    EXPECT_TRUE(again.ok);
    EXPECT_TRUE(again.resumed) << "version " << version;
  }
  // Other settings (another listener, or another process) have other keys.
  auto stranger = build(twoCertificates(), &report, lb::tls::makeTicketKeys())->newWorkerContext();
  Result first = connect(worker1.get());
  Session session(first.session);
  Result elsewhere = connect(stranger.get(), {.session = session.get()});
  Session s2(elsewhere.session);
  EXPECT_TRUE(elsewhere.ok);
  EXPECT_FALSE(elsewhere.resumed);
}

TEST(TlsHandshake, SessionCacheResumesTls12WithoutTickets) {
  BuildReport report;
  auto worker = build(twoCertificates(), &report)->newWorkerContext();
  Result first = connect(worker.get(), {.maxVersion = TLS1_2_VERSION, .noTickets = true});
  Session session(first.session);
  ASSERT_TRUE(first.ok);
  Result again = connect(worker.get(), {.maxVersion = TLS1_2_VERSION, .session = session.get(), .noTickets = true});
  Session s2(again.session);
  EXPECT_TRUE(again.resumed);
  // The cache is the worker's own.
  auto other = build(twoCertificates(), &report)->newWorkerContext();
  Result elsewhere = connect(other.get(), {.maxVersion = TLS1_2_VERSION, .session = session.get(), .noTickets = true});
  Session s3(elsewhere.session);
  EXPECT_TRUE(elsewhere.ok);
  EXPECT_FALSE(elsewhere.resumed);
}

TEST(TicketKeys, RotateEveryTwelveHoursAndOpenOlderTicketsForAnotherTwelve) {
  auto now = std::make_shared<std::atomic<int64_t>>(1000);
  auto tickets = lb::tls::makeTicketKeys([now] { return now->load(); });
  constexpr int64_t kHour = 3600;
  BuildReport report;
  auto settings = build(twoCertificates(), &report, tickets);
  auto worker = settings->newWorkerContext();
  EXPECT_EQ(tickets->keyCount(), 1u);
  Result first = connect(worker.get());
  Session old(first.session);
  ASSERT_TRUE(first.ok);

  *now += 13 * kHour;  // a new key encrypts; the first still decrypts
  Result renewed = connect(worker.get(), {.session = old.get()});
  Session fresh(renewed.session);
  EXPECT_TRUE(renewed.resumed);
  EXPECT_EQ(tickets->keyCount(), 2u);

  *now += 12 * kHour;  // the first key (25 h old) is retired, the second is not
  EXPECT_EQ(tickets->keyCount(), 2u);
  Result tooOld = connect(worker.get(), {.session = old.get()});
  Session s3(tooOld.session);
  EXPECT_TRUE(tooOld.ok);
  EXPECT_FALSE(tooOld.resumed) << "a ticket of a retired key: full handshake";
  Result stillGood = connect(worker.get(), {.session = fresh.get()});
  Session s4(stillGood.session);
  EXPECT_TRUE(stillGood.resumed) << "the ticket renewed at 13 h";
}

// --- origination ----------------------------------------------------------

config::PoolTls poolTls(std::string serverName, config::FilePath ca, bool verify = true) {
  config::PoolTls tls;
  tls.serverName = std::move(serverName);
  tls.ca = std::move(ca);
  tls.verify = verify;
  return tls;
}

config::Pool poolWithTls(config::PoolTls tls) {
  config::Pool pool;
  pool.name = "api";
  pool.tls = std::move(tls);
  return pool;
}

Result originate(const lb::tls::ClientSettings& client, SSL_CTX* server) {
  auto ctx = client.newContext();
  Ssl ssl(SSL_new(ctx.get()));
  EXPECT_TRUE(lb::tls::configureClient(ssl.get(), client));
  Ssl serverSsl(SSL_new(server));
  Result result;
  result.ok = handshake(ssl.get(), serverSsl.get());
  if (result.ok) {
    result.certificate = peerCommonName(ssl.get());
    result.clientCertificate = peerCommonName(serverSsl.get());
  }
  return result;
}

TEST(TlsClient, VerifiesTheMemberAgainstTheCaAndServerName) {
  Pki& p = pki();
  BuildReport report;
  auto server = build(twoCertificates(), &report)->newWorkerContext();
  auto good = lb::tls::buildClientSettings(poolWithTls(poolTls("api.example.com", at(p.caFile, 4))),
                                           &report);
  ASSERT_TRUE(good) << describe(report);
  Result ok = originate(*good, server.get());
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.certificate, "api") << "server_name is sent as SNI";
  auto wrongName =
      lb::tls::buildClientSettings(poolWithTls(poolTls("api.example.org", at(p.caFile, 4))), &report);
  EXPECT_FALSE(originate(*wrongName, server.get()).ok) << "the default certificate does not hold the name";
  auto wrongCa =
      lb::tls::buildClientSettings(poolWithTls(poolTls("api.example.com", at(p.otherCaFile, 4))), &report);
  EXPECT_FALSE(originate(*wrongCa, server.get()).ok);
  EXPECT_TRUE(report.warnings.empty()) << describe(report);
}

TEST(TlsClient, VerifyFalseWarnsAndAcceptsAnyCertificate) {
  Pki& p = pki();
  BuildReport report;
  auto server = build(twoCertificates(), &report)->newWorkerContext();
  config::PoolTls tls = poolTls("nobody.example.org", at(p.otherCaFile, 4), false);
  tls.position = {21, 1};
  auto client = lb::tls::buildClientSettings(poolWithTls(tls), &report);
  ASSERT_EQ(report.warnings.size(), 1u) << describe(report);
  EXPECT_EQ(report.warnings[0].position.line, 21);
  EXPECT_NE(report.warnings[0].message.find("pool api: verify = false"), std::string::npos);
  EXPECT_TRUE(originate(*client, server.get()).ok);
}

TEST(TlsClient, ClientCertificateForMembersThatRequireOne) {
  Pki& p = pki();
  config::Listener listener = twoCertificates();
  listener.tls->clientCa = at(p.caFile, 3);
  listener.tls->verifyClient = config::VerifyClient::Required;
  BuildReport report;
  auto server = build(listener, &report)->newWorkerContext();
  config::PoolTls tls = poolTls("edge.example.com", at(p.caFile, 4));
  auto anonymous = lb::tls::buildClientSettings(poolWithTls(tls), &report);
  EXPECT_FALSE(originate(*anonymous, server.get()).ok);
  tls.clientCertificate = config::CertificateFiles{at(p.clientCert, 5), at(p.clientKey, 6)};
  auto mtls = lb::tls::buildClientSettings(poolWithTls(tls), &report);
  ASSERT_TRUE(mtls) << describe(report);
  ASSERT_EQ(mtls->certificates().size(), 1u);
  EXPECT_EQ(mtls->certificates()[0].listener, "pool api");
  Result result = originate(*mtls, server.get());
  EXPECT_TRUE(result.ok);
  EXPECT_EQ(result.clientCertificate, "client-1");
}

TEST(TlsClient, ClientFileErrorsArePositioned) {
  Pki& p = pki();
  BuildReport report;
  config::PoolTls tls = poolTls("", at(p.dir.file("missing-ca.pem"), 8, 6));
  tls.clientCertificate = config::CertificateFiles{at(p.clientCert, 9), at(p.edgeKey, 10, 7)};
  EXPECT_FALSE(lb::tls::buildClientSettings(poolWithTls(tls), &report));
  ASSERT_EQ(report.errors.size(), 2u) << describe(report);
  EXPECT_EQ(report.errors[0].position.line, 8);
  EXPECT_NE(report.errors[0].message.find("ca file " + p.dir.file("missing-ca.pem")), std::string::npos);
  EXPECT_EQ(report.errors[1].position.line, 10);
  EXPECT_NE(report.errors[1].message.find("does not match"), std::string::npos);
}

}  // namespace
