#pragma once
// TLS 1.3 records received from a peer, opened without OpenSSL's SSL
// object: keys and nonces come from the peer's application traffic secret
// (RFC 8446 7.1 and 7.3), the sequence number is counted here.
//
// Used once a server leg has let go of its SSL object (Leg, "detached"):
// OpenSSL 3.0 gives nobody its TLS 1.3 receive keys, but it does give the
// traffic secret to the key-log callback, and that is all these records need.
//
// AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 (the suites OpenSSL
// offers by default; CCM is not).

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace lb::tls {

// HKDF-Expand-Label (RFC 8446 7.1) with an empty context, for at most one
// hash's length of output. False on an OpenSSL failure.
bool expandLabel(const EVP_MD* hash, std::span<const uint8_t> secret, const char* label,
                 std::span<uint8_t> out) noexcept;

// What a TLS 1.3 cipher suite (0x1301-0x1303) uses; false for others.
struct Tls13Suite {
  const EVP_CIPHER* aead = nullptr;
  const EVP_MD* hash = nullptr;
  size_t keyBytes = 0;
};
bool tls13Suite(uint16_t suite, Tls13Suite* out) noexcept;

// A traffic secret's write key and IV (RFC 8446 7.3): key of
// suite.keyBytes (at most 32), iv of 12.
bool trafficKeys(const Tls13Suite& suite, std::span<const uint8_t> secret, uint8_t* key, uint8_t* iv) noexcept;

// The secret after a KeyUpdate (RFC 8446 7.2), in place.
bool nextTrafficSecret(const Tls13Suite& suite, std::span<uint8_t> secret) noexcept;

class RecordOpener {
 public:
  static constexpr size_t kHeaderBytes = 5;
  static constexpr size_t kTagBytes = 16;
  // RFC 8446 5.2: TLSCiphertext.length is at most 2^14 + 256.
  static constexpr size_t kMaxBodyBytes = 16 * 1024 + 256;

  RecordOpener() = default;
  ~RecordOpener();
  RecordOpener(const RecordOpener&) = delete;
  RecordOpener& operator=(const RecordOpener&) = delete;

  // `suite`: the TLS 1.3 cipher suite (0x1301, 0x1302 or 0x1303);
  // `secret`: the peer's application traffic secret, as long as the
  // suite's hash. False (nothing kept) for anything else, or no memory.
  bool start(uint16_t suite, std::span<const uint8_t> secret) noexcept;

  // From a record's 5-byte header: the whole record's length, or 0 when no
  // TLS 1.3 record after the handshake has that header (not application
  // data, not 3.3, a body too short for a tag and a type, or too long).
  static size_t recordBytes(const uint8_t* header) noexcept;

  // Opens one whole record (recordBytes() long, header included) into
  // `out`, which needs room for the body less the tag. On success: the
  // inner content type, and the content's length (padding removed). False
  // when the record does not authenticate or has no content type; the
  // sequence number then stays where it was.
  bool open(const uint8_t* record, size_t length, uint8_t* out, uint8_t* type, size_t* content) noexcept;

  // The peer's KeyUpdate: the next traffic secret and its keys, sequence 0.
  bool update() noexcept;

 private:
  bool install() noexcept;

  EVP_CIPHER_CTX* cipher_ = nullptr;
  Tls13Suite suite_;
  std::array<uint8_t, 48> secret_{};
  size_t secretBytes_ = 0;
  std::array<uint8_t, 12> iv_{};
  uint64_t sequence_ = 0;
};

}  // namespace lb::tls
