#pragma once
// One JSON line per ended connection. Each worker has its own AccessLog that
// buffers lines during a completion batch and writes them with one write(2)
// at the end of it; the output itself is shared and guarded by a mutex.

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
};

std::string_view toString(EndReason reason);

// Where access-log lines go: stdout, a file opened for append, or nowhere.
class AccessLogSink {
 public:
  // `target` is "stdout", "off" or a path. Returns nullptr and sets *error
  // when the path cannot be opened.
  static std::shared_ptr<AccessLogSink> open(const std::string& target, std::string* error);
  ~AccessLogSink();

  bool enabled() const { return fd_ >= 0; }
  void write(std::string_view lines);

 private:
  AccessLogSink(int fd, bool owned) : fd_(fd), owned_(owned) {}
  int fd_;
  bool owned_;
  std::mutex mutex_;
};

struct AccessRecord {
  std::string_view listener;
  std::string_view client;         // "ip:port"
  std::string_view member;         // empty: none was connected
  std::string_view memberAddress;  // empty: none was connected
  uint64_t bytesIn = 0;            // client -> member
  uint64_t bytesOut = 0;           // member -> client
  double connectMs = -1;           // < 0: never connected
  double durationMs = 0;
  uint32_t attempts = 0;
  EndReason end = EndReason::ClientClosed;
};

class AccessLog {
 public:
  explicit AccessLog(std::shared_ptr<AccessLogSink> sink) : sink_(std::move(sink)) {}
  bool enabled() const { return sink_ && sink_->enabled(); }
  void record(const AccessRecord& record);
  void flush();

 private:
  std::shared_ptr<AccessLogSink> sink_;
  std::string pending_;
};

// Appends `text` to `out` as the inside of a JSON string.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace lb
