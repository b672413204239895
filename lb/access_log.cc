#include "lb/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "lb/log.h"

namespace lb {

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
  }
  return "unknown";
}

std::shared_ptr<AccessLogSink> AccessLogSink::open(const std::string& target, std::string* error) {
  if (target == "off") return std::shared_ptr<AccessLogSink>(new AccessLogSink(-1, false));
  if (target == "stdout")
    return std::shared_ptr<AccessLogSink>(new AccessLogSink(STDOUT_FILENO, false));
  int fd = ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = fmt::format("cannot open access log {}: {}", target, std::strerror(errno));
    return nullptr;
  }
  return std::shared_ptr<AccessLogSink>(new AccessLogSink(fd, true));
}

AccessLogSink::~AccessLogSink() {
  if (owned_) ::close(fd_);
}

void AccessLogSink::write(std::string_view lines) {
  std::lock_guard lock(mutex_);
  while (!lines.empty()) {
    ssize_t n = ::write(fd_, lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk or closed stdout must not stop the data plane
    lines.remove_prefix(static_cast<size_t>(n));
  }
}

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

void AccessLog::record(const AccessRecord& r) {
  if (!enabled()) return;
  fmt::format_to(std::back_inserter(pending_), "{{\"time\":\"{}\"", log::timestampNow());
  appendStringField(pending_, "listener", r.listener);
  appendStringField(pending_, "client", r.client);
  appendStringField(pending_, "member", r.member);
  appendStringField(pending_, "member_address", r.memberAddress);
  fmt::format_to(std::back_inserter(pending_), ",\"bytes_in\":{},\"bytes_out\":{}", r.bytesIn,
                 r.bytesOut);
  if (r.connectMs < 0)
    pending_ += ",\"connect_ms\":null";
  else
    fmt::format_to(std::back_inserter(pending_), ",\"connect_ms\":{:.3f}", r.connectMs);
  fmt::format_to(std::back_inserter(pending_), ",\"duration_ms\":{:.3f},\"attempts\":{},\"end\":\"{}\"}}\n",
                 r.durationMs, r.attempts, toString(r.end));
  if (pending_.size() >= 64 * 1024) flush();
}

void AccessLog::flush() {
  if (pending_.empty()) return;
  sink_->write(pending_);
  pending_.clear();
}

}  // namespace lb
