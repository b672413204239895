#include "lb/tls/record_sealer.h"

#include <linux/tls.h>
#include <openssl/err.h>

#include <cstring>

#include "lb/tls/record_opener.h"

namespace lb::tls {
namespace {

constexpr size_t kTagBytes = 16;
constexpr size_t kMaxPlaintext = 16 * 1024;

void put16(uint8_t* at, size_t value) {
  at[0] = static_cast<uint8_t>(value >> 8);
  at[1] = static_cast<uint8_t>(value);
}

// Big-endian +1, as the kernel advances rec_seq and the TLS 1.2 GCM nonce.
void increment(uint8_t* number, size_t length) {
  for (size_t i = length; i-- > 0;)
    if (++number[i] != 0) return;
}

}  // namespace

RecordSealer::~RecordSealer() {
  if (cipher_) EVP_CIPHER_CTX_free(cipher_);
}

bool RecordSealer::start(std::span<const uint8_t> keyBlock) noexcept {
  if (keyBlock.size() < sizeof(tls_crypto_info) || keyBlock.size() > block_.bytes.size()) return false;
  tls_crypto_info info;
  std::memcpy(&info, keyBlock.data(), sizeof info);
  if (info.version != TLS_1_2_VERSION && info.version != TLS_1_3_VERSION) return false;

  // Where the parts of each layout are, and which AEAD it names.
  const EVP_CIPHER* aead = nullptr;
  size_t size = 0, ivAt = 0, ivBytes = 0, keyAt = 0, saltAt = 0, saltBytes = 0, seqAt = 0;
  switch (info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128: {
      using T = tls12_crypto_info_aes_gcm_128;
      aead = EVP_aes_128_gcm();
      size = sizeof(T), ivAt = offsetof(T, iv), ivBytes = 8, keyAt = offsetof(T, key);
      saltAt = offsetof(T, salt), saltBytes = 4, seqAt = offsetof(T, rec_seq);
      break;
    }
    case TLS_CIPHER_AES_GCM_256: {
      using T = tls12_crypto_info_aes_gcm_256;
      aead = EVP_aes_256_gcm();
      size = sizeof(T), ivAt = offsetof(T, iv), ivBytes = 8, keyAt = offsetof(T, key);
      saltAt = offsetof(T, salt), saltBytes = 4, seqAt = offsetof(T, rec_seq);
      break;
    }
    case TLS_CIPHER_CHACHA20_POLY1305: {
      using T = tls12_crypto_info_chacha20_poly1305;
      aead = EVP_chacha20_poly1305();
      size = sizeof(T), ivAt = offsetof(T, iv), ivBytes = 12, keyAt = offsetof(T, key);
      saltAt = offsetof(T, salt), saltBytes = 0, seqAt = offsetof(T, rec_seq);
      break;
    }
    default: return false;
  }
  if (keyBlock.size() < size || !aead) return false;

  EVP_CIPHER_CTX* context = EVP_CIPHER_CTX_new();
  if (!context || EVP_EncryptInit_ex(context, aead, nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_EncryptInit_ex(context, nullptr, nullptr, keyBlock.data() + keyAt, nullptr) != 1) {
    EVP_CIPHER_CTX_free(context);
    ERR_clear_error();
    return false;
  }
  if (cipher_) EVP_CIPHER_CTX_free(cipher_);
  cipher_ = context;
  block_.bytes.fill(0);
  std::memcpy(block_.bytes.data(), keyBlock.data(), size);
  block_.length = size;
  version_ = info.version;
  explicitNonce_ = info.version == TLS_1_2_VERSION && info.cipher_type != TLS_CIPHER_CHACHA20_POLY1305;
  // The fixed part of every nonce: salt and iv (TLS 1.3 and ChaCha20 XOR
  // the sequence number into it; TLS 1.2 GCM puts the counter in its tail).
  std::memcpy(baseNonce_.data(), block_.bytes.data() + saltAt, saltBytes);
  std::memcpy(baseNonce_.data() + saltBytes, block_.bytes.data() + ivAt, ivBytes);
  sequence_ = block_.bytes.data() + seqAt;
  nonceCounter_ = explicitNonce_ ? block_.bytes.data() + ivAt : nullptr;
  return true;
}

bool RecordSealer::startTls13(uint16_t suite, std::span<const uint8_t> secret) noexcept {
  Tls13Suite use;
  uint8_t key[32], iv[12];
  if (!tls13Suite(suite, &use) || !trafficKeys(use, secret, key, iv)) return false;
  // The layouts of <linux/tls.h>: GCM splits the 12-byte IV into a 4-byte
  // salt and 8 bytes of iv; ChaCha20 keeps all 12 in iv.
  KernelKeyBlock block;
  auto lay = [&](auto crypto, uint16_t type, size_t saltBytes) {
    crypto.info.version = TLS_1_3_VERSION;
    crypto.info.cipher_type = type;
    std::memcpy(crypto.key, key, sizeof crypto.key);
    std::memcpy(crypto.salt, iv, saltBytes);
    std::memcpy(crypto.iv, iv + saltBytes, sizeof crypto.iv);
    std::memcpy(block.bytes.data(), &crypto, sizeof crypto);
    block.length = sizeof crypto;
  };
  switch (suite) {
    case 0x1301: lay(tls12_crypto_info_aes_gcm_128{}, TLS_CIPHER_AES_GCM_128, 4); break;
    case 0x1302: lay(tls12_crypto_info_aes_gcm_256{}, TLS_CIPHER_AES_GCM_256, 4); break;
    default: lay(tls12_crypto_info_chacha20_poly1305{}, TLS_CIPHER_CHACHA20_POLY1305, 0); break;
  }
  OPENSSL_cleanse(key, sizeof key);
  bool ok = start({block.bytes.data(), block.length});
  OPENSSL_cleanse(block.bytes.data(), block.bytes.size());
  return ok;
}

size_t RecordSealer::seal(uint8_t type, std::span<const uint8_t> plaintext, std::span<uint8_t> out) noexcept {
  if (!cipher_ || plaintext.size() > kMaxPlaintext || out.size() < plaintext.size() + kOverheadBytes) return 0;
  const bool tls13 = version_ == TLS_1_3_VERSION;
  std::array<uint8_t, 12> nonce = baseNonce_;
  if (explicitNonce_) {
    std::memcpy(nonce.data() + 4, nonceCounter_, 8);
  } else {
    for (size_t i = 0; i < 8; ++i) nonce[4 + i] ^= sequence_[i];
  }
  size_t explicitBytes = explicitNonce_ ? 8 : 0;
  size_t sealedBytes = plaintext.size() + (tls13 ? 1 : 0);  // TLS 1.3: the inner content type
  size_t bodyBytes = explicitBytes + sealedBytes + kTagBytes;

  uint8_t* header = out.data();
  header[0] = tls13 ? 23 : type;  // TLS 1.3 hides the type inside
  header[1] = 3;
  header[2] = 3;
  put16(header + 3, bodyBytes);
  if (explicitNonce_) std::memcpy(header + 5, nonceCounter_, 8);

  // TLS 1.3 authenticates the record header; TLS 1.2 the sequence number,
  // the type, the version and the plaintext length.
  uint8_t aad[13];
  size_t aadBytes = 5;
  if (tls13) {
    std::memcpy(aad, header, 5);
  } else {
    std::memcpy(aad, sequence_, 8);
    aad[8] = type, aad[9] = 3, aad[10] = 3;
    put16(aad + 11, plaintext.size());
    aadBytes = 13;
  }
  uint8_t* body = header + 5 + explicitBytes;
  int n = 0;
  bool ok = EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
            EVP_EncryptUpdate(cipher_, nullptr, &n, aad, static_cast<int>(aadBytes)) == 1 &&
            EVP_EncryptUpdate(cipher_, body, &n, plaintext.data(), static_cast<int>(plaintext.size())) == 1;
  size_t done = ok ? static_cast<size_t>(n) : 0;
  if (ok && tls13) ok = EVP_EncryptUpdate(cipher_, body + done, &n, &type, 1) == 1, done += ok ? n : 0;
  if (ok) ok = EVP_EncryptFinal_ex(cipher_, body + done, &n) == 1, done += ok ? n : 0;
  if (ok) ok = done == sealedBytes && EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_AEAD_GET_TAG, kTagBytes, body + done) == 1;
  if (!ok) {
    ERR_clear_error();
    return 0;
  }
  increment(sequence_, 8);
  if (nonceCounter_) increment(nonceCounter_, 8);
  return 5 + bodyBytes;
}

}  // namespace lb::tls
