#pragma once
// In-place upgrade (SIGUSR2, as nginx does it): the running process starts
// the binary on disk as a new process that inherits every listening socket,
// so a connection waiting in an accept queue is taken by whichever process
// accepts first and none is refused or reset.
//
// The old process (Upgrader, on the control thread):
//
//   Idle --SIGUSR2--> Starting: fork; the child clears close-on-exec on the
//     sockets and the readiness pipe's write end, and execs the binary
//     resolved at start (StartCommand) with the same argv; what each
//     descriptor is goes in the environment (kSocketsVariable,
//     kReadyVariable).
//   Starting --"ready\n" on the pipe--> Done: the caller tells systemd
//     MAINPID=<new pid> and stops as on SIGTERM (without STOPPING=1: the
//     unit lives on in the new process).
//   Starting --end of the pipe (exit, or an exec error) before "ready"-->
//     Reaping: waits for the child's exit (a pidfd polled on the ring),
//     logs its status --> Idle. The old process never stopped serving.
//
// The new process (Inheritance): inheritedSockets() reads and checks the
// environment before anything is bound; the process takes the sockets of
// every listener whose address is the same, binds only what is new, closes
// the rest, and calls announceReady() once it serves.

#include <sys/types.h>

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "lb/ring/submitter.h"
#include "lb/runtime.h"

namespace lb::upgrade {

// "name@bind=fd,fd;...;admin=fd" (names and binds percent-encoded where they
// hold one of "%@=;," or bytes outside printable ASCII).
inline constexpr const char* kSocketsVariable = "RINGLB_UPGRADE_FDS";
// The write end of the readiness pipe: "ready\n" once the new process serves.
inline constexpr const char* kReadyVariable = "RINGLB_UPGRADE_READY_FD";

// What to exec: the binary as resolved when this process started (a path
// replaced on disk since then names the new file), and the same arguments.
struct StartCommand {
  std::string exe;
  std::vector<std::string> argv;
};
// Call first thing in main: /proc/self/exe read now, " (deleted)" stripped.
StartCommand startCommand(int argc, char** argv);

// The listening sockets handed from one process to the next.
struct HandedSockets {
  struct Listener {
    std::string name;
    std::string bind;      // the address as the config wrote it
    std::vector<int> fds;  // every worker's socket of the SO_REUSEPORT group
  };
  std::vector<Listener> listeners;
  int admin = -1;

  size_t count() const;
};

std::string encodeSockets(const HandedSockets& sockets);
// nullopt and `whyNot` for text not made by encodeSockets: a missing '=',
// a descriptor that is not a number above 2, one named twice, ...
std::optional<HandedSockets> parseSockets(std::string_view text, std::string* whyNot);

// The sockets a process started by an upgrade received, checked, until the
// process takes them. Whatever is not taken is closed by closeUnused().
class Inheritance {
 public:
  Inheritance(HandedSockets sockets, int readyFd, pid_t from)
      : sockets_(std::move(sockets)), readyFd_(readyFd), from_(from) {}
  ~Inheritance();
  Inheritance(Inheritance&&) noexcept;
  Inheritance& operator=(Inheritance&&) = delete;
  Inheritance(const Inheritance&) = delete;

  pid_t from() const { return from_; }
  size_t count() const { return sockets_.count(); }
  // Every socket of the listener bound to `address` (whatever its name
  // was); empty when there is none.
  std::vector<int> takeListener(const config::Address& address, std::string* formerName);
  // The admin socket when it is bound to `address`, else -1.
  int takeAdmin(const config::Address& address);
  // Closes what no listener of the new config took (their queued
  // connections are reset once the old process closes its copies too);
  // returns a line for the log, or empty.
  std::string closeUnused();
  // Tells the old process that this one serves (it then stops accepting).
  void announceReady();

 private:
  HandedSockets sockets_;
  int readyFd_ = -1;
  pid_t from_ = 0;
};

// In a process started by an upgrade: the sockets from the environment,
// each checked (a listening TCP socket bound where the entry says), the
// variables removed. nullopt with `whyNot` empty: not started by an
// upgrade; with `whyNot` set: the process must not start.
std::optional<Inheritance> inheritedSockets(std::string* whyNot);

// The old side. Holds its own descriptor (a dup) of every listening socket
// the running generation has, so that a worker closing its own socket never
// leaves a number behind that could be passed on by mistake.
class Upgrader {
 public:
  enum class Event : uint8_t { None, Ready, Failed };

  Upgrader(ring::Submitter* submitter, StartCommand command);
  ~Upgrader();
  Upgrader(const Upgrader&) = delete;
  Upgrader& operator=(const Upgrader&) = delete;

  // Keeps a descriptor of each of `fds` (the listener's sockets over every
  // worker), or of the admin socket.
  void keepListener(const std::string& name, const std::string& bind, const std::vector<int>& fds);
  void keepAdmin(int fd);
  // A generation switch, as the workers make it (Worker::adopt): sockets of
  // listeners `next` does not keep (same name and bind) are dropped, and
  // `added` (new listeners' sockets by name, one map per worker) kept.
  void keepAfterSwitch(const Runtime& next, const std::vector<std::map<std::string, int>>& added);
  // Stopping: closes every kept descriptor, so the sockets close with the
  // workers' (new connections are refused when nobody else holds them).
  void closeSockets();

  bool busy() const { return state_ == State::Starting || state_ == State::Reaping; }
  pid_t child() const { return child_; }
  // Starts the new process; false (logged) when it could not be started.
  bool start();
  // A completion tagged Owner::Upgrade.
  Event onCompletion(uint64_t userData, int result);
  // A new process still not ready `limit` after it was started (at `now`)
  // is killed; its exit then fails the upgrade as any early exit does, and
  // this process serves on. True when it was killed now.
  bool killIfLate(std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit);

 private:
  enum class State : uint8_t { Idle, Starting, Reaping, Done };
  enum class Step : uint8_t { Read = 1, Exited };
  void armRead();
  void armExitWatch();
  Event onRead(int result);
  void childGone();
  uint64_t tag(Step step) const;
  void closeChildFds();

  ring::Submitter* submitter_;
  StartCommand command_;
  HandedSockets kept_;
  State state_ = State::Idle;
  uint32_t attempt_ = 0;  // user_data generation: completions of an earlier attempt are ignored
  pid_t child_ = -1;
  std::chrono::steady_clock::time_point startedAt_{};
  bool killed_ = false;  // killIfLate() sent SIGKILL to this attempt's child
  int readFd_ = -1;
  int pidFd_ = -1;
  std::string received_;
  std::array<char, 64> buffer_{};
};

}  // namespace lb::upgrade
