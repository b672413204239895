#pragma once
// One JSON line per ended connection.
//
// Each worker has its own AccessLog: lines go into a bounded buffer
// (kAccessLogBufferBytes) and are written at the end of every completion
// batch (the worker's tick makes that at least every 250 ms) with writes that
// never wait. While the output takes nothing (a reader that does not read, a
// full disk), lines stay in the buffer; once it is full a new line is
// dropped whole and counted (droppedLines(), the metric
// ringlb_access_log_dropped_lines_total) and a warning is logged at most every
// 10 s. A worker never waits for the output and takes no lock to write.
//
// The AccessLogSink is what the workers share: the output (stdout, a file or
// none) and, for a file, its reopening on SIGUSR1 (logrotate). A reopen
// publishes a new output and bumps the sink's generation; each worker
// switches at its next flush, and the old descriptor is closed when the last
// worker has let go of it.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace lb {

enum class EndReason : uint8_t {
  ClientClosed,
  MemberClosed,
  ConnectRefused,
  ConnectTimeout,
  NoMember,
  IdleTimeout,
  Limit,
  Shutdown,
  Reset,
  MemberDown,     // on_down = "close" ended it when health checks took its member down
  MemberRemoved,  // removed_member_timeout ended it after a reload removed its member
  LocalError,     // this host ran out of something (descriptors, memory): no member was to blame
  TlsHandshakeFailed,   // the client's TLS handshake failed (no member was connected)
  TlsHandshakeTimeout,  // the client's TLS handshake passed handshake_timeout
  PrereadTimeout,       // routes: no ClientHello within preread_timeout and no default pool
  ClientHelloTooLarge,  // routes: the peeked ClientHello passed 16 KiB
  ProxyHeaderInvalid,   // accept_proxy: malformed, oversized, unknown command or family, or not sent
  ProxyHeaderTimeout,   // accept_proxy: no complete header within proxy_timeout
  Denied,               // allow/deny refused the client address
  SourceLimit,          // max_connections_per_source reached for the client's source
  SourceRate,           // connection_rate_per_source exceeded for the client's source
};

std::string_view toString(EndReason reason);

// Per worker: what a worker may hold unwritten before it drops new lines.
inline constexpr size_t kAccessLogBufferBytes = 256 * 1024;

class AccessLogOutput;  // one open descriptor and how to write to it without waiting (access_log.cc)

// Where access-log lines go: stdout, a file opened for append, or nowhere.
class AccessLogSink {
 public:
  // `target` is "stdout", "off" or a path. A path is opened with O_NOFOLLOW
  // (a symlink is refused) and created with mode 0640 (less if the umask
  // says so). Returns nullptr and sets *error when it cannot be used.
  static std::shared_ptr<AccessLogSink> open(const std::string& target, std::string* error);
  // Writes to `fd`, which stays open afterwards (stdout, or a test's pipe).
  static std::shared_ptr<AccessLogSink> openDescriptor(int fd, std::string* error);
  ~AccessLogSink();

  bool enabled() const { return enabled_; }
  // SIGUSR1, on the control thread: opens the path again (the old file may
  // have been renamed) and logs what it did. With "stdout" or "off" there is
  // nothing to reopen (an info line). On failure the old file stays in use.
  // True when a new file is in use.
  bool reopen();

  // For the workers. generation() changes with every reopen; output() takes
  // a short lock and is called only when it has changed.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<AccessLogOutput> output(uint64_t* generation) const;
  // Adds a worker's dropped lines to the next warning; logs it when 10 s
  // have passed since the last one.
  void reportDropped(uint64_t lines, int lastError, uint64_t nowNs);

 private:
  AccessLogSink(std::string target, bool isFile, std::shared_ptr<AccessLogOutput> output);

  const std::string target_;  // "stdout", "off", a path, or "descriptor N"
  const bool isFile_;         // target_ is a path: reopen() opens it again
  const bool enabled_;
  mutable std::mutex mutex_;                 // guards output_ (held to swap or copy it, never to write)
  std::shared_ptr<AccessLogOutput> output_;  // null when off
  std::atomic<uint64_t> generation_{0};      // bumped under mutex_ after output_ changes
  std::atomic<uint64_t> droppedSinceWarning_{0};
  std::atomic<uint64_t> nextWarningNs_{0};
};

struct AccessRecord {
  std::string_view listener;
  std::string_view client;         // "ip:port": the PROXY header's source when there is one
  std::string_view proxyClient;    // accept_proxy: the header's source (empty: left out)
  std::string_view proxyPeer;      // accept_proxy: the connection's own peer, the front balancer (empty: left out)
  std::string_view member;         // empty: none was connected
  std::string_view memberAddress;  // empty: none was connected
  uint64_t bytesIn = 0;            // client -> member
  uint64_t bytesOut = 0;           // member -> client
  double connectMs = -1;           // < 0: never connected
  double durationMs = 0;
  uint32_t attempts = 0;
  EndReason end = EndReason::ClientClosed;
  // TLS, when it applies (empty / false: the field is left out). `sni` is
  // the server name the client sent (terminated or peeked); `route` says
  // how the pool was chosen on a listener with routes: "sni" (a route
  // matched), "default_no_sni", "default_no_match", "default_not_tls",
  // "default_timeout".
  std::string_view sni;
  std::string_view route;
  std::string_view pool;         // the pool chosen, on a listener with routes
  std::string_view tlsVersion;   // "TLSv1.3"
  std::string_view tlsCipher;
  std::string_view alpn;
  bool tls = false;              // terminated: tls_resumed is written
  bool tlsResumed = false;
  std::string_view clientCert;   // subject of a verified client certificate
};

// One worker's access log. Used by that worker's thread only, except
// droppedLines(), which any thread may read.
class AccessLog {
 public:
  explicit AccessLog(std::shared_ptr<AccessLogSink> sink, size_t bufferBytes = kAccessLogBufferBytes);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return sink_ && sink_->enabled(); }
  void record(const AccessRecord& record);
  // Writes what the output takes now, without waiting; switches to a
  // reopened output first (between lines).
  void flush();
  // At the end of the worker: flush, waiting up to `limit` for the output.
  // What is still unwritten then is counted as dropped.
  void flushBeforeExit(std::chrono::milliseconds limit = std::chrono::milliseconds(500));
  uint64_t droppedLines() const { return droppedLines_.load(std::memory_order_relaxed); }
  size_t bufferedBytes() const { return buffer_.size(); }

 private:
  void switchOutputIfReopened();
  size_t batchEnd(size_t from, size_t limit) const;
  void countDropped(uint64_t lines);

  std::shared_ptr<AccessLogSink> sink_;
  const size_t bufferBytes_;
  std::shared_ptr<AccessLogOutput> output_;
  uint64_t outputGeneration_ = 0;
  // Unwritten whole lines, except while holdsToken_: then it starts with
  // the rest of a line whose beginning is already in the output.
  std::string buffer_;
  bool holdsToken_ = false;
  size_t sizeAfterFlush_ = 0;
  int lastError_ = 0;  // of the last write that took nothing
  uint64_t droppedUnreported_ = 0;
  std::atomic<uint64_t> droppedLines_{0};
};

// Appends `text` to `out` as the inside of a JSON string.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace lb
