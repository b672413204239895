// health::TlsProbe against an OpenSSL server over memory: no sockets, no
// clock. Certificates are made here (EC P-256), never read from disk.

#include "health/tls_probe.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace health {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

struct Identity {
  Key key;
  Cert cert;
};

struct CertOptions {
  std::vector<std::string> subjectAltNames = {};  // "DNS:x", "IP:127.0.0.1"
  long notBefore = -3600;                     // seconds from now
  long notAfter = 86400;
  bool ca = false;
};

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Signed by `issuer` (null: self-signed).
Identity makeIdentity(const std::string& commonName, const Identity* issuer, const CertOptions& options) {
  Identity id{Key(EVP_EC_gen("P-256")), Cert(X509_new())};
  X509* cert = id.cert.get();
  static long serial = 1;
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), options.notBefore);
  X509_gmtime_adj(X509_getm_notAfter(cert), options.notAfter);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(commonName.c_str()),
                             -1, -1, 0);
  X509* issuerCert = issuer ? issuer->cert.get() : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(issuerCert));
  X509_set_pubkey(cert, id.key.get());
  addExtension(cert, issuerCert, NID_basic_constraints, options.ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (options.ca) addExtension(cert, issuerCert, NID_key_usage, "critical,keyCertSign,cRLSign");
  std::string sans;
  for (const std::string& san : options.subjectAltNames) sans += (sans.empty() ? "" : ",") + san;
  if (!sans.empty()) addExtension(cert, issuerCert, NID_subject_alt_name, sans);
  X509_sign(cert, issuer ? issuer->key.get() : id.key.get(), EVP_sha256());
  return id;
}

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using Ctx = std::unique_ptr<SSL_CTX, CtxFree>;

Ctx clientContext(const Identity* trusted, bool verify = true, const Identity* clientCert = nullptr) {
  Ctx ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (trusted) X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), trusted->cert.get());
  SSL_CTX_set_verify(ctx.get(), verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (clientCert) {
    SSL_CTX_use_certificate(ctx.get(), clientCert->cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), clientCert->key.get());
  }
  return ctx;
}

// What the member does after its side of the handshake.
enum class After { Nothing, AnswerHttp, CloseAtOnce };

struct ServerOptions {
  int maxVersion = 0;         // 0: TLS 1.3
  const Identity* requireClientCertFrom = nullptr;  // a CA
  int tickets = 2;
  After after = After::Nothing;
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  size_t chunk = 1 << 20;  // largest piece handed to one receive
};

// An OpenSSL server on memory BIOs, run by hand between the probe's steps.
class MemoryServer {
 public:
  MemoryServer(const Identity& identity, ServerOptions options) : options_(std::move(options)) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx_.get(), identity.cert.get());
    SSL_CTX_use_PrivateKey(ctx_.get(), identity.key.get());
    SSL_CTX_set_num_tickets(ctx_.get(), static_cast<size_t>(options_.tickets));
    if (options_.maxVersion) SSL_CTX_set_max_proto_version(ctx_.get(), options_.maxVersion);
    if (options_.requireClientCertFrom) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), options_.requireClientCertFrom->cert.get());
      SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx_.get(), &MemoryServer::onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx_.get(), this);
    ssl_ = SSL_new(ctx_.get());
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_accept_state(ssl_);
  }
  ~MemoryServer() { SSL_free(ssl_); }

  void receive(std::span<const char> bytes) { BIO_write(in_, bytes.data(), static_cast<int>(bytes.size())); }

  // Runs the server on what it has received; returns what it sends.
  std::string run() {
    if (!failed_ && !SSL_is_init_finished(ssl_)) {
      int result = SSL_do_handshake(ssl_);
      if (result <= 0 && SSL_get_error(ssl_, result) != SSL_ERROR_WANT_READ) failed_ = closed_ = true;
      if (result == 1 && options_.after == After::CloseAtOnce) closed_ = true;
    }
    if (!failed_ && !closed_ && SSL_is_init_finished(ssl_)) {
      char plain[1024];
      for (;;) {
        int got = SSL_read(ssl_, plain, sizeof plain);
        if (got > 0) {
          request_.append(plain, static_cast<size_t>(got));
          if (options_.after == After::AnswerHttp && request_.find("\r\n\r\n") != std::string::npos) {
            SSL_write(ssl_, options_.response.data(), static_cast<int>(options_.response.size()));
            SSL_shutdown(ssl_);
            closed_ = true;
            break;
          }
          continue;
        }
        int error = SSL_get_error(ssl_, got);
        if (error == SSL_ERROR_ZERO_RETURN) {
          sawCloseNotify_ = true;
          SSL_shutdown(ssl_);
          closed_ = true;
        } else if (error != SSL_ERROR_WANT_READ) {
          failed_ = closed_ = true;
        }
        break;
      }
    }
    ERR_clear_error();
    std::string out(BIO_ctrl_pending(out_), '\0');
    if (!out.empty()) BIO_read(out_, out.data(), static_cast<int>(out.size()));
    return out;
  }

  bool closed() const { return closed_; }
  bool sawCloseNotify() const { return sawCloseNotify_; }
  const std::string& serverName() const { return serverName_; }
  const std::string& request() const { return request_; }
  size_t chunk() const { return options_.chunk; }

 private:
  static int onServerName(SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    static_cast<MemoryServer*>(arg)->serverName_ = name ? name : "";
    return SSL_TLSEXT_ERR_OK;
  }

  ServerOptions options_;
  Ctx ctx_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
  bool failed_ = false;
  bool closed_ = false;
  bool sawCloseNotify_ = false;
  std::string serverName_;
  std::string request_;
};

// Moves bytes between probe and server as the prober's ring would, until the
// probe is done; a probe that waits on a silent open connection is "stalled".
TlsProbe::Verdict runProbeFrom(TlsProbe& probe, MemoryServer& server, TlsProbe::Next next) {
  std::string toProbe;
  for (int round = 0; round < 100000 && next != TlsProbe::Next::Done; ++round) {
    if (next == TlsProbe::Next::Send) {
      std::span<const char> out = probe.output();
      EXPECT_FALSE(out.empty());
      server.receive(out);
      next = probe.onSent(out.size());
      continue;
    }
    if (toProbe.empty()) toProbe = server.run();
    if (toProbe.empty()) {
      if (!server.closed()) return TlsProbe::Verdict{.passed = false, .status = 0, .reason = "stalled"};
      next = probe.onReceived(0);
      continue;
    }
    std::span<char> buffer = probe.receiveBuffer();
    size_t n = std::min({toProbe.size(), buffer.size(), server.chunk()});
    std::memcpy(buffer.data(), toProbe.data(), n);
    toProbe.erase(0, n);
    next = probe.onReceived(n);
  }
  return probe.verdict();
}

TlsProbe::Verdict runProbe(TlsProbe& probe, MemoryServer& server) {
  return runProbeFrom(probe, server, probe.begin());
}

class TlsProbeTest : public ::testing::Test {
 protected:
  Identity ca = makeIdentity("test ca", nullptr, {.ca = true});
  Identity otherCa = makeIdentity("other ca", nullptr, {.ca = true});
  Identity member = makeIdentity("member", &ca, {.subjectAltNames = {"DNS:api.internal", "IP:127.0.0.1"}});
  Identity client = makeIdentity("ringlb", &ca, {});
  const std::string request = "GET /health HTTP/1.1\r\nHost: api.internal\r\n\r\n";
};

TEST_F(TlsProbeTest, HandshakeWithTrustedCaAndNamePasses) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
  EXPECT_EQ(verdict.reason, "tls handshake ok");
  EXPECT_EQ(server.serverName(), "api.internal");
}

TEST_F(TlsProbeTest, Tls12HandshakePasses) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.maxVersion = TLS1_2_VERSION});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
}

// TLS 1.3 without tickets: the server's answer to the close_notify decides.
TEST_F(TlsProbeTest, Tls13ServerWithoutTicketsPassesOnItsCloseNotify) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.tickets = 0});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
  EXPECT_TRUE(server.sawCloseNotify());
}

TEST_F(TlsProbeTest, ServerClosingRightAfterHandshakePasses) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.tickets = 0, .after = After::CloseAtOnce});
  TlsProbe probe(ctx.get(), "api.internal", "");
  EXPECT_TRUE(runProbe(probe, server).passed);
}

TEST_F(TlsProbeTest, UnknownCaFails) {
  Ctx ctx = clientContext(&otherCa);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "tls: certificate verify failed: unable to get local issuer certificate");
}

TEST_F(TlsProbeTest, WrongNameFails) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "web.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "tls: certificate verify failed: hostname mismatch");
  EXPECT_EQ(server.serverName(), "web.internal");
}

TEST_F(TlsProbeTest, ExpiredCertificateFails) {
  Identity expired = makeIdentity("old", &ca, {.subjectAltNames = {"DNS:api.internal"}, .notBefore = -7200, .notAfter = -3600});
  Ctx ctx = clientContext(&ca);
  MemoryServer server(expired, {});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "tls: certificate verify failed: certificate has expired");
}

TEST_F(TlsProbeTest, VerifyOffPassesWithUnknownCaAndWrongName) {
  Ctx ctx = clientContext(&otherCa, /*verify=*/false);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "web.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
}

// An IP literal is no SNI (RFC 6066) and is checked against IP SANs.
TEST_F(TlsProbeTest, IpLiteralServerNameSendsNoSniAndChecksTheAddress) {
  Ctx ctx = clientContext(&ca);
  {
    MemoryServer server(member, {});
    TlsProbe probe(ctx.get(), "127.0.0.1", "");
    TlsProbe::Verdict verdict = runProbe(probe, server);
    EXPECT_TRUE(verdict.passed) << verdict.reason;
    EXPECT_EQ(server.serverName(), "");
  }
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "127.0.0.2", "");
  EXPECT_EQ(runProbe(probe, server).reason, "tls: certificate verify failed: IP address mismatch");
}

// A context that already names a host (as one built for the data plane
// may) does not make an IP name fail as a host name.
TEST_F(TlsProbeTest, IpLiteralServerNameIgnoresAHostNameInTheContext) {
  Ctx ctx = clientContext(&ca);
  X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx.get()), "127.0.0.1", 0);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "127.0.0.1", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
}

TEST_F(TlsProbeTest, NoServerNameSendsNoSniAndChecksOnlyTheChain) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {});
  TlsProbe probe(ctx.get(), "", "");
  EXPECT_TRUE(runProbe(probe, server).passed);
  EXPECT_EQ(server.serverName(), "");
}

// TLS 1.3: the client's handshake is over before the server judges its
// certificate; the probe waits for the verdict.
TEST_F(TlsProbeTest, MemberRequiringClientCertificateFailsWithoutOne) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.requireClientCertFrom = &ca});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "tls: handshake failed: tlsv13 alert certificate required");
}

TEST_F(TlsProbeTest, MemberRequiringClientCertificateFailsWithoutOneOverTls12) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.maxVersion = TLS1_2_VERSION, .requireClientCertFrom = &ca});
  TlsProbe probe(ctx.get(), "api.internal", "");
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "tls: handshake failed: sslv3 alert handshake failure");
}

TEST_F(TlsProbeTest, MemberRequiringClientCertificatePassesWithOne) {
  Ctx ctx = clientContext(&ca, true, &client);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    MemoryServer server(member, {.maxVersion = version, .requireClientCertFrom = &ca});
    TlsProbe probe(ctx.get(), "api.internal", "");
    TlsProbe::Verdict verdict = runProbe(probe, server);
    EXPECT_TRUE(verdict.passed) << version << ": " << verdict.reason;
  }
}

TEST_F(TlsProbeTest, HttpsReadsTheStatusLineFedOneByteAtATime) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.after = After::AnswerHttp,
                               .response = "HTTP/1.1 503 Service Unavailable\r\n\r\n",
                               .chunk = 1});
  TlsProbe probe(ctx.get(), "api.internal", request);
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_TRUE(verdict.passed) << verdict.reason;
  EXPECT_EQ(verdict.status, 503);
  EXPECT_EQ(verdict.reason, "status 503");
  EXPECT_EQ(server.request(), request);
}

// send_proxy members: the PROXY header goes before the ClientHello, in the
// same first send, and the handshake behind it is an ordinary one.
TEST_F(TlsProbeTest, PreludeLeadsTheFirstOutputThenTheHandshakeRuns) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.after = After::AnswerHttp});
  const std::string prelude = "PROXY UNKNOWN\r\n";
  TlsProbe probe(ctx.get(), "api.internal", request, prelude);
  ASSERT_EQ(probe.begin(), TlsProbe::Next::Send);
  std::span<const char> out = probe.output();
  ASSERT_GT(out.size(), prelude.size() + 5);
  EXPECT_EQ(std::string_view(out.data(), prelude.size()), prelude);
  EXPECT_EQ(out[prelude.size()], 0x16);  // a handshake record: the ClientHello
  server.receive(out.subspan(prelude.size()));
  TlsProbe::Verdict verdict = runProbeFrom(probe, server, probe.onSent(out.size()));
  EXPECT_EQ(verdict.status, 200) << verdict.reason;
  EXPECT_EQ(server.request(), request);
}

TEST_F(TlsProbeTest, HttpsOverTls12) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.maxVersion = TLS1_2_VERSION, .after = After::AnswerHttp});
  TlsProbe probe(ctx.get(), "api.internal", request);
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_EQ(verdict.status, 200) << verdict.reason;
}

TEST_F(TlsProbeTest, HttpsWithoutAnswerFailsAsAnEmptyResponse) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.tickets = 0, .after = After::CloseAtOnce});
  TlsProbe probe(ctx.get(), "api.internal", request);
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "empty response");
}

TEST_F(TlsProbeTest, HttpsNotHttpFails) {
  Ctx ctx = clientContext(&ca);
  MemoryServer server(member, {.after = After::AnswerHttp, .response = "SSH-2.0-OpenSSH\r\n"});
  TlsProbe probe(ctx.get(), "api.internal", request);
  TlsProbe::Verdict verdict = runProbe(probe, server);
  EXPECT_FALSE(verdict.passed);
  EXPECT_EQ(verdict.reason, "not HTTP");
}

TEST_F(TlsProbeTest, PlaintextMemberFailsTheHandshake) {
  Ctx ctx = clientContext(&ca);
  TlsProbe probe(ctx.get(), "api.internal", "");
  ASSERT_EQ(probe.begin(), TlsProbe::Next::Send);
  ASSERT_EQ(probe.onSent(probe.output().size()), TlsProbe::Next::Receive);
  std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  std::memcpy(probe.receiveBuffer().data(), answer.data(), answer.size());
  EXPECT_EQ(probe.onReceived(answer.size()), TlsProbe::Next::Done);
  EXPECT_FALSE(probe.verdict().passed);
  EXPECT_EQ(probe.verdict().reason, "tls: handshake failed: wrong version number");
}

// However long the garbage, the probe asks for no more than one receive
// buffer at a time and ends at the first bad record.
TEST_F(TlsProbeTest, EndlessGarbageEndsTheProbeAtOnce) {
  Ctx ctx = clientContext(&ca);
  TlsProbe probe(ctx.get(), "api.internal", "");
  ASSERT_EQ(probe.begin(), TlsProbe::Next::Send);
  ASSERT_EQ(probe.onSent(probe.output().size()), TlsProbe::Next::Receive);
  std::span<char> buffer = probe.receiveBuffer();
  std::memset(buffer.data(), 0x16, buffer.size());  // a handshake record of 0x1616 bytes: too long
  EXPECT_EQ(probe.onReceived(buffer.size()), TlsProbe::Next::Done);
  EXPECT_FALSE(probe.verdict().passed);
}

TEST_F(TlsProbeTest, MemberClosingDuringHandshakeFails) {
  Ctx ctx = clientContext(&ca);
  TlsProbe probe(ctx.get(), "api.internal", "");
  ASSERT_EQ(probe.begin(), TlsProbe::Next::Send);
  ASSERT_EQ(probe.onSent(probe.output().size()), TlsProbe::Next::Receive);
  EXPECT_EQ(probe.onReceived(0), TlsProbe::Next::Done);
  EXPECT_EQ(probe.verdict().reason, "tls: handshake failed: connection closed");
  TlsProbe reset(ctx.get(), "api.internal", "");
  ASSERT_EQ(reset.begin(), TlsProbe::Next::Send);
  EXPECT_EQ(reset.onConnectionError("connection reset"), TlsProbe::Next::Done);
  EXPECT_EQ(reset.verdict().reason, "connection reset");
  EXPECT_FALSE(reset.verdict().passed);
}

TEST_F(TlsProbeTest, SendsInPiecesWhenTheSocketTakesLess) {
  Ctx ctx = clientContext(&ca);
  TlsProbe probe(ctx.get(), "api.internal", "");
  ASSERT_EQ(probe.begin(), TlsProbe::Next::Send);
  size_t total = probe.output().size();
  ASSERT_GT(total, 10u);
  EXPECT_EQ(probe.onSent(10), TlsProbe::Next::Send);
  EXPECT_EQ(probe.output().size(), total - 10);
  EXPECT_EQ(probe.onSent(total - 10), TlsProbe::Next::Receive);
}

TEST(TlsProbeContext, NullContextFailsWithoutCrashing) {
  TlsProbe probe(nullptr, "api.internal", "");
  EXPECT_EQ(probe.begin(), TlsProbe::Next::Done);
  EXPECT_FALSE(probe.verdict().passed);
}

TEST(TlsProbeContext, DefaultContextVerifies) {
  SharedSslCtx ctx = defaultProbeContext();
  ASSERT_TRUE(ctx);
  EXPECT_NE(SSL_CTX_get_verify_mode(ctx.get()) & SSL_VERIFY_PEER, 0);
}

}  // namespace
}  // namespace health
