#include "lb/tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace lb::tls {

TicketKeys::TicketKeys(Clock clock) : clock_(std::move(clock)) {
  cipher_ = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  if (!cipher_) throw std::runtime_error("OpenSSL has no AES-256-CBC");
  std::lock_guard lock(mutex_);
  refreshLocked(clock_());
}

TicketKeys::~TicketKeys() {
  EVP_CIPHER_free(cipher_);
  for (Key& key : keys_) OPENSSL_cleanse(&key, sizeof key);
}

void TicketKeys::refreshLocked(int64_t now) {
  std::erase_if(keys_, [&](Key& key) {
    if (now - key.madeAt < kRetireSeconds) return false;
    OPENSSL_cleanse(&key, sizeof key);
    return true;
  });
  if (!keys_.empty() && now - keys_.front().madeAt < kRotateSeconds) return;
  Key key;
  key.madeAt = now;
  if (RAND_bytes(key.name.data(), kNameBytes) != 1 || RAND_bytes(key.aes.data(), key.aes.size()) != 1 ||
      RAND_bytes(key.hmac.data(), key.hmac.size()) != 1)
    return;  // no new key: the newest one keeps encrypting (or, with none, no tickets)
  keys_.insert(keys_.begin(), key);
}

size_t TicketKeys::keyCount() {
  std::lock_guard lock(mutex_);
  refreshLocked(clock_());
  return keys_.size();
}

int TicketKeys::onTicket(unsigned char name[kNameBytes], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
  Key key;
  bool newest = false;
  {
    std::lock_guard lock(mutex_);
    refreshLocked(clock_());
    if (keys_.empty()) return encrypt ? -1 : 0;
    auto found = keys_.begin();
    if (!encrypt) {
      found = std::find_if(keys_.begin(), keys_.end(),
                           [&](const Key& k) { return std::memcmp(k.name.data(), name, kNameBytes) == 0; });
      if (found == keys_.end()) return 0;
    }
    key = *found;
    newest = found == keys_.begin();
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  int result = -1;
  if (encrypt) {
    std::memcpy(name, key.name.data(), kNameBytes);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher_)) == 1 &&
        EVP_EncryptInit_ex(cipher, cipher_, nullptr, key.aes.data(), iv) == 1 &&
        EVP_MAC_CTX_set_params(mac, params) == 1)
      result = 1;
  } else if (EVP_MAC_CTX_set_params(mac, params) == 1 &&
             EVP_DecryptInit_ex(cipher, cipher_, nullptr, key.aes.data(), iv) == 1) {
    result = newest ? 1 : 2;
  }
  OPENSSL_cleanse(&key, sizeof key);
  return result;
}

std::shared_ptr<TicketKeys> makeTicketKeys(TicketKeys::Clock clock) {
  return std::make_shared<TicketKeys>(std::move(clock));
}

std::shared_ptr<TicketKeys> makeTicketKeys() {
  return makeTicketKeys([] {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64_t>(now.tv_sec);
  });
}

}  // namespace lb::tls
