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
//
// kTLS transmit (open with offerKernelTx): OpenSSL gives the BIO the keys
// it switches to for sending application data, and from then on writes
// plaintext records. The leg's transmit side goes through three modes:
//   Ssl     OpenSSL encrypts (no kTLS, or OpenSSL kept the keys);
//   Sealer  the leg seals OpenSSL's plaintext records itself (RecordSealer)
//           into the output block, in order behind the handshake's bytes;
//   Kernel  the worker gave kernelKeys() to the socket (TLS_TX) once all
//           output was sent (handOverTx): what the worker sends to that
//           socket is plaintext, and a record OpenSSL still writes (an
//           alert, close_notify) is output with its record type, to be
//           sent as one control message (outputRecordType()).
// Receiving stays with OpenSSL: OpenSSL 3.0 hands no TLS 1.3 receive keys
// to a BIO. A TLS 1.3 key update the client asks for fails the leg (see
// writeRecord).

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "lb/tls/record_sealer.h"

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
  // offerKernelTx: let OpenSSL hand over its transmit keys (see above).
  bool open(SSL_CTX* ctx, bool server, BlockPool* pool, bool offerKernelTx = false) noexcept;
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

  // kTLS transmit. kernelTxReady(): OpenSSL handed over its keys and the
  // leg seals records; once no output is waiting, the worker may give
  // kernelKeys() to the socket and call handOverTx().
  bool kernelTxReady() const { return txMode_ == TxMode::Sealer; }
  bool kernelTx() const { return txMode_ == TxMode::Kernel; }
  const KernelKeyBlock& kernelKeys() const;
  void handOverTx() noexcept;
  // Kernel mode: the record type of the plaintext record in the output.
  uint8_t outputRecordType() const { return outputType_; }

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
  long takeKernelKeys(long isTransmit, const void* keyBlock) noexcept;
  int writeRecord(const char* data, size_t length) noexcept;
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
  enum class TxMode : uint8_t { Ssl, Sealer, Kernel };
  TxMode txMode_ = TxMode::Ssl;
  uint8_t recordType_ = 23;  // of OpenSSL's next plaintext record (Sealer, Kernel)
  uint8_t outputType_ = 0;   // Kernel: of the record in the output
  std::unique_ptr<RecordSealer> sealer_;
  SSL_SESSION** sessionSlot_ = nullptr;
  HandshakeFailure failure_ = HandshakeFailure::Protocol;
  const char* failureText_ = "";
};

}  // namespace lb::tls
