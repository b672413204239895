#pragma once
// Counters that workers bump and the control thread reads when scraped.
// All relaxed atomics: each value is exact, but a scrape is not a snapshot
// across counters.

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace lb {

// A counter alone on its cache line, so workers bumping different members'
// counts do not slow each other down.
struct alignas(64) SharedCounter {
  std::atomic<int64_t> value{0};
};

inline void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}

// Cumulative counts of durations, in the Prometheus histogram sense.
class DurationHistogram {
 public:
  static constexpr std::array<double, 12> kBoundsSeconds = {
      0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600};

  void record(double seconds) {
    size_t bucket = 0;
    while (bucket < kBoundsSeconds.size() && seconds > kBoundsSeconds[bucket]) ++bucket;
    bump(buckets_[bucket]);
    bump(count_);
    bump(sumMicros_, static_cast<uint64_t>(seconds * 1e6));
  }
  // Observations at or under kBoundsSeconds[i] (i == size(): all of them).
  uint64_t cumulative(size_t i) const {
    uint64_t total = 0;
    for (size_t b = 0; b <= i && b < buckets_.size(); ++b)
      total += buckets_[b].load(std::memory_order_relaxed);
    return total;
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sumSeconds() const { return static_cast<double>(sumMicros_.load(std::memory_order_relaxed)) / 1e6; }

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sumMicros_{0};
};

// Bytes a session moved are added to its listener's and member's counters
// while it is open: each flow keeps what it has not yet added and adds it
// once that reaches kLiveBytesFlush, and the rest when the session ends.
// So a counter lags the truth by less than kLiveBytesFlush per direction of
// each open session, and is exact for every ended one; workers bump the
// shared atomics once per 64 KiB, not once per send.
inline constexpr uint64_t kLiveBytesFlush = 64 * 1024;

struct MemberCounters {
  std::atomic<uint64_t> connections{0};     // sessions that reached the member
  std::atomic<uint64_t> bytesIn{0};         // client -> member (see kLiveBytesFlush)
  std::atomic<uint64_t> bytesOut{0};        // member -> client
  std::atomic<uint64_t> connectRefused{0};
  std::atomic<uint64_t> connectTimeout{0};
  std::atomic<uint64_t> tlsFailed{0};  // [pool.tls]: the handshake with the member failed (counted as refused too)
};

struct PoolCounters {
  std::atomic<uint64_t> retries{0};   // connects started after a failed one
  std::atomic<uint64_t> noMember{0};  // clients closed because no member was available
  DurationHistogram sessionDuration;
};

// Why a client's TLS handshake ended, for ringlb_tls_handshakes_total.
enum class HandshakeResult : uint8_t {
  Ok,
  NoSharedCipher,  // no common version, cipher, group or ALPN
  UnknownCa,       // the client certificate's issuer is not client_ca
  BadCertificate,  // a client certificate missing (required), expired or invalid
  Protocol,        // not TLS, malformed, truncated, anything else
  Timeout,         // handshake_timeout passed
  Count,
};

constexpr std::string_view toString(HandshakeResult result) {
  constexpr std::string_view names[] = {"ok", "no_shared_cipher", "unknown_ca", "bad_certificate",
                                        "protocol", "timeout"};
  return names[static_cast<size_t>(result)];
}

// TLS on a listener ([listener.tls]) and routing by SNI ([[listener.route]]).
struct TlsListenerCounters {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(HandshakeResult::Count)> handshakes{};
  std::atomic<uint64_t> resumed{0};  // ok handshakes that resumed a session
  DurationHistogram handshakeDuration;  // accept to handshake done (ok only)
  std::atomic<uint64_t> routedBySni{0};
  std::atomic<uint64_t> routedDefault{0};  // no SNI, no match, not TLS, preread timeout
  std::atomic<uint64_t> kernelTx{0};        // sessions whose transmit keys went to the kernel
  std::atomic<uint64_t> kernelTxFailed{0};  // the kernel refused them: the leg kept sealing
};

// accept_proxy, allow/deny and per-source limits: clients closed before
// any member was picked, by reason.
struct EdgeListenerCounters {
  std::atomic<uint64_t> proxyHeaderInvalid{0};
  std::atomic<uint64_t> proxyHeaderTimeout{0};
  std::atomic<uint64_t> proxyNotAllowed{0};  // accept_proxy on, sender outside proxy_from
  std::atomic<uint64_t> denied{0};
  std::atomic<uint64_t> sourceLimit{0};
  std::atomic<uint64_t> sourceRate{0};
  std::atomic<uint64_t> sourceTableFull{0};  // a new source found the table full of active ones
};

struct ListenerCounters {
  TlsListenerCounters tls;
  EdgeListenerCounters edge;
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejectedByLimit{0};
  std::atomic<uint64_t> rejectedByLocalError{0};  // no slot, or no socket for the member
  std::atomic<uint64_t> bytesIn{0};   // client -> member (see kLiveBytesFlush)
  std::atomic<uint64_t> bytesOut{0};  // member -> client
};

// Something this host ran out of (descriptors, memory, socket buffers, local
// ports), by where it was needed. Never counted against a member: a member
// is blamed only for what it did (refused, timed out).
enum class LocalError : uint8_t {
  Accept,   // accept failed: the client waits in the backlog, retried after a pause
  Socket,   // no socket for the member connection: the client is closed (local_error)
  Connect,  // a connect failed for a local reason (no port, no memory): next member or local_error
  Pipe,     // no pipe for a bulk transfer: the flow copies through ring buffers instead
  Slot,     // no session slot: the client is closed (local_error)
  Io,       // a send, receive or splice lacked memory: retried after a pause
  Count,
};

constexpr std::string_view toString(LocalError kind) {
  constexpr std::string_view names[] = {"accept", "socket", "connect", "pipe", "slot", "io"};
  return names[static_cast<size_t>(kind)];
}

struct LocalErrorCounters {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(LocalError::Count)> counts{};

  void add(LocalError kind) { bump(counts[static_cast<size_t>(kind)]); }
  uint64_t value(LocalError kind) const {
    return counts[static_cast<size_t>(kind)].load(std::memory_order_relaxed);
  }
};

}  // namespace lb
