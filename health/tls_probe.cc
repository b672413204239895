#include "health/tls_probe.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

namespace health {
namespace {

constexpr std::string_view kHandshakeOk = "tls handshake ok";

bool isIpLiteral(const std::string& name) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), address) == 1 || inet_pton(AF_INET6, name.c_str(), address) == 1;
}

}  // namespace

SharedSslCtx defaultProbeContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return nullptr;
  SharedSslCtx shared = shareSslCtx(ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_set_default_verify_paths(ctx) != 1) ERR_clear_error();  // then nothing verifies: probes fail
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return shared;
}

TlsProbe::TlsProbe(SSL_CTX* ctx, std::string_view serverName, std::string request, std::string_view prelude)
    : request_(std::move(request)), output_(prelude) {
  ERR_clear_error();
  ssl_ = ctx ? SSL_new(ctx) : nullptr;
  network_ = BIO_new(BIO_s_mem());
  toNetwork_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !network_ || !toNetwork_) {
    SSL_free(ssl_);
    BIO_free(network_);
    BIO_free(toNetwork_);
    ssl_ = nullptr;
    network_ = toNetwork_ = nullptr;
    ERR_clear_error();
    fail("tls: cannot create a session (out of memory?)");
    return;
  }
  BIO_set_mem_eof_return(network_, -1);  // drained is "read again later", never EOF
  SSL_set_bio(ssl_, network_, toNetwork_);
  SSL_set_connect_state(ssl_);
  verifying_ = (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0;
  std::string name(serverName);
  if (!name.empty()) {
    // RFC 6066: no IP literal in SNI. A name given as an address is
    // checked against the certificate's IP subjectAltNames instead (and
    // against no host name the context may carry).
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    bool named = isIpLiteral(name)
                     ? X509_VERIFY_PARAM_set1_host(param, nullptr, 0) == 1 &&
                           X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1
                     : SSL_set_tlsext_host_name(ssl_, name.c_str()) == 1 && SSL_set1_host(ssl_, name.c_str()) == 1;
    SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);  // as the data plane checks
    if (!named) {
      ERR_clear_error();
      fail(fmt::format("tls: cannot use server name \"{}\"", name));
      return;
    }
  }
  SSL_set_msg_callback(ssl_, &TlsProbe::onMessage);
  SSL_set_msg_callback_arg(ssl_, this);
}

TlsProbe::~TlsProbe() { SSL_free(ssl_); }  // frees both BIOs

// A NewSessionTicket from the server: it took the client's last flight
// (and its certificate) without an alert.
void TlsProbe::onMessage(int writeP, int, int contentType, const void* buf, size_t len, SSL*, void* arg) {
  auto* self = static_cast<TlsProbe*>(arg);
  if (writeP == 0 && contentType == SSL3_RT_HANDSHAKE && len > 0 &&
      static_cast<const unsigned char*>(buf)[0] == SSL3_MT_NEWSESSION_TICKET)
    self->ticketSeen_ = true;
}

TlsProbe::Next TlsProbe::begin() { return phase_ == Phase::Done ? Next::Done : drive(); }

std::span<const char> TlsProbe::output() const {
  return std::span<const char>(output_).subspan(outputSent_);
}

TlsProbe::Next TlsProbe::onSent(size_t bytes) {
  outputSent_ += bytes;
  if (outputSent_ < output_.size()) return Next::Send;
  output_.clear();
  outputSent_ = 0;
  return drive();
}

TlsProbe::Next TlsProbe::onReceived(size_t bytes) {
  if (phase_ == Phase::Done) return Next::Done;
  if (bytes == 0) {
    switch (phase_) {
      case Phase::Handshake: return fail("tls: handshake failed: connection closed");
      case Phase::AwaitAcceptance: return pass(std::string(kHandshakeOk));
      case Phase::AwaitStatus: return fail(std::string(parser_.finish().reason));
      case Phase::Done: break;
    }
    return Next::Done;
  }
  if (BIO_write(network_, receiveBuffer_.data(), static_cast<int>(bytes)) != static_cast<int>(bytes)) {
    ERR_clear_error();
    return fail("tls: out of memory");
  }
  return drive();
}

// After the handshake, the member ending the connection (even by a reset)
// without an alert has not refused the client: a server that takes the
// close_notify and closes without reading it resets.
TlsProbe::Next TlsProbe::onConnectionError(std::string reason) {
  if (phase_ == Phase::AwaitAcceptance) return pass(std::string(kHandshakeOk));
  return fail(std::move(reason));
}

TlsProbe::Next TlsProbe::drive() {
  switch (phase_) {
    case Phase::Handshake: return driveHandshake();
    case Phase::AwaitAcceptance: return driveAcceptance();
    case Phase::AwaitStatus: return driveStatus();
    case Phase::Done: break;
  }
  return Next::Done;
}

// Handshake -> AwaitStatus (https) | passed (TLS 1.2) | AwaitAcceptance (TLS 1.3)
TlsProbe::Next TlsProbe::driveHandshake() {
  ERR_clear_error();
  int result = SSL_do_handshake(ssl_);
  if (result != 1) return afterIo(result);
  if (!request_.empty()) {
    phase_ = Phase::AwaitStatus;
    ERR_clear_error();
    // A memory BIO takes the whole request at once.
    int written = SSL_write(ssl_, request_.data(), static_cast<int>(request_.size()));
    if (written <= 0) return fail(failureReason(SSL_get_error(ssl_, written)));
    return driveStatus();
  }
  if (SSL_version(ssl_) < TLS1_3_VERSION) return pass(std::string(kHandshakeOk));
  phase_ = Phase::AwaitAcceptance;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // close_notify after the client's Finished: the server answers
  ERR_clear_error();
  return driveAcceptance();
}

TlsProbe::Next TlsProbe::driveAcceptance() {
  std::array<char, 256> discard;
  ERR_clear_error();
  int result = SSL_read(ssl_, discard.data(), static_cast<int>(discard.size()));
  if (ticketSeen_ || result > 0) return pass(std::string(kHandshakeOk));
  if (SSL_get_error(ssl_, result) == SSL_ERROR_ZERO_RETURN) return pass(std::string(kHandshakeOk));
  return afterIo(result);
}

TlsProbe::Next TlsProbe::driveStatus() {
  std::array<char, 512> plain;
  for (;;) {
    ERR_clear_error();
    int result = SSL_read(ssl_, plain.data(), static_cast<int>(plain.size()));
    if (result <= 0) {
      if (SSL_get_error(ssl_, result) == SSL_ERROR_ZERO_RETURN) return fail(std::string(parser_.finish().reason));
      return afterIo(result);
    }
    StatusLineParser::Result parsed = parser_.feed(std::span<const char>(plain.data(), static_cast<size_t>(result)));
    if (parsed.kind == StatusLineParser::Kind::Done) return pass(fmt::format("status {}", parsed.status), parsed.status);
    if (parsed.kind == StatusLineParser::Kind::Bad) return fail(std::string(parsed.reason));
  }
}

// An SSL call returned short of done: send what it wrote, or receive what
// it wants, or fail.
TlsProbe::Next TlsProbe::afterIo(int sslResult) {
  int error = SSL_get_error(ssl_, sslResult);
  if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return fail(failureReason(error));
  collectOutput();
  if (!output_.empty()) return Next::Send;
  if (error == SSL_ERROR_WANT_WRITE) return fail("tls: cannot write (out of memory?)");
  return Next::Receive;
}

void TlsProbe::collectOutput() {
  size_t pending = BIO_ctrl_pending(toNetwork_);
  if (pending == 0) return;
  size_t had = output_.size();
  output_.resize(had + pending);
  int read = BIO_read(toNetwork_, output_.data() + had, static_cast<int>(pending));
  output_.resize(had + static_cast<size_t>(std::max(read, 0)));
}

std::string TlsProbe::failureReason(int sslError) const {
  if (sslError == SSL_ERROR_SSL && verifying_) {
    long verified = SSL_get_verify_result(ssl_);
    if (verified != X509_V_OK)
      return fmt::format("tls: certificate verify failed: {}", X509_verify_cert_error_string(verified));
  }
  std::string_view prefix = phase_ == Phase::AwaitStatus ? "tls: " : "tls: handshake failed: ";
  unsigned long code = ERR_peek_last_error();
  if (sslError == SSL_ERROR_SSL && code != 0) {
    const char* why = ERR_reason_error_string(code);
    return why ? fmt::format("{}{}", prefix, why) : fmt::format("{}error {:#x}", prefix, code);
  }
  return fmt::format("{}ssl error {}", prefix, sslError);
}

TlsProbe::Next TlsProbe::pass(std::string reason, int status) {
  phase_ = Phase::Done;
  verdict_ = Verdict{.passed = true, .status = status, .reason = std::move(reason)};
  ERR_clear_error();
  return Next::Done;
}

TlsProbe::Next TlsProbe::fail(std::string reason) {
  phase_ = Phase::Done;
  verdict_ = Verdict{.passed = false, .status = 0, .reason = std::move(reason)};
  ERR_clear_error();
  return Next::Done;
}

}  // namespace health
