#pragma once
// Keys for stateless session tickets, one set per process, shared by every
// worker's SSL_CTX (a returning client may reach another worker's socket)
// and kept across reloads.
//
// Rotation: the newest key encrypts new tickets; a key is replaced as the
// encrypting one after kRotateSeconds and still decrypts until
// kRetireSeconds after it was made, so a ticket stays usable for at least
// kRetireSeconds - kRotateSeconds (longer than the session timeout).
// A ticket opened with an older key is answered with a fresh one. Keys are
// 80 random bytes (name, AES-256-CBC key, HMAC-SHA256 key) from RAND_bytes;
// they never leave the process.
//
// Thread-safe: the lock is held only to pick a key (and, every 12 hours, to
// make one); the crypto runs outside it.

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "lb/tls/context.h"

namespace lb::tls {

class TicketKeys {
 public:
  // Seconds on a clock that never goes back (CLOCK_MONOTONIC by default).
  using Clock = std::function<int64_t()>;
  static constexpr int64_t kRotateSeconds = 12 * 3600;
  static constexpr int64_t kRetireSeconds = 2 * kRotateSeconds;
  static constexpr size_t kNameBytes = 16;

  explicit TicketKeys(Clock clock);
  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // The SSL_CTX_set_tlsext_ticket_key_evp_cb contract: enc = 1 makes a
  // ticket (fills name and iv, sets up both contexts; 1), enc = 0 opens one
  // (0: unknown or retired key, so a full handshake; 1: opened; 2: opened
  // with an older key, send a new ticket; -1: error).
  int onTicket(unsigned char name[kNameBytes], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
               int encrypt);

  // For tests: the keys held (after dropping retired ones at the clock's now).
  size_t keyCount();

 private:
  struct Key {
    std::array<unsigned char, kNameBytes> name{};
    std::array<unsigned char, 32> aes{};
    std::array<unsigned char, 32> hmac{};
    int64_t madeAt = 0;
  };
  // Under mutex_: a new key when the newest is due, retired keys dropped.
  void refreshLocked(int64_t now);

  Clock clock_;
  EVP_CIPHER* cipher_ = nullptr;  // fetched once, not per ticket
  std::mutex mutex_;
  std::vector<Key> keys_;  // newest first
};

std::shared_ptr<TicketKeys> makeTicketKeys(TicketKeys::Clock clock);

}  // namespace lb::tls
