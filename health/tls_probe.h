#pragma once
// The TLS side of a `tls` or `https` health probe without the socket: one
// OpenSSL client session driven through memory BIOs. The prober moves bytes
// between it and the member on its ring (never a blocking SSL call on a
// socket); this class only says what to do next: send its output, receive
// more, or done with a verdict.
//
//   tls:   handshake (verifying per the context, server name as SNI and as
//          the name checked) -> passed. With TLS 1.3 the server judges the
//          client's certificate only after the client's last flight, so
//          that flight goes out with a close_notify and the probe waits for
//          the server's answer: a session ticket, its close_notify or the
//          end of the connection pass; an alert fails.
//   https: handshake -> the request -> the status line (StatusLineParser).
//
// Memory is bounded: a new receive is asked for only once OpenSSL has taken
// every byte of the last one, OpenSSL bounds records and handshake
// messages, the output holds one flight, and the status line is parsed
// without buffering.

#include <openssl/ssl.h>

#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "health/http_status.h"

namespace health {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
// The context every probe of a pool shares (one per prober generation).
using SharedSslCtx = std::shared_ptr<SSL_CTX>;
inline SharedSslCtx shareSslCtx(SSL_CTX* ctx) { return SharedSslCtx(ctx, SslCtxDeleter{}); }

// A client context for probes of a pool without [pool.NAME.tls]: the
// system's trust store, verification on. Null if OpenSSL cannot make one.
SharedSslCtx defaultProbeContext();

class TlsProbe {
 public:
  enum class Next { Send, Receive, Done };
  struct Verdict {
    bool passed = false;
    int status = 0;      // https: the status line's code (then passed is true)
    std::string reason;  // "tls handshake ok", "tls: certificate verify failed: ...", ...
  };

  // `request` empty: a handshake probe; else https, sent once the
  // handshake is done. `serverName` empty: no SNI and no name check; an IP
  // literal: no SNI, the certificate must name that address. `prelude`:
  // plaintext sent before the ClientHello, in the same first output (a
  // PROXY header).
  TlsProbe(SSL_CTX* ctx, std::string_view serverName, std::string request, std::string_view prelude = {});
  ~TlsProbe();
  TlsProbe(const TlsProbe&) = delete;
  TlsProbe& operator=(const TlsProbe&) = delete;

  // Starts the handshake.
  Next begin();
  // Next::Send: the bytes to send; onSent() with how many went.
  std::span<const char> output() const;
  Next onSent(size_t bytes);
  // Next::Receive: where to receive into, then onReceived() with the count
  // (0: the member closed the connection).
  std::span<char> receiveBuffer() { return receiveBuffer_; }
  Next onReceived(size_t bytes);
  // The connection failed under the probe (reset, ...): `reason` as the
  // prober words it. Returns Done.
  Next onConnectionError(std::string reason);

  const Verdict& verdict() const { return verdict_; }

 private:
  enum class Phase { Handshake, AwaitAcceptance, AwaitStatus, Done };

  Next drive();
  Next driveHandshake();
  Next driveAcceptance();
  Next driveStatus();
  Next afterIo(int sslResult);  // SSL wants more, or failed
  Next pass(std::string reason, int status = 0);
  Next fail(std::string reason);
  std::string failureReason(int sslError) const;
  void collectOutput();
  static void onMessage(int writeP, int version, int contentType, const void* buf, size_t len, SSL* ssl,
                        void* arg);

  SSL* ssl_ = nullptr;
  BIO* network_ = nullptr;  // ciphertext from the member (owned by ssl_)
  BIO* toNetwork_ = nullptr;  // ciphertext for the member (owned by ssl_)
  std::string request_;
  Phase phase_ = Phase::Handshake;
  bool verifying_ = false;
  bool ticketSeen_ = false;
  std::string output_;
  size_t outputSent_ = 0;
  StatusLineParser parser_;
  Verdict verdict_;
  std::array<char, 4096> receiveBuffer_{};
};

}  // namespace health
