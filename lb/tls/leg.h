#pragma once
// The TLS leg of a session: one SSL object driven through memory, never
// through its socket. The worker receives and sends with io_uring; a leg
// only turns ciphertext into plaintext and back.
//
// I/O goes through a BIO of ringlb's own (BIO_meth_new):
//  - input: the worker hands the leg the ciphertext a receive put into a
//    ring buffer (setInput); OpenSSL reads it from there, and the worker
//    keeps the buffer until inputConsumed(). Nothing is read ahead of that.
//  - output: what OpenSSL writes goes into one block from the worker's
//    BlockPool (a full record fits); the worker sends it (takeOutput, then
//    outputSent with what the send took). While a send is in flight OpenSSL
//    may append behind it; a full block makes OpenSSL say WantWrite. The
//    block goes back to the pool as soon as everything in it is sent.
// With SSL_MODE_RELEASE_BUFFERS OpenSSL frees its own record buffers when
// they are empty, so a leg that waits (input consumed, output sent) holds
// no buffer at all.
//
// No call blocks, none touches a socket; errors come back as LegStatus and
// the OpenSSL error queue is left empty.

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace lb::tls {

// Fixed-size blocks, reused: one worker's ciphertext output and decrypted
// plaintext. Not thread-safe (one per worker).
class BlockPool {
 public:
  // A TLS record: 16 KiB of plaintext plus header, padding and tag.
  static constexpr size_t kBlockBytes = 16 * 1024 + 1024;

  explicit BlockPool(size_t maxSpare = 256) : maxSpare_(maxSpare) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of kBlockBytes, or nullptr when memory ran out.
  char* acquire() noexcept;
  void release(char* block) noexcept;
  size_t inUse() const { return inUse_; }

 private:
  std::vector<char*> spare_;
  size_t maxSpare_;
  size_t inUse_ = 0;
};

enum class LegStatus : uint8_t {
  Ok,         // the call did what was asked (handshake done, bytes moved)
  WantRead,   // needs more ciphertext: the input is consumed
  WantWrite,  // the output block is full (or none could be had): send, then call again
  Closed,     // the peer sent close_notify (read)
  Failed,     // a protocol error, or the peer's alert: the leg is unusable
};

// Why a handshake failed, for ringlb_tls_handshakes_total.
enum class HandshakeFailure : uint8_t {
  NoShared,        // no common version, cipher, group or ALPN protocol
  UnknownCa,       // the peer's certificate has an issuer we do not trust
  BadCertificate,  // a certificate missing, expired, for another name or invalid
  Protocol,        // not TLS, malformed, truncated, anything else
};

class Leg {
 public:
  Leg() = default;
  ~Leg();
  Leg(const Leg&) = delete;
  Leg& operator=(const Leg&) = delete;

  // Starts a connection from `ctx` as server (termination) or client
  // (origination, then configure ssl() for SNI and name checks before the
  // first handshake()). False when OpenSSL had no memory. The leg must be
  // inactive.
  bool open(SSL_CTX* ctx, bool server, BlockPool* pool) noexcept;
  // Frees the SSL object and any block; the leg is inactive again. Only
  // when no send of its output is in flight.
  void reset() noexcept;
  bool active() const { return ssl_ != nullptr; }
  SSL* ssl() const { return ssl_; }

  // Ciphertext that arrived. The previous input must be consumed.
  void setInput(const char* data, size_t length) noexcept;
  bool inputConsumed() const { return inputOffset_ == inputLength_; }
  // Forgets the input (its buffer is going back to the ring).
  void dropInput() noexcept { input_ = nullptr, inputOffset_ = inputLength_ = 0; }

  LegStatus handshake() noexcept;
  bool handshakeDone() const;
  // Decrypts at most `capacity` bytes into `out`; *n set on Ok.
  LegStatus read(char* out, size_t capacity, size_t* n) noexcept;
  // Encrypts from `data` (at most one record per call, partial writes on);
  // *n set on Ok. After WantWrite, call again with the same bytes.
  LegStatus write(const char* data, size_t length, size_t* n) noexcept;
  // Queues close_notify (once); Failed if it could not be written.
  LegStatus shutdown() noexcept;
  bool shutdownSent() const { return shutdownSent_; }

  // Output: ciphertext waiting to be sent. takeOutput() gives what is not
  // yet being sent and marks a send in flight; outputSent(n) ends it.
  bool hasOutput() const { return outputLength_ > outputSent_; }
  bool sending() const { return sending_; }
  std::span<const char> takeOutput() noexcept;
  void outputSent(size_t n) noexcept;

  // After handshake() said Failed: why (from OpenSSL's error queue as it
  // was then, and the verification result).
  HandshakeFailure failure() const { return failure_; }
  // The OpenSSL reason text of the last failure, for debug logs.
  std::string_view failureText() const { return failureText_; }

  // Session reuse for client legs: new sessions (tickets) the member sends
  // are stored in *slot (the previous one freed); set before handshake().
  // enableSessionStore() once per client SSL_CTX.
  static void enableSessionStore(SSL_CTX* ctx) noexcept;
  void setSessionSlot(SSL_SESSION** slot) noexcept;

 private:
  static int bioRead(BIO* bio, char* out, size_t length, size_t* done);
  static int bioWrite(BIO* bio, const char* data, size_t length, size_t* done);
  static long bioCtrl(BIO* bio, int command, long number, void* pointer);
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  LegStatus statusOf(int result, bool handshaking) noexcept;
  void classifyFailure(unsigned long error) noexcept;
  void releaseBlockIfSent() noexcept;

  SSL* ssl_ = nullptr;
  BlockPool* pool_ = nullptr;
  const char* input_ = nullptr;
  size_t inputOffset_ = 0;
  size_t inputLength_ = 0;
  char* output_ = nullptr;  // a pool block, or null when nothing waits
  size_t outputSent_ = 0;   // [outputSent_, outputLength_) not yet handed to a send
  size_t outputTaken_ = 0;  // end of what the send in flight covers
  size_t outputLength_ = 0;
  bool sending_ = false;
  bool shutdownSent_ = false;
  SSL_SESSION** sessionSlot_ = nullptr;
  HandshakeFailure failure_ = HandshakeFailure::Protocol;
  const char* failureText_ = "";
};

}  // namespace lb::tls
