#pragma once
// The admin endpoint, served from the control thread's ring: GET /, /status,
// /metrics; POST /pools/{pool}/members/{member}/{drain,undrain,weight}.
// One request per connection; a connection that does not complete its
// request within the deadline is closed. Nothing here blocks a worker: it
// reads counters and flips member atomics.
//
// Invariant: a connection slot is reused only once none of its operations
// is in flight; completions carry the slot's generation.

#include <liburing.h>

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lb/admin_http.h"
#include "lb/metrics.h"
#include "lb/ring/submitter.h"

namespace lb {

class Admin {
 public:
  // SQEs come from `submitter` (the control thread's ring); completions
  // tagged Owner::Admin are handed back through onCompletion().
  Admin(ring::Submitter* submitter, int listenFd, std::string token, ReportSources sources);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  void start();
  // POST /reload calls this; it returns false and fills the errors when the
  // new config was refused.
  void setReload(std::function<bool(std::string*)> reload) { reload_ = std::move(reload); }
  // After a reload: report on, and act on, the new generation.
  void setSources(const ReportSources& sources, std::string token) {
    sources_ = sources;
    token_ = std::move(token);
  }
  void onCompletion(uint64_t userData, int result, uint32_t flags);
  // Closes connections past their deadline.
  void onTick(std::chrono::steady_clock::time_point now);

  // Answers a parsed request (public for tests of the routes).
  AdminResponse route(const AdminRequest& request);

 private:
  enum class Step : uint8_t { Accept = 1, Recv, Send };  // user_data's op
  struct Connection {
    int fd = -1;
    uint32_t generation = 0;
    uint32_t inflight = 0;  // at most one operation at a time
    uint64_t pending = 0;   // that operation's user_data, for cancelling it
    bool open = false;
    bool lingering = false;  // response sent, discarding input until the client closes
    std::chrono::steady_clock::time_point deadline{};
    std::string received;
    std::string response;
    size_t sent = 0;
    std::array<char, 2048> buffer{};
  };

  uint64_t userData(Step step, size_t slot) const;
  void armAccept();
  void onAccept(int fd, uint32_t flags);
  void submitRecv(size_t slot);
  void submitSend(size_t slot);
  void onRecv(size_t slot, int result);
  void linger(size_t slot);
  void onLinger(size_t slot, int result);
  void respond(size_t slot, const AdminResponse& response);
  void close(size_t slot);
  io_uring_sqe* sqe();

  AdminResponse memberAction(const AdminRequest& request, std::string_view path);
  bool authorized(const AdminRequest& request) const;
  std::optional<AdminResponse> refuseChange(const AdminRequest& request) const;

  ring::Submitter* submitter_;
  int listenFd_;
  std::string token_;
  ReportSources sources_;
  std::vector<Connection> connections_;
  std::function<bool(std::string*)> reload_;
  bool acceptPaused_ = false;  // the accept stopped on an error; re-armed at the next tick
};

}  // namespace lb
