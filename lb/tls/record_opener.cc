#include "lb/tls/record_opener.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>

#include <cstring>

namespace lb::tls {

RecordOpener::~RecordOpener() {
  if (cipher_) EVP_CIPHER_CTX_free(cipher_);
  OPENSSL_cleanse(secret_.data(), secret_.size());
}

bool expandLabel(const EVP_MD* hash, std::span<const uint8_t> secret, const char* label,
                 std::span<uint8_t> out) noexcept {
  // HkdfLabel: uint16 length, opaque label<7..255> ("tls13 " + label),
  // opaque context<0..255> (empty); then HKDF-Expand's one block: T(1) =
  // HMAC(secret, HkdfLabel || 0x01).
  constexpr char kPrefix[] = "tls13 ";
  size_t labelBytes = sizeof kPrefix - 1 + std::strlen(label);
  uint8_t info[2 + 1 + 255 + 1 + 1];
  if (labelBytes > 255 || out.size() > static_cast<size_t>(EVP_MD_get_size(hash))) return false;
  size_t at = 0;
  info[at++] = static_cast<uint8_t>(out.size() >> 8);
  info[at++] = static_cast<uint8_t>(out.size());
  info[at++] = static_cast<uint8_t>(labelBytes);
  std::memcpy(info + at, kPrefix, sizeof kPrefix - 1);
  at += sizeof kPrefix - 1;
  std::memcpy(info + at, label, labelBytes - (sizeof kPrefix - 1));
  at += labelBytes - (sizeof kPrefix - 1);
  info[at++] = 0;  // context
  info[at++] = 1;  // the block counter
  uint8_t block[EVP_MAX_MD_SIZE];
  unsigned blockBytes = 0;
  bool ok = HMAC(hash, secret.data(), static_cast<int>(secret.size()), info, at, block, &blockBytes) != nullptr;
  if (ok) std::memcpy(out.data(), block, out.size());
  OPENSSL_cleanse(block, sizeof block);
  if (!ok) ERR_clear_error();
  return ok;
}

bool tls13Suite(uint16_t suite, Tls13Suite* out) noexcept {
  switch (suite) {
    case 0x1301: *out = {EVP_aes_128_gcm(), EVP_sha256(), 16}; break;
    case 0x1302: *out = {EVP_aes_256_gcm(), EVP_sha384(), 32}; break;
    case 0x1303: *out = {EVP_chacha20_poly1305(), EVP_sha256(), 32}; break;
    default: return false;
  }
  return out->aead && out->hash;
}

bool trafficKeys(const Tls13Suite& suite, std::span<const uint8_t> secret, uint8_t* key, uint8_t* iv) noexcept {
  return expandLabel(suite.hash, secret, "key", {key, suite.keyBytes}) &&
         expandLabel(suite.hash, secret, "iv", {iv, 12});
}

bool nextTrafficSecret(const Tls13Suite& suite, std::span<uint8_t> secret) noexcept {
  std::array<uint8_t, EVP_MAX_MD_SIZE> next{};
  if (secret.size() > next.size() || !expandLabel(suite.hash, secret, "traffic upd", {next.data(), secret.size()}))
    return false;
  std::memcpy(secret.data(), next.data(), secret.size());
  OPENSSL_cleanse(next.data(), next.size());
  return true;
}

bool RecordOpener::start(uint16_t suite, std::span<const uint8_t> secret) noexcept {
  if (!tls13Suite(suite, &suite_) || secret.size() != static_cast<size_t>(EVP_MD_get_size(suite_.hash)) ||
      secret.size() > secret_.size())
    return false;
  std::memcpy(secret_.data(), secret.data(), secret.size());
  secretBytes_ = secret.size();
  return install();
}

// Key and IV from secret_ (RFC 8446 7.3); the sequence starts again.
bool RecordOpener::install() noexcept {
  std::array<uint8_t, 32> key{};
  bool ok = trafficKeys(suite_, {secret_.data(), secretBytes_}, key.data(), iv_.data());
  if (ok && !cipher_) ok = (cipher_ = EVP_CIPHER_CTX_new()) != nullptr;
  ok = ok && EVP_DecryptInit_ex(cipher_, suite_.aead, nullptr, nullptr, nullptr) == 1 &&
       EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(iv_.size()), nullptr) == 1 &&
       EVP_DecryptInit_ex(cipher_, nullptr, nullptr, key.data(), nullptr) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  sequence_ = 0;
  if (!ok) ERR_clear_error();
  return ok;
}

bool RecordOpener::update() noexcept {
  return cipher_ && nextTrafficSecret(suite_, {secret_.data(), secretBytes_}) && install();
}

size_t RecordOpener::recordBytes(const uint8_t* header) noexcept {
  constexpr uint8_t kApplicationData = 23;
  if (header[0] != kApplicationData || header[1] != 3 || header[2] != 3) return 0;
  size_t body = static_cast<size_t>(header[3]) << 8 | header[4];
  if (body < kTagBytes + 1 || body > kMaxBodyBytes) return 0;
  return kHeaderBytes + body;
}

bool RecordOpener::open(const uint8_t* record, size_t length, uint8_t* out, uint8_t* type,
                        size_t* content) noexcept {
  if (!cipher_ || length < kHeaderBytes + kTagBytes + 1 || recordBytes(record) != length) return false;
  std::array<uint8_t, 12> nonce = iv_;
  for (size_t i = 0; i < 8; ++i) nonce[4 + i] ^= static_cast<uint8_t>(sequence_ >> (56 - 8 * i));
  const uint8_t* body = record + kHeaderBytes;
  size_t sealed = length - kHeaderBytes - kTagBytes;
  int n = 0, last = 0;
  // The record header is the additional data (RFC 8446 5.2).
  bool ok = EVP_DecryptInit_ex(cipher_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            EVP_DecryptUpdate(cipher_, nullptr, &n, record, static_cast<int>(kHeaderBytes)) == 1 &&
            EVP_DecryptUpdate(cipher_, out, &n, body, static_cast<int>(sealed)) == 1 &&
            EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagBytes),
                                const_cast<uint8_t*>(body + sealed)) == 1 &&
            EVP_DecryptFinal_ex(cipher_, out + n, &last) == 1;
  if (!ok) {
    ERR_clear_error();
    return false;
  }
  // TLSInnerPlaintext: content, the type (never 0), then zero padding.
  size_t end = static_cast<size_t>(n + last);
  while (end > 0 && out[end - 1] == 0) --end;
  if (end == 0) return false;
  *type = out[end - 1];
  *content = end - 1;
  ++sequence_;
  return true;
}

}  // namespace lb::tls
