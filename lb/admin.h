#pragma once
// The admin endpoint, served from the control thread's ring: GET /, /status,
// /metrics, /events; POST /reload and /pools/{pool}/members/{member}/{drain,undrain,weight}
// (pool and member percent-decoded). One request per connection.
//
// Slow or hostile clients cannot starve it: of kAdminMaxConnections slots one
// source address (IPv6: its /64) holds at most kAdminMaxPerSource; past that a
// new connection is closed at once (counted and logged). When every slot is
// taken, a newcomer within its share evicts a connection whose request head is
// not in yet (see evict()); only when none is left is it closed at once. A request head must arrive within kAdminHeadDeadline of the accept,
// the whole request within kAdminRequestDeadline. Requests a browser could be
// made to send (an Origin header, a Host that is not this endpoint's) are
// refused with 403. Nothing here blocks a worker: it reads counters and
// flips member atomics.
//
// Invariant: a connection slot is reused only once none of its operations
// is in flight; completions carry the slot's generation. There are twice
// kAdminMaxConnections slots, at most kAdminMaxConnections open: the others
// hold closed connections until their cancelled operation completes, so an
// evicted connection's place is free at once.

#include <liburing.h>

#include <array>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "lb/admin_http.h"
#include "lb/log_throttle.h"
#include "lb/metrics.h"
#include "lb/ring/submitter.h"

namespace lb {

inline constexpr size_t kAdminMaxConnections = 64;
inline constexpr size_t kAdminMaxPerSource = 8;
inline constexpr auto kAdminHeadDeadline = std::chrono::seconds(2);
inline constexpr auto kAdminRequestDeadline = std::chrono::seconds(5);

// Why a connection was closed before it was answered, or a request refused
// for its rate: counted for /metrics.
enum class AdminRefusal : uint8_t { Full, SourceShare, ReloadRate, Count };
enum class AdminDrop : uint8_t { HeadTimeout, Deadline, Evicted, Count };

class Admin {
 public:
  using Clock = std::chrono::steady_clock;

  // SQEs come from `submitter` (the control thread's ring); completions
  // tagged Owner::Admin are handed back through onCompletion(). `settings`:
  // the [admin] table (token already read from token_file).
  Admin(ring::Submitter* submitter, int listenFd, const config::Admin& settings, ReportSources sources);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  void start();
  // An upgrade: the new process accepts on this socket from now on. The
  // accept is cancelled (a connection it still hands over is answered) and
  // the socket closed once its last completion has come; connections
  // already open are answered.
  void stopAccepting();
  // POST /reload calls this; it returns false and fills the errors when the
  // new config was refused. The second form is also told the client's
  // address (AdminRequest::peer), for the event log.
  void setReload(std::function<bool(std::string*)> reload) {
    reload_ = [reload = std::move(reload)](std::string* errors, std::string_view) { return reload(errors); };
  }
  void setReload(std::function<bool(std::string*, std::string_view)> reload) { reload_ = std::move(reload); }
  // Drains and undrains are noted here (History::noteState), so the time a
  // member has been draining is exact. Null: not noted.
  void setHistory(History* history) { history_ = history; }
  // Tests: the wall clock events are stamped with (unix ms).
  void setWallClock(std::function<int64_t()> unixMs) { unixMs_ = std::move(unixMs); }
  // After a reload: report on, and act on, the new generation, with its
  // token and limits (listen itself changes at a restart only).
  void setSources(const ReportSources& sources, const config::Admin& settings);
  // Tests: the time reload_min_interval is measured with.
  void setClock(std::function<Clock::time_point()> now) { now_ = std::move(now); }
  void onCompletion(uint64_t userData, int result, uint32_t flags);
  // Closes connections past their deadline.
  void onTick(std::chrono::steady_clock::time_point now);

  // Answers a parsed request (public for tests of the routes).
  AdminResponse route(const AdminRequest& request);
  // 403 for a request a browser could have been made to send: an Origin
  // header other than "http://" + Host (CSRF; the status page's own fetch
  // has exactly that one), or a Host that is neither this endpoint's address (as
  // configured, or `localAddress`, the connection's) nor localhost (DNS
  // rebinding). No Host at all is not a browser's request.
  std::optional<AdminResponse> refuseBrowser(const AdminRequest& request, std::string_view localAddress) const;

 private:
  enum class Step : uint8_t { Accept = 1, Recv, Send };  // user_data's op
  struct Connection {
    int fd = -1;
    uint32_t generation = 0;
    uint32_t inflight = 0;  // at most one operation at a time
    uint64_t pending = 0;   // that operation's user_data, for cancelling it
    bool open = false;
    bool lingering = false;  // response sent, discarding input until the client closes
    bool headDone = false;   // the request head is in: kAdminHeadDeadline no longer applies
    std::chrono::steady_clock::time_point headDeadline{};
    std::chrono::steady_clock::time_point deadline{};
    std::array<uint8_t, 16> source{};  // the peer's address (IPv4-mapped; IPv6 cut to its /64)
    std::string peer;                   // the peer's address as text, for the log
    std::string received;
    std::string response;
    size_t sent = 0;
    std::array<char, 2048> buffer{};
  };

  uint64_t userData(Step step, size_t slot) const;
  void armAccept();
  void onAccept(int fd, uint32_t flags);
  void refuse(int fd, AdminRefusal reason, const std::string& peer, size_t held);
  void drop(size_t slot, AdminDrop reason);
  bool evict();
  void submitRecv(size_t slot);
  void submitSend(size_t slot);
  void onRecv(size_t slot, int result);
  void linger(size_t slot);
  void onLinger(size_t slot, int result);
  void respond(size_t slot, const AdminResponse& response);
  void close(size_t slot);
  io_uring_sqe* sqe();

  AdminResponse memberAction(const AdminRequest& request, std::string_view path);
  AdminResponse reload(std::string_view who);
  AdminResponse events(const AdminRequest& request) const;
  bool authorized(const AdminRequest& request) const;
  std::optional<AdminResponse> refuseChange(const AdminRequest& request) const;
  std::string renderOwnMetrics() const;

  ring::Submitter* submitter_;
  int listenFd_;
  config::Admin settings_;
  ReportSources sources_;
  std::function<Clock::time_point()> now_ = [] { return Clock::now(); };
  std::optional<Clock::time_point> lastReload_;  // the last reload this endpoint started
  std::array<uint64_t, static_cast<size_t>(AdminRefusal::Count)> refused_{};
  std::array<uint64_t, static_cast<size_t>(AdminDrop::Count)> dropped_{};
  LogThrottle refusalLog_;
  LogThrottle dropLog_;
  LogThrottle reloadLog_;
  std::vector<Connection> connections_;
  std::function<bool(std::string*, std::string_view)> reload_;
  History* history_ = nullptr;
  std::function<int64_t()> unixMs_;
  bool acceptPaused_ = false;  // the accept stopped on an error; re-armed at the next tick
  bool accepting_ = true;      // false after stopAccepting()
  size_t drained_ = 0;         // accepts after stopAccepting() (see onAccept)
};

}  // namespace lb
