#include "lb/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fmt/format.h>

#include "config/file_error.h"
#include "lb/log.h"
#include "lb/nonblocking_output.h"

namespace lb {
namespace {

constexpr size_t kAnyBatch = SIZE_MAX;
constexpr size_t kEarlyFlushBytes = 64 * 1024;  // flush within a completion batch past this
constexpr uint64_t kWarningIntervalNs = 10'000'000'000;

uint64_t monotonicNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(now.tv_nsec);
}

std::string errorText(int error) { return std::error_code(error, std::generic_category()).message(); }

}  // namespace

// The access log's output: where lines go (lb/nonblocking_output.h says how
// each kind of descriptor is written without waiting) and its writer token.
//
// Lines from different writers never mix mid-line:
// - Within ringlb, a worker writes only while it holds the output's writer
//   token, an atomic flag taken with test_and_set and never waited for: a
//   worker that finds it taken keeps its lines for its next flush. A write
//   that stopped mid-line (a partial write) keeps the token until the rest
//   of that line is written, so another worker's write can never come
//   between the two parts. The token is held for the length of a
//   non-blocking write, or across flushes only while a line is unfinished.
// - Against writers outside the access log on the same pipe or socket
//   (stderr with 2>&1, another process), each write to a pipe, FIFO or
//   socket carries whole lines of at most PIPE_BUF bytes together, which a
//   pipe takes all at once or not at all, and a Unix stream socket queues
//   as one buffer: a partial write does not happen there. Only a single
//   line longer than PIPE_BUF (names of kilobytes) could be split by them.
// - A regular file is appended to by whole writes; the kernel does not mix
//   two writes. A partial write (a full disk) is finished under the token.
class AccessLogOutput {
 public:
  explicit AccessLogOutput(std::unique_ptr<NonBlockingOutput> output) : output_(std::move(output)) {}
  AccessLogOutput(const AccessLogOutput&) = delete;
  AccessLogOutput& operator=(const AccessLogOutput&) = delete;

  int fd() const { return output_->fd(); }
  size_t batchLimit() const { return output_->atomicLimit(); }
  bool tryTake() { return !writing_.test_and_set(std::memory_order_acquire); }
  void release() { writing_.clear(std::memory_order_release); }

  // Bytes written, or -errno (-EAGAIN: the output takes nothing now).
  ssize_t write(const char* data, size_t size) const { return output_->write(data, size); }

 private:
  const std::unique_ptr<NonBlockingOutput> output_;
  std::atomic_flag writing_;  // the writer token: clear = free
};

namespace {

std::shared_ptr<AccessLogOutput> openFile(const std::string& path, std::string* error) {
  // O_NOFOLLOW: the file itself, never what a symlink points at (whoever can
  // write to the log directory must not choose where ringlb's writes go).
  // O_NONBLOCK: a FIFO without a reader fails at once instead of hanging the
  // opener, and writes to a FIFO or device never wait; a regular file
  // ignores it. The description is ours alone.
  int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
  int fd = ::open(path.c_str(), flags, 0640);
  if (fd < 0) {
    int e = errno;
    struct stat link{};
    if (e == ELOOP && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
      *error = fmt::format("access log {} is a symbolic link: give the path of the file itself", path);
    else
      *error = fmt::format("cannot open access log {}: {}", path, config::fileErrorText(e));
    return nullptr;
  }
  struct stat st{};
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  return std::make_shared<AccessLogOutput>(std::make_unique<NonBlockingOutput>(
      fd, true, NonBlockingOutput::Method::Write, regular ? kAnyBatch : PIPE_BUF));
}

std::shared_ptr<AccessLogOutput> useDescriptor(int fd, std::string* error) {
  auto output = NonBlockingOutput::forDescriptor(fd, error);
  if (!output) {
    *error = "access log: " + *error;
    return nullptr;
  }
  return std::make_shared<AccessLogOutput>(std::move(output));
}

}  // namespace

std::string_view toString(EndReason reason) {
  switch (reason) {
    case EndReason::ClientClosed: return "client_closed";
    case EndReason::MemberClosed: return "member_closed";
    case EndReason::ConnectRefused: return "connect_refused";
    case EndReason::ConnectTimeout: return "connect_timeout";
    case EndReason::NoMember: return "no_member";
    case EndReason::IdleTimeout: return "idle_timeout";
    case EndReason::Limit: return "limit";
    case EndReason::Shutdown: return "shutdown";
    case EndReason::Reset: return "reset";
    case EndReason::MemberDown: return "member_down";
    case EndReason::MemberRemoved: return "member_removed";
    case EndReason::LocalError: return "local_error";
    case EndReason::TlsHandshakeFailed: return "tls_handshake_failed";
    case EndReason::TlsHandshakeTimeout: return "tls_handshake_timeout";
    case EndReason::ClientHelloTooLarge: return "client_hello_too_large";
    case EndReason::ProxyHeaderInvalid: return "proxy_header_invalid";
    case EndReason::ProxyHeaderTimeout: return "proxy_header_timeout";
    case EndReason::Denied: return "denied";
    case EndReason::SourceLimit: return "source_limit";
    case EndReason::SourceRate: return "source_rate";
    case EndReason::PrereadTimeout: return "preread_timeout";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// The sink

AccessLogSink::AccessLogSink(std::string target, bool isFile, std::shared_ptr<AccessLogOutput> output)
    : target_(std::move(target)), isFile_(isFile), enabled_(output != nullptr), output_(std::move(output)) {}

AccessLogSink::~AccessLogSink() = default;

std::shared_ptr<AccessLogSink> AccessLogSink::open(const std::string& target, std::string* error) {
  if (target == "off") return std::shared_ptr<AccessLogSink>(new AccessLogSink(target, false, nullptr));
  std::shared_ptr<AccessLogOutput> output =
      target == "stdout" ? useDescriptor(STDOUT_FILENO, error) : openFile(target, error);
  if (!output) return nullptr;
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(target, target != "stdout", std::move(output)));
}

std::shared_ptr<AccessLogSink> AccessLogSink::openDescriptor(int fd, std::string* error) {
  auto output = useDescriptor(fd, error);
  if (!output) return nullptr;
  std::string target = fmt::format("descriptor {}", fd);
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(std::move(target), false, std::move(output)));
}

bool AccessLogSink::reopen() {
  if (!isFile_) {
    log::info("SIGUSR1: access_log is {}, not a file: nothing to reopen", target_);
    return false;
  }
  std::string error;
  auto fresh = openFile(target_, &error);
  if (!fresh) {
    log::error("SIGUSR1: {}; still writing to the file opened before", error);
    return false;
  }
  {
    std::lock_guard lock(mutex_);
    output_ = std::move(fresh);
    generation_.fetch_add(1, std::memory_order_release);
  }
  log::info("SIGUSR1: reopened access log {}", target_);
  return true;
}

std::shared_ptr<AccessLogOutput> AccessLogSink::output(uint64_t* generation) const {
  std::lock_guard lock(mutex_);
  *generation = generation_.load(std::memory_order_relaxed);
  return output_;
}

void AccessLogSink::reportDropped(uint64_t lines, int lastError, uint64_t nowNs) {
  droppedSinceWarning_.fetch_add(lines, std::memory_order_relaxed);
  uint64_t next = nextWarningNs_.load(std::memory_order_relaxed);
  if (nowNs < next ||
      !nextWarningNs_.compare_exchange_strong(next, nowNs + kWarningIntervalNs, std::memory_order_relaxed))
    return;
  uint64_t dropped = droppedSinceWarning_.exchange(0, std::memory_order_relaxed);
  log::warn("access log: {} lines dropped, the output does not take them ({}); "
            "ringlb_access_log_dropped_lines_total counts them, this warning repeats at most every 10s",
            dropped, lastError ? errorText(lastError) : "buffer full");
}

// ---------------------------------------------------------------------------
// One worker's log

void appendJsonEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        else
          out += c;
    }
  }
}

namespace {

void appendStringField(std::string& out, std::string_view key, std::string_view value) {
  fmt::format_to(std::back_inserter(out), ",\"{}\":", key);
  if (value.empty()) {
    out += "null";
    return;
  }
  out += '"';
  appendJsonEscaped(out, value);
  out += '"';
}

}  // namespace

AccessLog::AccessLog(std::shared_ptr<AccessLogSink> sink, size_t bufferBytes)
    : sink_(std::move(sink)), bufferBytes_(bufferBytes) {}

AccessLog::~AccessLog() {
  if (holdsToken_) output_->release();
}

void AccessLog::record(const AccessRecord& r) {
  if (!enabled()) return;
  size_t start = buffer_.size();
  fmt::format_to(std::back_inserter(buffer_), "{{\"time\":\"{}\"", log::timestampNow());
  appendStringField(buffer_, "listener", r.listener);
  appendStringField(buffer_, "client", r.client);
  if (!r.proxyClient.empty()) appendStringField(buffer_, "proxy_client", r.proxyClient);
  if (!r.proxyPeer.empty()) appendStringField(buffer_, "proxy_peer", r.proxyPeer);
  appendStringField(buffer_, "member", r.member);
  appendStringField(buffer_, "member_address", r.memberAddress);
  fmt::format_to(std::back_inserter(buffer_), ",\"bytes_in\":{},\"bytes_out\":{}", r.bytesIn,
                 r.bytesOut);
  if (r.connectMs < 0)
    buffer_ += ",\"connect_ms\":null";
  else
    fmt::format_to(std::back_inserter(buffer_), ",\"connect_ms\":{:.3f}", r.connectMs);
  if (!r.sni.empty()) appendStringField(buffer_, "sni", r.sni);
  if (!r.route.empty()) appendStringField(buffer_, "route", r.route);
  if (!r.pool.empty()) appendStringField(buffer_, "pool", r.pool);
  if (!r.tlsVersion.empty()) appendStringField(buffer_, "tls_version", r.tlsVersion);
  if (!r.tlsCipher.empty()) appendStringField(buffer_, "tls_cipher", r.tlsCipher);
  if (!r.alpn.empty()) appendStringField(buffer_, "alpn", r.alpn);
  if (r.tls) buffer_ += r.tlsResumed ? ",\"tls_resumed\":true" : ",\"tls_resumed\":false";
  if (!r.clientCert.empty()) appendStringField(buffer_, "client_cert", r.clientCert);
  fmt::format_to(std::back_inserter(buffer_), ",\"duration_ms\":{:.3f},\"attempts\":{},\"end\":\"{}\"}}\n",
                 r.durationMs, r.attempts, toString(r.end));
  if (buffer_.size() > bufferBytes_) {
    buffer_.resize(start);  // the whole line goes, never a part of it
    countDropped(1);
    return;
  }
  if (buffer_.size() >= sizeAfterFlush_ + kEarlyFlushBytes) flush();
}

void AccessLog::countDropped(uint64_t lines) {
  droppedLines_.fetch_add(lines, std::memory_order_relaxed);
  droppedUnreported_ += lines;
}

// Between lines only: the rest of an unfinished line goes where its
// beginning went.
void AccessLog::switchOutputIfReopened() {
  if (holdsToken_ || (output_ && sink_->generation() == outputGeneration_)) return;
  output_ = sink_->output(&outputGeneration_);  // the old output closes with its last holder
}

// The end of the next write starting at `from`: whole lines of at most
// `limit` bytes together, or one line that alone is longer. The buffer ends
// with a newline.
size_t AccessLog::batchEnd(size_t from, size_t limit) const {
  if (buffer_.size() - from <= limit) return buffer_.size();
  const char* base = buffer_.data();
  if (const void* last = memrchr(base + from, '\n', limit))
    return static_cast<size_t>(static_cast<const char*>(last) - base) + 1;
  const void* end = memchr(base + from + limit, '\n', buffer_.size() - from - limit);
  return static_cast<size_t>(static_cast<const char*>(end) - base) + 1;
}

void AccessLog::flush() {
  if (!enabled()) return;
  switchOutputIfReopened();
  if (!buffer_.empty() && (holdsToken_ || output_->tryTake())) {
    bool midLine = holdsToken_;
    holdsToken_ = true;
    size_t done = 0;
    while (done < buffer_.size()) {
      size_t end = batchEnd(done, output_->batchLimit());
      ssize_t n = output_->write(buffer_.data() + done, end - done);
      if (n == -EINTR) continue;
      if (n <= 0) {
        lastError_ = n < 0 ? static_cast<int>(-n) : 0;
        break;
      }
      done += static_cast<size_t>(n);
      midLine = buffer_[done - 1] != '\n';
    }
    buffer_.erase(0, done);
    if (!midLine) {
      output_->release();
      holdsToken_ = false;
    }
  }
  sizeAfterFlush_ = buffer_.size();
  if (droppedUnreported_ > 0) {
    sink_->reportDropped(droppedUnreported_, lastError_, monotonicNs());
    droppedUnreported_ = 0;
  }
}

void AccessLog::flushBeforeExit(std::chrono::milliseconds limit) {
  if (!enabled()) return;
  uint64_t deadline = monotonicNs() + static_cast<uint64_t>(limit.count()) * 1'000'000u;
  for (;;) {
    size_t before = buffer_.size();
    flush();
    if (buffer_.empty() || monotonicNs() >= deadline) break;
    if (buffer_.size() == before) {
      timespec pause{0, 5'000'000};
      nanosleep(&pause, nullptr);
    }
  }
  if (holdsToken_) {  // the output took nothing for `limit`: the line stays unfinished
    output_->release();
    holdsToken_ = false;
  }
  if (!buffer_.empty()) {
    uint64_t lines = static_cast<uint64_t>(std::count(buffer_.begin(), buffer_.end(), '\n'));
    buffer_.clear();
    countDropped(lines);
    log::warn("access log: {} lines left unwritten at exit, the output did not take them ({})", lines,
              lastError_ ? errorText(lastError_) : "busy");
    droppedUnreported_ = 0;
  }
}

}  // namespace lb
