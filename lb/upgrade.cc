#include "lb/upgrade.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "lb/listener.h"
#include "lb/log.h"
#include "lb/ring/user_data.h"

extern char** environ;

namespace lb::upgrade {
namespace {

constexpr std::string_view kReady = "ready\n";
constexpr std::string_view kExecError = "exec-error ";

bool plain(unsigned char c) { return c > 0x20 && c < 0x7f && !std::strchr("%@=;,", c); }

std::string encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (plain(c))
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      if (!plain(static_cast<unsigned char>(text[i]))) return std::nullopt;
      out += text[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= text.size()) return std::nullopt;
    auto [end, error] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
    if (error != std::errc() || end != text.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// A descriptor number as passed: decimal, above stdio.
std::optional<int> parseFd(std::string_view text) {
  int fd = -1;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (error != std::errc() || end != text.data() + text.size() || fd <= STDERR_FILENO) return std::nullopt;
  return fd;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::string errnoText(int error) { return std::strerror(error); }

// A listening stream socket, made close-on-exec (the admin socket's
// address is checked when the config is known: takeAdmin).
std::string checkAdminSocket(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return fmt::format("descriptor {} is not open: {}", fd, errnoText(errno));
  int listening = 0;
  socklen_t size = sizeof listening;
  if (!S_ISSOCK(info.st_mode) || ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
      !listening)
    return fmt::format("descriptor {} is not a listening socket", fd);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return fmt::format("descriptor {}: {}", fd, errnoText(errno));
  return {};
}

bool boundSocket(int fd, const config::Address& address) {
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  return ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0 && boundTo(bound, address);
}

void closeFds(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

// The child between fork and execve: only async-signal-safe calls (another
// thread may have held any lock at the fork). Everything it needs was built
// before the fork.
struct ChildPlan {
  const char* exe;
  char* const* argv;
  char* const* envp;
  const int* passFds;
  size_t passCount;
  int readyFd;
  sigset_t mask;               // empty: the control signals were blocked here
  struct sigaction pipeAction; // SIG_DFL: SIGPIPE was ignored here
};

[[noreturn]] void childExec(const ChildPlan& plan) {
  int error = 0;
  for (size_t i = 0; i < plan.passCount && error == 0; ++i)
    if (::fcntl(plan.passFds[i], F_SETFD, 0) != 0) error = errno;
  if (error == 0 && ::sigprocmask(SIG_SETMASK, &plan.mask, nullptr) != 0) error = errno;
  if (error == 0 && ::sigaction(SIGPIPE, &plan.pipeAction, nullptr) != 0) error = errno;
  if (error == 0) {
    ::execve(plan.exe, plan.argv, plan.envp);
    error = errno;
  }
  // "exec-error N\n" without snprintf (not async-signal-safe).
  char message[32];
  size_t length = 0;
  for (char c : kExecError) message[length++] = c;
  char digits[12];
  size_t count = 0;
  unsigned value = static_cast<unsigned>(error);
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && count < sizeof digits);
  while (count > 0) message[length++] = digits[--count];
  message[length++] = '\n';
  ssize_t ignored = ::write(plan.readyFd, message, length);
  (void)ignored;
  ::_exit(127);
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                                              strsignal(WTERMSIG(status)));
  return fmt::format("ended with wait status {}", status);
}

}  // namespace

StartCommand startCommand(int argc, char** argv) {
  StartCommand command;
  char path[PATH_MAX + 1];
  ssize_t length = ::readlink("/proc/self/exe", path, PATH_MAX);
  if (length > 0) {
    command.exe.assign(path, static_cast<size_t>(length));
    constexpr std::string_view kDeleted = " (deleted)";
    if (command.exe.ends_with(kDeleted)) command.exe.resize(command.exe.size() - kDeleted.size());
  } else if (argc > 0) {
    command.exe = argv[0];  // no /proc: as invoked (a path, else exec fails and says so)
  }
  for (int i = 0; i < argc; ++i) command.argv.emplace_back(argv[i]);
  return command;
}

size_t HandedSockets::count() const {
  size_t total = admin >= 0 ? 1 : 0;
  for (const Listener& listener : listeners) total += listener.fds.size();
  return total;
}

std::string encodeSockets(const HandedSockets& sockets) {
  std::string text;
  for (const HandedSockets::Listener& listener : sockets.listeners) {
    if (!text.empty()) text += ';';
    text += encode(listener.name) + "@" + encode(listener.bind) + "=";
    for (size_t i = 0; i < listener.fds.size(); ++i) {
      if (i) text += ',';
      text += std::to_string(listener.fds[i]);
    }
  }
  if (sockets.admin >= 0) {
    text += text.empty() ? "admin=" : ";admin=";
    text += std::to_string(sockets.admin);
  }
  return text;
}

std::optional<HandedSockets> parseSockets(std::string_view text, std::string* whyNot) {
  HandedSockets sockets;
  std::set<int> seen;
  auto fail = [&](std::string why) {
    *whyNot = std::move(why);
    return std::nullopt;
  };
  if (text.empty()) return sockets;
  for (std::string_view entry : split(text, ';')) {
    size_t equals = entry.rfind('=');
    if (equals == std::string_view::npos) return fail(fmt::format("entry \"{}\" has no '='", encode(entry)));
    std::string_view key = entry.substr(0, equals);
    std::vector<int> fds;
    for (std::string_view number : split(entry.substr(equals + 1), ',')) {
      std::optional<int> fd = parseFd(number);
      if (!fd) return fail(fmt::format("\"{}\" is not a descriptor number above 2", encode(number)));
      if (!seen.insert(*fd).second) return fail(fmt::format("descriptor {} is given twice", *fd));
      fds.push_back(*fd);
    }
    size_t at = key.find('@');
    if (at == std::string_view::npos) {
      if (key != "admin" || fds.size() != 1 || sockets.admin >= 0)
        return fail(fmt::format("entry \"{}\" is neither NAME@BIND=FDS nor admin=FD", encode(entry)));
      sockets.admin = fds[0];
      continue;
    }
    std::optional<std::string> name = decode(key.substr(0, at));
    std::optional<std::string> bind = decode(key.substr(at + 1));
    if (!name || !bind || name->empty() || bind->empty())
      return fail(fmt::format("entry \"{}\": a bad name or address", encode(entry)));
    sockets.listeners.push_back(HandedSockets::Listener{std::move(*name), std::move(*bind), std::move(fds)});
  }
  return sockets;
}

Inheritance::Inheritance(Inheritance&& other) noexcept
    : sockets_(std::move(other.sockets_)), readyFd_(other.readyFd_), from_(other.from_) {
  other.sockets_ = {};
  other.readyFd_ = -1;
}

Inheritance::~Inheritance() {
  closeUnused();
  if (readyFd_ >= 0) ::close(readyFd_);
}

std::vector<int> Inheritance::takeListener(const config::Address& address, std::string* formerName) {
  auto& listeners = sockets_.listeners;
  for (auto it = listeners.begin(); it != listeners.end(); ++it) {
    if (!boundSocket(it->fds.front(), address)) continue;
    std::vector<int> fds = std::move(it->fds);
    *formerName = std::move(it->name);
    listeners.erase(it);
    return fds;
  }
  return {};
}

int Inheritance::takeAdmin(const config::Address& address) {
  if (sockets_.admin < 0 || !boundSocket(sockets_.admin, address)) return -1;
  return std::exchange(sockets_.admin, -1);
}

std::string Inheritance::closeUnused() {
  std::string closed;
  for (HandedSockets::Listener& listener : sockets_.listeners) {
    closed += fmt::format("{}{} on {} ({} sockets)", closed.empty() ? "" : ", ", config::printable(listener.name),
                          listener.bind, listener.fds.size());
    closeFds(listener.fds);
  }
  sockets_.listeners.clear();
  if (sockets_.admin >= 0) {
    closed += fmt::format("{}the admin socket", closed.empty() ? "" : ", ");
    ::close(std::exchange(sockets_.admin, -1));
  }
  return closed;
}

void Inheritance::announceReady() {
  if (readyFd_ < 0) return;
  ssize_t written;
  do {
    written = ::write(readyFd_, kReady.data(), kReady.size());
  } while (written < 0 && errno == EINTR);
  if (written == static_cast<ssize_t>(kReady.size()))
    log::info("upgrade: told process {} that this one (pid {}) serves; it stops accepting", from_, ::getpid());
  else
    log::warn("upgrade: cannot tell process {} that this one serves ({}); it may have gone already", from_,
              written < 0 ? errnoText(errno) : "short write");
  ::close(std::exchange(readyFd_, -1));
}

std::optional<Inheritance> inheritedSockets(std::string* whyNot) {
  whyNot->clear();
  const char* socketsText = std::getenv(kSocketsVariable);
  const char* readyText = std::getenv(kReadyVariable);
  if (!socketsText && !readyText) return std::nullopt;
  // Taken out of the environment at once: whatever this process starts
  // later (its own upgrade) gets a fresh description of its own sockets.
  std::string socketsValue = socketsText ? socketsText : "";
  std::string readyValue = readyText ? readyText : "";
  ::unsetenv(kSocketsVariable);
  ::unsetenv(kReadyVariable);
  auto fail = [&](std::string why) {
    *whyNot = fmt::format("upgrade: {}", why);
    return std::nullopt;
  };
  if (!socketsText || !readyText)
    return fail(fmt::format("{} and {} come together; only one is set", kSocketsVariable, kReadyVariable));
  std::string error;
  std::optional<HandedSockets> sockets = parseSockets(socketsValue, &error);
  if (!sockets) return fail(fmt::format("{}: {}", kSocketsVariable, error));
  std::optional<int> readyFd = parseFd(readyValue);
  struct stat info {};
  if (!readyFd || ::fstat(*readyFd, &info) != 0 || !S_ISFIFO(info.st_mode) ||
      ::fcntl(*readyFd, F_SETFD, FD_CLOEXEC) != 0)
    return fail(fmt::format("{}=\"{}\" is not an open pipe", kReadyVariable, encode(readyValue)));
  for (const HandedSockets::Listener& listener : sockets->listeners) {
    std::string why;
    std::optional<config::Address> address = config::parseAddress(listener.bind, &why);
    if (!address) return fail(fmt::format("listener {}: address {}: {}", listener.name, listener.bind, why));
    for (int fd : listener.fds)
      if (std::string problem = adoptListenSocket(fd, *address); !problem.empty())
        return fail(fmt::format("listener {} on {}: {}", config::printable(listener.name), listener.bind, problem));
  }
  if (sockets->admin >= 0)
    if (std::string problem = checkAdminSocket(sockets->admin); !problem.empty())
      return fail(fmt::format("admin: {}", problem));
  return Inheritance(std::move(*sockets), *readyFd, ::getppid());
}

Upgrader::Upgrader(ring::Submitter* submitter, StartCommand command)
    : submitter_(submitter), command_(std::move(command)) {}

Upgrader::~Upgrader() {
  closeSockets();
  closeChildFds();
}

void Upgrader::keepListener(const std::string& name, const std::string& bind, const std::vector<int>& fds) {
  HandedSockets::Listener kept{name, bind, {}};
  for (int fd : fds) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    if (copy < 0) {
      log::warn("upgrade: cannot keep a descriptor of listener {}: {}; SIGUSR2 will not hand it on",
                config::printable(name), errnoText(errno));
      continue;
    }
    kept.fds.push_back(copy);
  }
  if (!kept.fds.empty()) kept_.listeners.push_back(std::move(kept));
}

void Upgrader::keepAdmin(int fd) {
  if (kept_.admin >= 0) ::close(std::exchange(kept_.admin, -1));
  if (fd < 0) return;
  kept_.admin = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (kept_.admin < 0)
    log::warn("upgrade: cannot keep a descriptor of the admin socket: {}; SIGUSR2 will not hand it on",
              errnoText(errno));
}

void Upgrader::keepAfterSwitch(const Runtime& next, const std::vector<std::map<std::string, int>>& added) {
  std::erase_if(kept_.listeners, [&](HandedSockets::Listener& listener) {
    const Listener* stays = next.findListener(listener.name);
    if (stays && stays->config.bind.text == listener.bind) return false;
    closeFds(listener.fds);
    return true;
  });
  for (const auto& listener : next.listeners) {
    std::vector<int> fds;
    for (const auto& perWorker : added)
      if (auto it = perWorker.find(listener->config.name); it != perWorker.end()) fds.push_back(it->second);
    if (!fds.empty()) keepListener(listener->config.name, listener->config.bind.text, fds);
  }
}

void Upgrader::closeSockets() {
  for (HandedSockets::Listener& listener : kept_.listeners) closeFds(listener.fds);
  kept_.listeners.clear();
  if (kept_.admin >= 0) ::close(std::exchange(kept_.admin, -1));
}

void Upgrader::closeChildFds() {
  if (readFd_ >= 0) ::close(std::exchange(readFd_, -1));
  if (pidFd_ >= 0) ::close(std::exchange(pidFd_, -1));
}

uint64_t Upgrader::tag(Step step) const {
  return ring::pack(ring::Tag{ring::Owner::Upgrade, static_cast<uint8_t>(step), 0, attempt_});
}

bool Upgrader::start() {
  if (busy() || state_ == State::Done) return false;
  if (::access(command_.exe.c_str(), X_OK) != 0) {
    log::error("upgrade: cannot run {}: {}; this process keeps serving", command_.exe, errnoText(errno));
    return false;
  }
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    log::error("upgrade: cannot make the readiness pipe: {}; this process keeps serving", errnoText(errno));
    return false;
  }
  // Everything the child needs, built before the fork.
  HandedSockets handed = kept_;
  std::vector<int> passFds;
  for (const auto& listener : handed.listeners) passFds.insert(passFds.end(), listener.fds.begin(), listener.fds.end());
  if (handed.admin >= 0) passFds.push_back(handed.admin);
  passFds.push_back(pipeFds[1]);
  std::vector<std::string> environment;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view text(*entry);
    if (text.starts_with(std::string(kSocketsVariable) + "=") || text.starts_with(std::string(kReadyVariable) + "="))
      continue;
    environment.emplace_back(text);
  }
  environment.push_back(fmt::format("{}={}", kSocketsVariable, encodeSockets(handed)));
  environment.push_back(fmt::format("{}={}", kReadyVariable, pipeFds[1]));
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> arguments = command_.argv;
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  ChildPlan plan{command_.exe.c_str(), argv.data(), envp.data(), passFds.data(), passFds.size(), pipeFds[1], {}, {}};
  sigemptyset(&plan.mask);
  plan.pipeAction.sa_handler = SIG_DFL;
  sigemptyset(&plan.pipeAction.sa_mask);

  pid_t pid = ::fork();
  if (pid == 0) childExec(plan);
  int forkError = errno;
  ::close(pipeFds[1]);
  if (pid < 0) {
    ::close(pipeFds[0]);
    log::error("upgrade: fork: {}; this process keeps serving", errnoText(forkError));
    return false;
  }
  child_ = pid;
  startedAt_ = std::chrono::steady_clock::now();
  killed_ = false;
  readFd_ = pipeFds[0];
  pidFd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1: waited for without it
  ++attempt_;
  received_.clear();
  state_ = State::Starting;
  log::info("upgrade: started {} as process {} with {} listening sockets; waiting for it to be ready",
            command_.exe, pid, passFds.size() - 1);
  armRead();
  return true;
}

void Upgrader::armRead() {
  io_uring_sqe* sqe = submitter_->getSqe();
  io_uring_prep_read(sqe, readFd_, buffer_.data(), static_cast<unsigned>(buffer_.size()), 0);
  io_uring_sqe_set_data64(sqe, tag(Step::Read));
}

void Upgrader::armExitWatch() {
  io_uring_sqe* sqe = submitter_->getSqe();
  io_uring_prep_poll_add(sqe, pidFd_, POLLIN);
  io_uring_sqe_set_data64(sqe, tag(Step::Exited));
}

Upgrader::Event Upgrader::onCompletion(uint64_t userData, int result) {
  ring::Tag completion = ring::unpack(userData);
  if (completion.owner != ring::Owner::Upgrade || completion.generation != attempt_) return Event::None;
  if (completion.op == static_cast<uint8_t>(Step::Read) && state_ == State::Starting) return onRead(result);
  if (completion.op == static_cast<uint8_t>(Step::Exited) && state_ == State::Reaping) {
    childGone();
    return Event::Failed;
  }
  return Event::None;
}

Upgrader::Event Upgrader::onRead(int result) {
  if (result == -EINTR || result == -EAGAIN) {
    armRead();
    return Event::None;
  }
  if (result > 0) {
    if (received_.size() < 256) received_.append(buffer_.data(), static_cast<size_t>(result));
    if (received_.find(kReady) != std::string::npos) {
      state_ = State::Done;
      closeChildFds();
      log::info("upgrade: process {} is ready", child_);
      return Event::Ready;
    }
    armRead();
    return Event::None;
  }
  // The pipe ended before "ready": the child failed. Its stderr is ours, so
  // its own errors (a config that does not check, ...) are in the log above.
  if (size_t at = received_.find(kExecError); at != std::string::npos) {
    int error = std::atoi(received_.c_str() + at + kExecError.size());
    log::error("upgrade: process {} could not run {}: {}", child_, command_.exe, errnoText(error));
  }
  state_ = State::Reaping;
  if (pidFd_ >= 0) {
    armExitWatch();
    return Event::None;
  }
  childGone();  // no pidfd: it is exiting (its end of the pipe is closed), waitpid blocks briefly
  return Event::Failed;
}

bool Upgrader::killIfLate(std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit) {
  if (state_ != State::Starting || killed_ || now - startedAt_ < limit) return false;
  killed_ = true;
  log::error("upgrade: process {} is not ready after {}ms (upgrade_timeout); killing it", child_, limit.count());
  ::kill(child_, SIGKILL);
  return true;
}

void Upgrader::childGone() {
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(child_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  std::string how = reaped == child_ ? describeStatus(status) : fmt::format("cannot be waited for ({})", errnoText(errno));
  log::error("upgrade failed: process {} {} before it was ready; this process (pid {}) keeps serving", child_, how,
             ::getpid());
  closeChildFds();
  child_ = -1;
  state_ = State::Idle;
}

}  // namespace lb::upgrade
