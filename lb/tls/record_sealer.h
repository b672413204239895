#pragma once
// TLS records sealed the way the kernel's kTLS transmit path seals them,
// from the same key block (struct tls12_crypto_info_*, <linux/tls.h>).
//
// OpenSSL 3 hands a connection's transmit keys to its BIO once the
// handshake switches to them (SSL_OP_ENABLE_KTLS); from then on it writes
// plaintext records and expects whatever is below the BIO to encrypt them.
// Until ringlb gives the key block to the kernel (setsockopt TLS_TX, once
// the handshake's own bytes are sent), a RecordSealer does that work, and
// keyBlock() then says where the kernel has to go on: the record sequence
// number, and for TLS 1.2 AES-GCM the next explicit nonce.
//
// TLS 1.2 and 1.3 with AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305.

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace lb::tls {

// One key block as the kernel takes it (the largest is ChaCha20's).
struct KernelKeyBlock {
  std::array<uint8_t, 64> bytes{};
  size_t length = 0;  // 0: none
};

class RecordSealer {
 public:
  // The most a record adds to its plaintext: the header, TLS 1.2 GCM's
  // explicit nonce, TLS 1.3's inner content type and the tag.
  static constexpr size_t kOverheadBytes = 5 + 8 + 1 + 16;

  RecordSealer() = default;
  ~RecordSealer();
  RecordSealer(const RecordSealer&) = delete;
  RecordSealer& operator=(const RecordSealer&) = delete;

  // Takes a key block (`bytes` as OpenSSL or the kernel lay it out). False
  // (and nothing kept) for a version or cipher this does not know, a short
  // block, or no memory.
  bool start(std::span<const uint8_t> keyBlock) noexcept;
  // TLS 1.3 from a traffic secret instead (a KeyUpdate's next keys), as
  // start() with the key block OpenSSL would make of it, sequence 0.
  bool startTls13(uint16_t suite, std::span<const uint8_t> secret) noexcept;
  bool started() const { return cipher_ != nullptr; }

  // Seals one record of `type` (23 application data, 21 alert, 22
  // handshake) around `plaintext` (at most 16 KiB) into `out`, which needs
  // plaintext.size() + kOverheadBytes. Returns the record's length, 0 on
  // failure (no change to the sequence then).
  size_t seal(uint8_t type, std::span<const uint8_t> plaintext, std::span<uint8_t> out) noexcept;

  // The key block as it stands: what the kernel needs to seal the next record.
  const KernelKeyBlock& keyBlock() const { return block_; }

 private:
  EVP_CIPHER_CTX* cipher_ = nullptr;
  KernelKeyBlock block_;
  uint16_t version_ = 0;
  bool explicitNonce_ = false;  // TLS 1.2 AES-GCM: 8 nonce bytes on the wire
  std::array<uint8_t, 12> baseNonce_{};
  uint8_t* sequence_ = nullptr;  // rec_seq inside block_
  uint8_t* nonceCounter_ = nullptr;  // TLS 1.2 AES-GCM: iv inside block_
};

}  // namespace lb::tls
