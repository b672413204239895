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
// Receiving stays with OpenSSL until the leg detaches: OpenSSL 3.0 hands
// no TLS 1.3 receive keys to a BIO. A TLS 1.3 key update the client asks
// for fails the leg (see writeRecord).
//
// Detaching (open with detach, server legs): once a TLS 1.3 handshake is
// done and its last bytes are sealed into the output, the leg frees its
// SSL object. What the handshake settled is kept (facts()); records from
// the client are opened by a RecordOpener with keys from the client's
// traffic secret (which OpenSSL gives to the key-log callback,
// enableDetach), records to it are sealed by the RecordSealer as above.
// An idle detached leg holds two cipher contexts and no buffer: about a
// tenth of an SSL object's memory. A record split across inputs is
// gathered in one pool block (`partial_`), so nothing beyond one record is
// read ahead. TLS 1.2, or a handshake OpenSSL still has bytes of, stays
// with OpenSSL. The client's KeyUpdate is followed; one that asks for ours
// in return is answered (a KeyUpdate sealed with the old keys, then the
// sealer moves to the next ones, from the server's secret), except after a
// kTLS hand-over, where it fails the leg.

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lb/tls/record_opener.h"
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

// What a server leg's handshake settled, kept past the SSL object. The
// version and cipher names are OpenSSL's static strings.
struct HandshakeFacts {
  std::string serverName;  // SNI, as the client sent it; empty: none
  std::string alpn;        // the protocol chosen; empty: none
  const char* version = "";
  const char* cipher = "";
  bool resumed = false;
  bool clientCertVerified = false;
  std::string clientCert;  // subject of a verified client certificate
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
  // detach (server legs, implies offerKernelTx): free the SSL object after
  // a TLS 1.3 handshake (see above); the context needs enableDetach().
  bool open(SSL_CTX* ctx, bool server, BlockPool* pool, bool offerKernelTx = false, bool detach = false) noexcept;
  // Frees the SSL object and any block; the leg is inactive again. Only
  // when no send of its output is in flight.
  void reset() noexcept;
  bool active() const { return ssl_ != nullptr || detached_; }
  // Null once detached.
  SSL* ssl() const { return ssl_; }
  bool detached() const { return detached_; }
  // Server legs, once handshake() said Ok.
  const HandshakeFacts& facts() const { return facts_; }
  // Lets legs on `ctx` (server contexts) detach: the key-log callback.
  static void enableDetach(SSL_CTX* ctx) noexcept;

  // Ciphertext that arrived. The previous input must be consumed.
  void setInput(const char* data, size_t length) noexcept;
  bool inputConsumed() const { return inputOffset_ == inputLength_; }
  // Forgets the input (its buffer is going back to the ring).
  void dropInput() noexcept { input_ = nullptr, inputOffset_ = inputLength_ = 0; }

  LegStatus handshake() noexcept;
  bool handshakeDone() const;
  // Decrypts at most `capacity` bytes into `out`; *n set on Ok. A detached
  // leg opens a whole record into `out`: capacity BlockPool::kBlockBytes.
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
  static void onKeylog(const SSL* ssl, const char* line);
  void captureFacts() noexcept;
  void detach() noexcept;
  LegStatus readDetached(char* out, size_t capacity, size_t* n) noexcept;
  const uint8_t* nextRecord(size_t* length, const char** error) noexcept;
  void releasePartial() noexcept;
  LegStatus failDetached(const char* why) noexcept;
  int sendOwedKeyUpdate() noexcept;
  LegStatus statusOf(int result, bool handshaking) noexcept;
  long takeKernelKeys(long isTransmit, const void* keyBlock) noexcept;
  int writeRecord(const char* data, size_t length) noexcept;
  int writeOwnRecord(uint8_t type, const char* data, size_t length) noexcept;
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
  bool server_ = false;
  bool detachWanted_ = false;
  bool detached_ = false;
  bool closed_ = false;  // detached: the client's close_notify was read
  // From the key log: the client's until detached, the server's (the
  // sealer's next keys come from it) for as long as the leg lives.
  std::array<uint8_t, 48> clientSecret_{};
  size_t clientSecretBytes_ = 0;
  std::array<uint8_t, 48> serverSecret_{};
  size_t serverSecretBytes_ = 0;
  uint16_t suite_ = 0;             // detached: the TLS 1.3 cipher suite
  bool keyUpdateOwed_ = false;     // detached: the client asked for our KeyUpdate, not yet sealed
  std::unique_ptr<RecordOpener> opener_;
  char* partial_ = nullptr;  // detached: a record begun in an earlier input (a pool block)
  size_t partialLength_ = 0;
  HandshakeFacts facts_;
  HandshakeFailure failure_ = HandshakeFailure::Protocol;
  const char* failureText_ = "";
};

}  // namespace lb::tls
