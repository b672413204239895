#include "lb/tls/leg.h"

#include <linux/tls.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace lb::tls {
namespace {
constexpr size_t kMaxRecordPlaintext = 16 * 1024;
}  // namespace

BlockPool::~BlockPool() {
  for (char* block : spare_) std::free(block);
}

char* BlockPool::acquire() noexcept {
  char* block = nullptr;
  if (!spare_.empty()) {
    block = spare_.back();
    spare_.pop_back();
  } else {
    block = static_cast<char*>(std::malloc(kBlockBytes));
    if (!block) return nullptr;
  }
  ++inUse_;
  return block;
}

void BlockPool::release(char* block) noexcept {
  if (!block) return;
  --inUse_;
  if (spare_.size() < maxSpare_) {
    // The vector's capacity is reserved up to maxSpare_ on first use, so
    // this push never allocates after that (and cannot throw).
    if (spare_.capacity() < maxSpare_) spare_.reserve(maxSpare_);
    spare_.push_back(block);
    return;
  }
  std::free(block);
}

namespace {

// The one BIO method every leg uses; made once, never freed.
BIO_METHOD* legMethod(int (*read)(BIO*, char*, size_t, size_t*),
                      int (*write)(BIO*, const char*, size_t, size_t*), long (*ctrl)(BIO*, int, long, void*)) {
  static BIO_METHOD* method = [&] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringlb leg");
    if (!m) return m;
    BIO_meth_set_read_ex(m, read);
    BIO_meth_set_write_ex(m, write);
    BIO_meth_set_ctrl(m, ctrl);
    BIO_meth_set_create(m, [](BIO* bio) {
      BIO_set_init(bio, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

int legIndex() {
  static int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

Leg::~Leg() { reset(); }

bool Leg::open(SSL_CTX* ctx, bool server, BlockPool* pool, bool offerKernelTx, bool detach) noexcept {
  if (ssl_) return false;
  BIO_METHOD* method = legMethod(&Leg::bioRead, &Leg::bioWrite, &Leg::bioCtrl);
  if (!method) return false;
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return false;
  BIO* bio = BIO_new(method);
  if (!bio) {
    SSL_free(ssl);
    ERR_clear_error();
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl, bio, bio);  // one BIO both ways; the SSL owns it
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_ex_data(ssl, legIndex(), this);
  // Detaching needs the transmit keys handed to the leg's sealer too.
  if (offerKernelTx || (detach && server)) SSL_set_options(ssl, SSL_OP_ENABLE_KTLS);
  if (server)
    SSL_set_accept_state(ssl);
  else
    SSL_set_connect_state(ssl);
  ssl_ = ssl;
  pool_ = pool;
  failure_ = HandshakeFailure::Protocol;
  failureText_ = "";
  shutdownSent_ = false;
  server_ = server;
  detachWanted_ = detach && server;
  return true;
}

void Leg::reset() noexcept {
  // OpenSSL makes the session of a connection freed without close_notify
  // unresumable; a connection whose handshake completed keeps it usable
  // (as nginx does), so members and clients that close with a bare FIN
  // still resume.
  if (ssl_ && SSL_is_init_finished(ssl_)) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_get_shutdown(ssl_));
  if (ssl_) SSL_free(ssl_);
  ssl_ = nullptr;
  if (output_ && pool_) pool_->release(output_);
  output_ = nullptr;
  outputSent_ = outputTaken_ = outputLength_ = 0;
  sending_ = false;
  dropInput();
  sessionSlot_ = nullptr;
  shutdownSent_ = false;
  txMode_ = TxMode::Ssl;
  recordType_ = 23;
  outputType_ = 0;
  sealer_.reset();
  server_ = detachWanted_ = detached_ = closed_ = false;
  OPENSSL_cleanse(clientSecret_.data(), clientSecret_.size());
  OPENSSL_cleanse(serverSecret_.data(), serverSecret_.size());
  clientSecretBytes_ = serverSecretBytes_ = 0;
  suite_ = 0;
  keyUpdateOwed_ = false;
  opener_.reset();
  releasePartial();
  facts_.serverName.clear();
  facts_.alpn.clear();
  facts_.clientCert.clear();
  facts_.version = facts_.cipher = "";
  facts_.resumed = facts_.clientCertVerified = false;
  ERR_clear_error();
}

void Leg::setInput(const char* data, size_t length) noexcept {
  input_ = data;
  inputOffset_ = 0;
  inputLength_ = length;
}

int Leg::bioRead(BIO* bio, char* out, size_t length, size_t* done) {
  auto* leg = static_cast<Leg*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  size_t left = leg->inputLength_ - leg->inputOffset_;
  if (left == 0) {
    BIO_set_retry_read(bio);
    *done = 0;
    return 0;
  }
  size_t n = length < left ? length : left;
  std::memcpy(out, leg->input_ + leg->inputOffset_, n);
  leg->inputOffset_ += n;
  *done = n;
  return 1;
}

int Leg::bioWrite(BIO* bio, const char* data, size_t length, size_t* done) {
  auto* leg = static_cast<Leg*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (leg->txMode_ != TxMode::Ssl) {
    int result = leg->writeRecord(data, length);
    if (result == 0) BIO_set_retry_write(bio);
    *done = result > 0 ? length : 0;
    return result > 0 ? 1 : 0;
  }
  if (!leg->output_) {
    leg->output_ = leg->pool_->acquire();
    leg->outputSent_ = leg->outputTaken_ = leg->outputLength_ = 0;
    if (!leg->output_) {
      BIO_set_retry_write(bio);
      *done = 0;
      return 0;
    }
  }
  // Unsent bytes move to the front when no send is reading the block.
  if (!leg->sending_ && leg->outputSent_ > 0 && leg->outputLength_ + length > BlockPool::kBlockBytes) {
    std::memmove(leg->output_, leg->output_ + leg->outputSent_, leg->outputLength_ - leg->outputSent_);
    leg->outputLength_ -= leg->outputSent_;
    leg->outputSent_ = leg->outputTaken_ = 0;
  }
  size_t room = BlockPool::kBlockBytes - leg->outputLength_;
  if (room == 0) {
    BIO_set_retry_write(bio);
    *done = 0;
    return 0;
  }
  size_t n = length < room ? length : room;
  std::memcpy(leg->output_ + leg->outputLength_, data, n);
  leg->outputLength_ += n;
  *done = n;
  return 1;
}

// OpenSSL's kTLS controls (include/internal/bio.h in OpenSSL 3.0; only
// the GET ones are public).
constexpr int kCtrlSetKtls = 72;
constexpr int kCtrlSetKtlsRecordType = 74;
constexpr int kCtrlClearKtlsRecordType = 75;

long Leg::bioCtrl(BIO* bio, int command, long number, void* pointer) {
  auto* leg = static_cast<Leg*>(BIO_get_data(bio));
  switch (command) {
    // A flush that says "done" with output still unsent keeps the order:
    // sealed records go behind it, and the kernel only gets the keys once
    // the output is all sent.
    case BIO_CTRL_FLUSH: return 1;
    case kCtrlSetKtls: return leg->takeKernelKeys(number, pointer);
    case BIO_CTRL_GET_KTLS_SEND: return leg->txMode_ != TxMode::Ssl ? 1 : 0;
    case BIO_CTRL_GET_KTLS_RECV: return 0;
    case kCtrlSetKtlsRecordType:
      leg->recordType_ = static_cast<uint8_t>(number);
      return 1;
    case kCtrlClearKtlsRecordType:
      leg->recordType_ = 23;
      return 1;
    case BIO_CTRL_PENDING: return static_cast<long>(leg->inputLength_ - leg->inputOffset_);
    case BIO_CTRL_WPENDING: return static_cast<long>(leg->outputLength_ - leg->outputSent_);
    default: return 0;
  }
}

// Transmit keys only (receive keys are refused: OpenSSL then keeps them).
long Leg::takeKernelKeys(long isTransmit, const void* keyBlock) noexcept {
  if (!isTransmit || !keyBlock || txMode_ == TxMode::Kernel) return 0;
  if (!sealer_) sealer_.reset(new (std::nothrow) RecordSealer);
  if (!sealer_) return 0;
  // Every layout OpenSSL may pass starts with struct tls_crypto_info and
  // is at most as long as the AES-256-GCM one.
  auto bytes = static_cast<const uint8_t*>(keyBlock);
  if (!sealer_->start({bytes, sizeof(tls12_crypto_info_aes_gcm_256)})) {
    sealer_.reset();
    return txMode_ == TxMode::Sealer ? -1 : 0;
  }
  txMode_ = TxMode::Sealer;
  return 1;
}

// One plaintext record from OpenSSL: sealed into the output (Sealer), or
// kept whole for a control message (Kernel). 1 done, 0 retry (no room), -1
// failed.
//
// A TLS 1.3 KeyUpdate of ours (the client asked for one) is refused: OpenSSL
// 3.0 switches to the next keys without telling the BIO, so neither the
// sealer nor the kernel could follow, and every record after it would be
// one the client cannot read. The leg fails instead, and the session ends.
int Leg::writeRecord(const char* data, size_t length) noexcept {
  constexpr uint8_t kHandshakeRecord = 22, kKeyUpdate = 24;
  uint8_t type = recordType_;
  recordType_ = 23;
  if (type == kHandshakeRecord && length > 0 && static_cast<uint8_t>(data[0]) == kKeyUpdate && ssl_ &&
      SSL_version(ssl_) == TLS1_3_VERSION)
    return -1;
  size_t needed = txMode_ == TxMode::Sealer ? length + RecordSealer::kOverheadBytes : length;
  if (needed > BlockPool::kBlockBytes) return -1;
  if (output_ && !sending_ && outputSent_ > 0) {
    std::memmove(output_, output_ + outputSent_, outputLength_ - outputSent_);
    outputLength_ -= outputSent_;
    outputSent_ = outputTaken_ = 0;
  }
  bool busy = output_ && (txMode_ == TxMode::Kernel ? outputLength_ > 0 : outputLength_ + needed > BlockPool::kBlockBytes);
  if (!busy && !output_) {
    output_ = pool_->acquire();
    outputSent_ = outputTaken_ = outputLength_ = 0;
  }
  if (busy || !output_) {
    recordType_ = type;  // the same record comes again
    return 0;
  }
  if (txMode_ == TxMode::Kernel) {
    std::memcpy(output_, data, length);
    outputLength_ = length;
    outputType_ = type;
    return 1;
  }
  size_t sealed = sealer_->seal(type, {reinterpret_cast<const uint8_t*>(data), length},
                                {reinterpret_cast<uint8_t*>(output_) + outputLength_, BlockPool::kBlockBytes - outputLength_});
  if (sealed == 0) return -1;
  outputLength_ += sealed;
  return 1;
}

// A record of the leg's own (detached: data, close_notify, KeyUpdate), as
// writeRecord takes one of OpenSSL's. A retry is the caller's to make, so
// the type is not kept for it.
int Leg::writeOwnRecord(uint8_t type, const char* data, size_t length) noexcept {
  recordType_ = type;
  int result = writeRecord(data, length);
  recordType_ = 23;
  return result;
}

const KernelKeyBlock& Leg::kernelKeys() const {
  static const KernelKeyBlock none;
  return sealer_ ? sealer_->keyBlock() : none;
}

void Leg::handOverTx() noexcept {
  if (txMode_ != TxMode::Sealer) return;
  txMode_ = TxMode::Kernel;
  sealer_.reset();
}

std::span<const char> Leg::takeOutput() noexcept {
  sending_ = true;
  outputTaken_ = outputLength_;
  return {output_ + outputSent_, outputLength_ - outputSent_};
}

void Leg::outputSent(size_t n) noexcept {
  sending_ = false;
  size_t taken = outputTaken_ - outputSent_;
  outputSent_ += n < taken ? n : taken;
  releaseBlockIfSent();
}

void Leg::releaseBlockIfSent() noexcept {
  if (!output_ || sending_ || outputSent_ != outputLength_) return;
  outputType_ = 0;
  pool_->release(output_);
  output_ = nullptr;
  outputSent_ = outputTaken_ = outputLength_ = 0;
}

LegStatus Leg::handshake() noexcept {
  if (detached_) return LegStatus::Ok;
  ERR_clear_error();
  int result = SSL_do_handshake(ssl_);
  if (result != 1) return statusOf(result, true);
  if (server_) captureFacts();
  if (detachWanted_) detach();
  return LegStatus::Ok;
}

bool Leg::handshakeDone() const { return detached_ || (ssl_ && SSL_is_init_finished(ssl_)); }

LegStatus Leg::read(char* out, size_t capacity, size_t* n) noexcept {
  if (detached_) return readDetached(out, capacity, n);
  ERR_clear_error();
  if (SSL_read_ex(ssl_, out, capacity, n) == 1) return LegStatus::Ok;
  return statusOf(0, false);
}

LegStatus Leg::write(const char* data, size_t length, size_t* n) noexcept {
  if (detached_) {
    int owed = sendOwedKeyUpdate();
    if (owed < 0) return failDetached("key update not sealed");
    if (owed == 0) return LegStatus::WantWrite;
    // One record per call, as SSL_write_ex with partial writes.
    size_t chunk = length < kMaxRecordPlaintext ? length : kMaxRecordPlaintext;
    int result = chunk == 0 ? 1 : writeOwnRecord(23, data, chunk);
    if (result < 0) return failDetached("record too large for the output");
    if (result == 0) return LegStatus::WantWrite;
    *n = chunk;
    return LegStatus::Ok;
  }
  ERR_clear_error();
  if (SSL_write_ex(ssl_, data, length, n) == 1) return LegStatus::Ok;
  return statusOf(0, false);
}

LegStatus Leg::shutdown() noexcept {
  if (shutdownSent_) return LegStatus::Ok;
  if (detached_) {
    static constexpr char kCloseNotify[] = {1, 0};  // level warning, close_notify
    int owed = sendOwedKeyUpdate();
    if (owed < 0) return failDetached("key update not sealed");
    if (owed == 0) return LegStatus::WantWrite;
    int result = writeOwnRecord(21, kCloseNotify, sizeof kCloseNotify);
    if (result < 0) return failDetached("close_notify not sealed");
    if (result == 0) return LegStatus::WantWrite;  // asked again once the output is sent
    shutdownSent_ = true;
    return LegStatus::Ok;
  }
  shutdownSent_ = true;
  ERR_clear_error();
  int result = SSL_shutdown(ssl_);
  if (result >= 0) return LegStatus::Ok;  // 0: sent, the peer's not yet seen
  LegStatus status = statusOf(result, false);
  return status == LegStatus::WantRead ? LegStatus::Ok : status;
}

LegStatus Leg::statusOf(int result, bool handshaking) noexcept {
  switch (SSL_get_error(ssl_, result)) {
    case SSL_ERROR_WANT_READ: return LegStatus::WantRead;
    case SSL_ERROR_WANT_WRITE: return LegStatus::WantWrite;
    case SSL_ERROR_ZERO_RETURN: return LegStatus::Closed;
    default: break;
  }
  unsigned long error = ERR_peek_error();
  if (handshaking) classifyFailure(error);
  failureText_ = error ? ERR_reason_error_string(error) : "unexpected end";
  if (!failureText_) failureText_ = "unknown";
  ERR_clear_error();
  return LegStatus::Failed;
}

// OpenSSL's reasons, sorted into the counted kinds. Alerts the peer sent
// say what it found wrong with us or the offer.
void Leg::classifyFailure(unsigned long error) noexcept {
  failure_ = HandshakeFailure::Protocol;
  if (ERR_GET_LIB(error) != ERR_LIB_SSL) return;
  switch (ERR_GET_REASON(error)) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      failure_ = HandshakeFailure::NoShared;
      return;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      failure_ = HandshakeFailure::BadCertificate;
      return;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      failure_ = HandshakeFailure::UnknownCa;
      return;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      switch (SSL_get_verify_result(ssl_)) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
          failure_ = HandshakeFailure::UnknownCa;
          return;
        default:
          failure_ = HandshakeFailure::BadCertificate;
          return;
      }
    default: return;
  }
}

// ---------------------------------------------------------------------------
// Detached server legs

void Leg::enableDetach(SSL_CTX* ctx) noexcept { SSL_CTX_set_keylog_callback(ctx, &Leg::onKeylog); }

// NSS key-log lines: "LABEL <client random, hex> <secret, hex>". Only the
// application traffic secrets are kept, by legs that will detach.
void Leg::onKeylog(const SSL* ssl, const char* line) {
  constexpr std::string_view kClient = "CLIENT_TRAFFIC_SECRET_0 ", kServer = "SERVER_TRAFFIC_SECRET_0 ";
  static_assert(kClient.size() == kServer.size());  // the random starts at the same place
  auto* leg = static_cast<Leg*>(SSL_get_ex_data(ssl, legIndex()));
  if (!leg || !leg->detachWanted_) return;
  bool client = std::strncmp(line, kClient.data(), kClient.size()) == 0;
  if (!client && std::strncmp(line, kServer.data(), kServer.size()) != 0) return;
  std::array<uint8_t, 48>& into = client ? leg->clientSecret_ : leg->serverSecret_;
  const char* secret = std::strchr(line + kClient.size(), ' ');
  if (!secret) return;
  ++secret;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  size_t bytes = 0;
  for (; secret[0] && secret[1] && bytes < into.size(); secret += 2) {
    int high = nibble(secret[0]), low = nibble(secret[1]);
    if (high < 0 || low < 0) break;
    into[bytes++] = static_cast<uint8_t>(high << 4 | low);
  }
  (client ? leg->clientSecretBytes_ : leg->serverSecretBytes_) = bytes;
}

void Leg::captureFacts() noexcept {
  if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) facts_.serverName = name;
  const unsigned char* protocol = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(ssl_, &protocol, &length);
  if (protocol) facts_.alpn.assign(reinterpret_cast<const char*>(protocol), length);
  facts_.version = SSL_get_version(ssl_);
  facts_.cipher = SSL_get_cipher_name(ssl_);
  facts_.resumed = SSL_session_reused(ssl_) == 1;
  X509* peer = SSL_get0_peer_certificate(ssl_);
  facts_.clientCertVerified = peer && SSL_get_verify_result(ssl_) == X509_V_OK;
  if (facts_.clientCertVerified) {
    char subject[256];
    if (X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject)) facts_.clientCert = subject;
  }
}

// Lets go of the SSL object when everything after the handshake can be
// done without it: TLS 1.3, transmit keys in the sealer, the client's
// secret from the key log, and no byte OpenSSL read but did not process.
// Otherwise the leg simply stays with OpenSSL.
void Leg::detach() noexcept {
  if (SSL_version(ssl_) != TLS1_3_VERSION || txMode_ != TxMode::Sealer || clientSecretBytes_ == 0 ||
      serverSecretBytes_ != clientSecretBytes_ || SSL_has_pending(ssl_) || SSL_get_shutdown(ssl_) != 0)
    return;
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  if (!cipher) return;
  suite_ = static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(cipher));
  opener_.reset(new (std::nothrow) RecordOpener);
  if (!opener_ || !opener_->start(suite_, {clientSecret_.data(), clientSecretBytes_})) {
    opener_.reset();
    return;
  }
  OPENSSL_cleanse(clientSecret_.data(), clientSecret_.size());
  clientSecretBytes_ = 0;
  SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN);  // keeps its session resumable (see reset)
  SSL_free(ssl_);
  ssl_ = nullptr;
  detached_ = true;
  ERR_clear_error();
}

void Leg::releasePartial() noexcept {
  if (partial_ && pool_) pool_->release(partial_);
  partial_ = nullptr;
  partialLength_ = 0;
}

LegStatus Leg::failDetached(const char* why) noexcept {
  failureText_ = why;
  return LegStatus::Failed;
}

// The KeyUpdate the client asked for (RFC 8446 4.6.3): sealed with the
// current keys ahead of anything else, then the sealer takes the next
// ones. 1 done (or none owed), 0 no room yet, -1 failed.
int Leg::sendOwedKeyUpdate() noexcept {
  static constexpr char kKeyUpdate[] = {24, 0, 0, 1, 0};  // update_not_requested
  if (!keyUpdateOwed_) return 1;
  if (txMode_ != TxMode::Sealer) return -1;  // the kernel's keys cannot follow
  int result = writeOwnRecord(22, kKeyUpdate, sizeof kKeyUpdate);
  if (result <= 0) return result;
  keyUpdateOwed_ = false;
  Tls13Suite suite;
  std::span<uint8_t> secret{serverSecret_.data(), serverSecretBytes_};
  if (!tls13Suite(suite_, &suite) || !nextTrafficSecret(suite, secret) || !sealer_->startTls13(suite_, secret))
    return -1;
  return 1;
}

// The next whole record: in the input itself (no copy), or gathered in
// partial_ across inputs. Null when the input ran out first (what there
// was is in partial_), or with *error set: a header no record may have, or
// no block to gather in.
const uint8_t* Leg::nextRecord(size_t* length, const char** error) noexcept {
  constexpr const char* kNotARecord = "not a TLS 1.3 record";
  auto in = reinterpret_cast<const uint8_t*>(input_) + inputOffset_;
  size_t left = inputLength_ - inputOffset_;
  if (partialLength_ == 0 && left >= RecordOpener::kHeaderBytes) {
    size_t whole = RecordOpener::recordBytes(in);
    if (whole == 0) {
      *error = kNotARecord;
      return nullptr;
    }
    if (left >= whole) {
      inputOffset_ += whole;
      *length = whole;
      return in;
    }
  }
  if (partialLength_ == 0 && left == 0) return nullptr;
  if (!partial_ && !(partial_ = pool_->acquire())) {
    *error = "no memory for a record";
    return nullptr;
  }
  auto gathered = reinterpret_cast<uint8_t*>(partial_);
  for (;;) {
    size_t want = RecordOpener::kHeaderBytes;
    if (partialLength_ >= RecordOpener::kHeaderBytes && (want = RecordOpener::recordBytes(gathered)) == 0) {
      *error = kNotARecord;
      return nullptr;
    }
    if (partialLength_ == want) {
      partialLength_ = 0;  // partial_ itself is released once opened
      *length = want;
      return gathered;
    }
    size_t take = want - partialLength_ < left ? want - partialLength_ : left;
    if (take == 0) return nullptr;
    std::memcpy(gathered + partialLength_, in, take);
    partialLength_ += take;
    in += take;
    left -= take;
    inputOffset_ += take;
  }
}

// Records of a detached leg, opened straight from the input into `out`.
// Application data comes back; close_notify is Closed; a KeyUpdate from
// the client moves to its next keys; anything else (another alert, a
// handshake message, a record that does not authenticate) fails the leg.
LegStatus Leg::readDetached(char* out, size_t capacity, size_t* n) noexcept {
  constexpr uint8_t kAlert = 21, kHandshake = 22, kApplicationData = 23, kKeyUpdate = 24;
  if (closed_) return LegStatus::Closed;
  if (capacity < RecordOpener::kMaxBodyBytes) return failDetached("read buffer smaller than a record");
  auto plain = reinterpret_cast<uint8_t*>(out);
  for (;;) {
    size_t length = 0;
    const char* error = nullptr;
    const uint8_t* record = nextRecord(&length, &error);
    if (error) return failDetached(error);
    if (!record) {
      if (partialLength_ == 0) releasePartial();
      return LegStatus::WantRead;
    }
    uint8_t type = 0;
    size_t content = 0;
    bool opened = opener_->open(record, length, plain, &type, &content);
    if (record == reinterpret_cast<const uint8_t*>(partial_)) releasePartial();
    if (!opened) return failDetached("bad record mac");
    switch (type) {
      case kApplicationData:
        if (content == 0) continue;  // allowed, and nothing to pass on
        *n = content;
        return LegStatus::Ok;
      case kAlert:
        if (content == 2 && plain[1] == 0) {
          closed_ = true;
          return LegStatus::Closed;
        }
        return failDetached("alert from the client");
      case kHandshake:
        // KeyUpdate (RFC 8446 4.6.3): type, a 3-byte length of 1, and
        // whether ours is asked for too; it must end its record.
        if (content == 5 && plain[0] == kKeyUpdate && plain[1] == 0 && plain[2] == 0 && plain[3] == 1 &&
            plain[4] <= 1) {
          if (!opener_->update()) return failDetached("key update failed");
          if (plain[4] == 1) {
            if (txMode_ != TxMode::Sealer) return failDetached("key update requested after the kTLS hand-over");
            keyUpdateOwed_ = true;
            if (sendOwedKeyUpdate() < 0) return failDetached("key update not sealed");
          }
          continue;
        }
        return failDetached("handshake message after the handshake");
      default: return failDetached("unexpected record type");
    }
  }
}

void Leg::enableSessionStore(SSL_CTX* ctx) noexcept {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &Leg::onNewSession);
}

void Leg::setSessionSlot(SSL_SESSION** slot) noexcept {
  sessionSlot_ = slot;
  if (slot && *slot) SSL_set_session(ssl_, *slot);
}

// Returning 1 keeps the reference OpenSSL handed over.
int Leg::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* leg = static_cast<Leg*>(SSL_get_ex_data(ssl, legIndex()));
  if (!leg || !leg->sessionSlot_) return 0;
  if (*leg->sessionSlot_) SSL_SESSION_free(*leg->sessionSlot_);
  *leg->sessionSlot_ = session;
  return 1;
}

}  // namespace lb::tls
