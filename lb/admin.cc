#include "lb/admin.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "lb/access_log.h"
#include "lb/address_text.h"
#include "lb/log.h"
#include "lb/ring/user_data.h"
#include "lb/status_page.h"

namespace lb {
namespace {

constexpr size_t kNoConnection = ring::kMaxSlot;

std::string_view toString(AdminRefusal reason) {
  switch (reason) {
    case AdminRefusal::Full: return "full";
    case AdminRefusal::SourceShare: return "source_share";
    case AdminRefusal::ReloadRate: return "reload_rate";
    case AdminRefusal::Count: break;
  }
  return "?";
}

std::string_view toString(AdminDrop reason) {
  switch (reason) {
    case AdminDrop::HeadTimeout: return "head_timeout";
    case AdminDrop::Deadline: return "deadline";
    case AdminDrop::Evicted: return "evicted";
    case AdminDrop::Count: break;
  }
  return "?";
}

uint64_t nanoseconds(std::chrono::steady_clock::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

// The key a source's share is counted by: its IPv4 address (IPv4-mapped),
// or its IPv6 /64 (one host usually holds a whole /64).
std::array<uint8_t, 16> sourceKey(const sockaddr_storage& peer) {
  std::array<uint8_t, 16> key{};
  if (peer.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&peer);
    key[10] = key[11] = 0xff;
    std::memcpy(key.data() + 12, &sin->sin_addr, 4);
  } else if (peer.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    std::memcpy(key.data(), &sin6->sin6_addr, 16);
    if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) std::fill(key.begin() + 8, key.end(), 0);
  }
  return key;
}

std::string lowerCase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// "localhost" or "localhost:PORT" (any port: a tunnel may forward another;
// no web page can make a browser send it for a name of its own).
bool isLocalhost(std::string_view host) {
  constexpr std::string_view kLocalhost = "localhost";
  if (host.substr(0, kLocalhost.size()) != kLocalhost) return false;
  std::string_view port = host.substr(kLocalhost.size());
  if (port.empty()) return true;
  if (port.size() < 2 || port.size() > 6 || port.front() != ':') return false;
  return std::all_of(port.begin() + 1, port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

AdminResponse text(int status, std::string body) {
  AdminResponse response;
  response.status = status;
  response.body = std::move(body);
  if (!response.body.empty() && response.body.back() != '\n') response.body += '\n';
  return response;
}

AdminResponse json(std::string body) {
  AdminResponse response;
  response.contentType = "application/json";
  response.body = std::move(body);
  return response;
}

// Compares without stopping at the first difference, so the time taken says
// nothing about how much of a guessed token was right (its length aside).
bool sameSecret(std::string_view given, std::string_view secret) {
  if (secret.empty() || given.size() != secret.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < secret.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
  return diff == 0;
}

// The raw value of `key` in a query string ("a=1&format=text"), or none.
std::optional<std::string_view> queryValue(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    if (pair.substr(0, key.size()) == key && pair.size() > key.size() && pair[key.size()] == '=')
      return pair.substr(key.size() + 1);
    if (end == std::string_view::npos) break;
    query.remove_prefix(end + 1);
  }
  return std::nullopt;
}

}  // namespace

Admin::Admin(ring::Submitter* submitter, int listenFd, const config::Admin& settings, ReportSources sources)
    : submitter_(submitter), listenFd_(listenFd), settings_(settings), sources_(sources),
      connections_(2 * kAdminMaxConnections) {}

void Admin::setSources(const ReportSources& sources, const config::Admin& settings) {
  sources_ = sources;
  std::optional<config::Address> listen = settings_.listen;  // the socket stays until a restart
  settings_ = settings;
  settings_.listen = std::move(listen);
}

Admin::~Admin() {
  for (Connection& c : connections_)
    if (c.fd >= 0) ::close(c.fd);
  if (listenFd_ >= 0) ::close(listenFd_);
}

// user_data: Owner::Admin, op = step, slot = connection, its generation.
// The accept is not a connection's: slot kNoConnection.
uint64_t Admin::userData(Step step, size_t slot) const {
  uint32_t generation = slot < connections_.size() ? connections_[slot].generation : 0;
  return ring::pack(ring::Tag{ring::Owner::Admin, static_cast<uint8_t>(step),
                              static_cast<uint32_t>(slot), generation});
}

io_uring_sqe* Admin::sqe() { return submitter_->getSqe(); }

void Admin::start() { armAccept(); }

void Admin::stopAccepting() {
  if (!accepting_) return;
  accepting_ = false;
  if (acceptPaused_) {
    acceptPaused_ = false;
    if (listenFd_ >= 0) ::close(std::exchange(listenFd_, -1));
    return;
  }
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, userData(Step::Accept, kNoConnection), 0);
  io_uring_sqe_set_data64(s, 0);
}

void Admin::armAccept() {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, userData(Step::Accept, kNoConnection));
}

void Admin::onCompletion(uint64_t data, int result, uint32_t flags) {
  ring::Tag tag = ring::unpack(data);
  if (tag.owner != ring::Owner::Admin) return;
  auto step = static_cast<Step>(tag.op);
  if (step == Step::Accept) return onAccept(result, flags);
  size_t slot = tag.slot;
  if (slot >= connections_.size()) return;
  Connection& c = connections_[slot];
  --c.inflight;
  if (!c.open || tag.generation != c.generation) return;
  if (step == Step::Recv) return c.lingering ? onLinger(slot, result) : onRecv(slot, result);
  if (result <= 0) return close(slot);
  c.sent += static_cast<size_t>(result);
  if (c.sent < c.response.size()) return submitSend(slot);
  linger(slot);
}

// Closing a socket with unread input resets it, and the reset can reach the
// client before the response. So: send FIN, read and discard until the
// client closes (bounded by the connection's deadline), then close.
void Admin::linger(size_t slot) {
  Connection& c = connections_[slot];
  (void)::shutdown(c.fd, SHUT_WR);
  c.lingering = true;
  c.deadline = std::min(c.deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
  submitRecv(slot);
}

void Admin::onLinger(size_t slot, int result) {
  if (result <= 0) return close(slot);
  submitRecv(slot);
}

// An accept that stopped on an error (out of fds, ...) is re-armed at the
// next tick, not at once, so an exhausted process does not spin.
//
// After stopAccepting() the ended accept is followed by accepts that do not
// wait (Linux 6.10+), until the queue is empty: a connection whose wake-up
// went to the cancelled accept would otherwise wait for the next one to
// arrive (the kernel wakes one accepter, not the new process's too).
void Admin::onAccept(int fd, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    if (!accepting_) {
      bool drainOn = drained_ == 0 || fd >= 0;
      if (drainOn && drained_ < kAdminMaxConnections && listenFd_ >= 0) {
        ++drained_;
        io_uring_sqe* s = sqe();
        io_uring_prep_accept(s, listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
        s->ioprio |= 1u << 1;  // IORING_ACCEPT_DONTWAIT (liburing 2.3 does not name it)
        io_uring_sqe_set_data64(s, userData(Step::Accept, kNoConnection));
      } else if (listenFd_ >= 0) {
        ::close(std::exchange(listenFd_, -1));
      }
    } else if (fd < 0) {
      acceptPaused_ = true;
    } else {
      armAccept();
    }
  }
  if (fd < 0) return;
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) {
    ::close(fd);  // already gone
    return;
  }
  std::array<uint8_t, 16> source = sourceKey(peer);
  size_t held = 0;
  size_t open = 0;
  size_t free = kNoConnection;
  for (size_t slot = 0; slot < connections_.size(); ++slot) {
    const Connection& c = connections_[slot];
    if (c.open && c.source == source) ++held;
    if (c.open) ++open;
    if (!c.open && c.inflight == 0 && free == kNoConnection) free = slot;
  }
  if (held >= kAdminMaxPerSource) return refuse(fd, AdminRefusal::SourceShare, formatAddress(peer), held);
  if (open >= kAdminMaxConnections && !evict()) return refuse(fd, AdminRefusal::Full, formatAddress(peer), held);
  if (free == kNoConnection) return refuse(fd, AdminRefusal::Full, formatAddress(peer), held);
  Connection& c = connections_[free];
  c.open = true;
  c.lingering = false;
  c.headDone = false;
  c.fd = fd;
  c.source = source;
  c.peer = formatAddress(peer);
  c.received.clear();
  c.response.clear();
  c.sent = 0;
  auto now = std::chrono::steady_clock::now();
  c.headDeadline = now + kAdminHeadDeadline;
  c.deadline = now + kAdminRequestDeadline;
  submitRecv(free);
}

// Closed at once, without an answer: an answer would need a slot. The log
// line is kept to one a second; the count is exact.
void Admin::refuse(int fd, AdminRefusal reason, const std::string& peer, size_t held) {
  ::close(fd);
  ++refused_[static_cast<size_t>(reason)];
  uint64_t heldBack = 0;
  if (!refusalLog_.allow(nanoseconds(std::chrono::steady_clock::now()), &heldBack)) return;
  std::string why = reason == AdminRefusal::SourceShare
                        ? fmt::format("it holds {} of the {} connections one source may", held, kAdminMaxPerSource)
                        : fmt::format("all {} connections are in use", kAdminMaxConnections);
  log::warn("admin: refused a connection from {}: {}{}", peer, why,
            heldBack ? fmt::format(" ({} more refusals since the last line)", heldBack) : std::string());
}

void Admin::drop(size_t slot, AdminDrop reason) {
  ++dropped_[static_cast<size_t>(reason)];
  uint64_t heldBack = 0;
  if (dropLog_.allow(nanoseconds(std::chrono::steady_clock::now()), &heldBack)) {
    std::string why =
        reason == AdminDrop::HeadTimeout ? fmt::format("no request head within {}s", kAdminHeadDeadline.count())
        : reason == AdminDrop::Deadline
            ? fmt::format("no whole request within {}s", kAdminRequestDeadline.count())
            : fmt::format("evicted to make room: all {} connections were in use and its request head was not in",
                          kAdminMaxConnections);
    log::warn("admin: closed the connection from {}: {}{}", connections_[slot].peer, why,
              heldBack ? fmt::format(" ({} more closed since the last line)", heldBack) : std::string());
  }
  close(slot);
}

// Every slot is taken and a newcomer within its share arrives: close the
// oldest connection whose request head is not in yet, of the source that
// holds the most slots (ties: the oldest overall). So sources that fill the
// endpoint with slow clients evict each other before anyone else. A connection
// whose head is in (being answered) is never evicted. Returns false when every
// connection's head is in. Runs only when full: 64 x 64 comparisons at most.
bool Admin::evict() {
  size_t victim = kNoConnection;
  size_t victimHeld = 0;
  for (size_t slot = 0; slot < connections_.size(); ++slot) {
    const Connection& c = connections_[slot];
    if (!c.open || c.headDone || c.lingering) continue;
    size_t held = 0;
    for (const Connection& other : connections_)
      if (other.open && other.source == c.source) ++held;
    // headDeadline is the accept time plus a constant: the earliest is the oldest.
    if (victim == kNoConnection || held > victimHeld ||
        (held == victimHeld && c.headDeadline < connections_[victim].headDeadline)) {
      victim = slot;
      victimHeld = held;
    }
  }
  if (victim == kNoConnection) return false;
  drop(victim, AdminDrop::Evicted);
  return true;
}

void Admin::submitRecv(size_t slot) {
  Connection& c = connections_[slot];
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c.fd, c.buffer.data(), c.buffer.size(), 0);
  c.pending = userData(Step::Recv, slot);
  io_uring_sqe_set_data64(s, c.pending);
  ++c.inflight;
}

void Admin::submitSend(size_t slot) {
  Connection& c = connections_[slot];
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
  c.pending = userData(Step::Send, slot);
  io_uring_sqe_set_data64(s, c.pending);
  ++c.inflight;
}

void Admin::onRecv(size_t slot, int result) {
  Connection& c = connections_[slot];
  if (result <= 0) return close(slot);
  c.received.append(c.buffer.data(), static_cast<size_t>(result));
  AdminRequest request;
  ParseOutcome outcome = parseAdminRequest(c.received, &request);
  c.headDone = outcome != ParseOutcome::NeedMore || adminHeadComplete(c.received);
  switch (outcome) {
    case ParseOutcome::NeedMore: return submitRecv(slot);
    case ParseOutcome::Bad: return respond(slot, text(400, "bad request"));
    case ParseOutcome::TooLarge: return respond(slot, text(413, "request too large"));
    case ParseOutcome::Done: {
      sockaddr_storage local{};
      socklen_t length = sizeof local;
      std::string localAddress;
      if (::getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) localAddress = formatAddress(local);
      request.peer = c.peer;
      std::optional<AdminResponse> refused = refuseBrowser(request, localAddress);
      AdminResponse response = refused ? *refused : route(request);
      response.headOnly = request.method == "HEAD";
      return respond(slot, response);
    }
  }
}

void Admin::respond(size_t slot, const AdminResponse& response) {
  Connection& c = connections_[slot];
  c.response = serializeResponse(response);
  c.sent = 0;
  submitSend(slot);
}

// Closing the fd is safe with an operation in flight (it holds its own file
// reference), but the socket only really closes once that operation ends, so
// cancel it; bumping the generation makes its completion a no-op.
void Admin::close(size_t slot) {
  Connection& c = connections_[slot];
  if (c.inflight > 0) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, c.pending, 0);
    io_uring_sqe_set_data64(s, 0);
  }
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.open = false;
  ++c.generation;
}

void Admin::onTick(std::chrono::steady_clock::time_point now) {
  if (acceptPaused_) {
    acceptPaused_ = false;
    armAccept();
  }
  for (size_t slot = 0; slot < connections_.size(); ++slot) {
    Connection& c = connections_[slot];
    if (!c.open) continue;
    if (c.lingering) {
      if (now >= c.deadline) close(slot);  // answered; the client did not close in time
    } else if (!c.headDone && now >= c.headDeadline) {
      drop(slot, AdminDrop::HeadTimeout);
    } else if (now >= c.deadline) {
      drop(slot, AdminDrop::Deadline);
    }
  }
}

std::optional<AdminResponse> Admin::refuseBrowser(const AdminRequest& request, std::string_view localAddress) const {
  // The status page's own fetch is the one request with an Origin allowed:
  // its Origin is http:// and the very Host it was loaded from (which must
  // pass the check below). A page of any other origin is a cross-site request.
  if (request.hasOrigin &&
      (request.host.empty() || lowerCase(request.origin) != "http://" + lowerCase(request.host)))
    return text(403, "refused: a request with an Origin header other than this endpoint's own comes from "
                     "another web page (cross-site request)");
  if (request.host.empty()) return std::nullopt;
  std::string host = lowerCase(request.host);
  if (isLocalhost(host) || host == lowerCase(localAddress) ||
      (settings_.listen && host == lowerCase(settings_.listen->text)))
    return std::nullopt;
  return text(403, "refused: the Host header is neither this endpoint's address nor localhost "
                   "(a name pointed at it by DNS rebinding?)");
}

// Calls that change state must be POSTs and carry the token (when one is set).
std::optional<AdminResponse> Admin::refuseChange(const AdminRequest& request) const {
  if (request.method != "POST") {
    AdminResponse r = text(405, "use POST");
    r.extraHeaders = "Allow: POST\r\n";
    return r;
  }
  if (!authorized(request)) {
    AdminResponse r = text(401, "a valid 'Authorization: Bearer TOKEN' header is required");
    r.extraHeaders = "WWW-Authenticate: Bearer\r\n";
    return r;
  }
  return std::nullopt;
}

bool Admin::authorized(const AdminRequest& request) const {
  const std::string& token = settings_.token;
  if (token.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view given = request.authorization;
  if (given.substr(0, kBearer.size()) != kBearer) return false;
  return sameSecret(given.substr(kBearer.size()), token);
}

AdminResponse Admin::route(const AdminRequest& request) {
  const std::string& path = request.path;
  bool get = request.method == "GET" || request.method == "HEAD";
  if (path == "/" || path == "/status" || path == "/metrics" || path == "/events") {
    if (!get) {
      AdminResponse r = text(405, "use GET");
      r.extraHeaders = "Allow: GET, HEAD\r\n";
      return r;
    }
    if (settings_.requireTokenForReads && !authorized(request)) {
      AdminResponse r = text(401, "a valid 'Authorization: Bearer TOKEN' header is required");
      r.extraHeaders = "WWW-Authenticate: Bearer\r\n";
      return r;
    }
    if (path == "/metrics") {
      AdminResponse r = text(200, renderMetrics(sources_) + renderOwnMetrics());
      r.contentType = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    if (path == "/status" && queryValue(request.query, "format") == "text")
      return text(200, renderStatusText(sources_));
    if (path == "/status") return json(renderStatusJson(sources_));
    if (path == "/events") return events(request);
    AdminResponse r;
    r.contentType = "text/html; charset=utf-8";
    r.body = renderStatusPage(sources_);
    return r;
  }
  constexpr std::string_view kPools = "/pools/";
  bool pools = std::string_view(path).substr(0, kPools.size()) == kPools;
  if (path == "/reload" || pools) {
    if (auto refused = refuseChange(request)) return *refused;
    if (pools) return memberAction(request, std::string_view(path).substr(kPools.size()));
    return reload(request.peer);
  }
  return text(404, "not found");
}

// GET /events?since=ID&limit=N&format=text: the events after ID (default:
// all kept), at most the newest N (default and most: kEventLogCapacity).
AdminResponse Admin::events(const AdminRequest& request) const {
  uint64_t since = 0;
  size_t limit = kEventLogCapacity;
  bool asText = false;
  std::string_view query = request.query;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    auto number = [&](auto* out) {
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), *out);
      return !value.empty() && error == std::errc{} && end == value.data() + value.size();
    };
    if (name == "since") {
      if (!number(&since))
        return text(400, fmt::format("since must be an event id (a whole number from 0), not \"{}\"",
                                     config::printable(value)));
    } else if (name == "limit") {
      if (!number(&limit) || limit < 1 || limit > kEventLogCapacity)
        return text(400, fmt::format("limit must be a whole number from 1 to {}, not \"{}\"", kEventLogCapacity,
                                     config::printable(value)));
    } else if (name == "format") {
      if (value != "text" && value != "json")
        return text(400, fmt::format("format must be text or json, not \"{}\"", config::printable(value)));
      asText = value == "text";
    } else {
      return text(400, fmt::format("unknown parameter \"{}\" (since, limit and format are known)",
                                   config::printable(name)));
    }
  }
  static const EventLog kNone;
  const EventLog& log = sources_.events ? *sources_.events : kNone;
  if (asText) return text(200, renderEventsText(log, since, limit));
  return json(renderEventsJson(log, since, limit));
}

// At most one reload per reload_min_interval from here (a reload reads and
// builds the whole config: a loop of them would keep the control thread busy).
AdminResponse Admin::reload(std::string_view who) {
  Clock::time_point now = now_();
  if (lastReload_ && now - *lastReload_ < settings_.reloadMinInterval) {
    auto wait = settings_.reloadMinInterval - (now - *lastReload_);
    auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
    ++refused_[static_cast<size_t>(AdminRefusal::ReloadRate)];
    uint64_t heldBack = 0;
    if (reloadLog_.allow(nanoseconds(now), &heldBack))
      log::warn("admin: reload refused: reload_min_interval is {}ms, the last reload was {}ms ago{}",
                settings_.reloadMinInterval.count(),
                std::chrono::duration_cast<std::chrono::milliseconds>(now - *lastReload_).count(),
                heldBack ? fmt::format(" ({} more refused since the last line)", heldBack) : std::string());
    AdminResponse r = text(429, fmt::format("reload refused: at most one every {}ms; retry in {}s",
                                            settings_.reloadMinInterval.count(), seconds));
    r.extraHeaders = fmt::format("Retry-After: {}\r\n", seconds);
    return r;
  }
  lastReload_ = now;
  std::string errors;
  if (!reload_ || !reload_(&errors, who))
    return text(400, fmt::format("reload refused; the running config stays:\n{}", errors));
  return text(200, "reloaded");
}

std::string Admin::renderOwnMetrics() const {
  std::string out =
      "# HELP ringlb_admin_refused_total Admin connections closed at accept (full: every slot in use; "
      "source_share: the source holds its share) and reloads refused by reload_min_interval (reload_rate).\n"
      "# TYPE ringlb_admin_refused_total counter\n";
  for (size_t r = 0; r < refused_.size(); ++r)
    fmt::format_to(std::back_inserter(out), "ringlb_admin_refused_total{{reason=\"{}\"}} {}\n",
                   toString(static_cast<AdminRefusal>(r)), refused_[r]);
  out +=
      "# HELP ringlb_admin_dropped_total Admin connections closed unanswered: no request head within the "
      "head deadline (head_timeout), no whole request within the request deadline (deadline), or the "
      "request head not in when every slot was taken and a new connection needed one (evicted).\n"
      "# TYPE ringlb_admin_dropped_total counter\n";
  for (size_t d = 0; d < dropped_.size(); ++d)
    fmt::format_to(std::back_inserter(out), "ringlb_admin_dropped_total{{reason=\"{}\"}} {}\n",
                   toString(static_cast<AdminDrop>(d)), dropped_[d]);
  return out;
}

// "{pool}/members/{member}/{drain|undrain|weight}", pool and member
// percent-encoded (split on the raw slashes first, so "%2F" is part of a name).
AdminResponse Admin::memberAction(const AdminRequest& request, std::string_view rest) {
  size_t a = rest.find('/');
  if (a == std::string_view::npos || rest.substr(a, 9) != "/members/") return text(404, "not found");
  std::string poolName, memberName;
  bool decoded = percentDecode(rest.substr(0, a), &poolName);
  rest.remove_prefix(a + 9);
  size_t b = rest.rfind('/');
  if (b == std::string_view::npos) return text(404, "not found");
  decoded = percentDecode(rest.substr(0, b), &memberName) && decoded;
  if (!decoded) return text(400, "bad percent-escape in the path (a % must be followed by two hex digits)");
  std::string_view action = rest.substr(b + 1);
  Pool* pool = nullptr;
  for (const auto& p : sources_.runtime->pools)
    if (p->name() == poolName) pool = p.get();
  Member* member = pool ? pool->findMember(memberName) : nullptr;
  if (!member)
    return text(404, fmt::format("no member \"{}\" in pool \"{}\"", config::printable(memberName),
                                 config::printable(poolName)));
  int64_t nowMs = unixMs_ ? unixMs_()
                         : std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  std::string done;
  if (action == "drain" || action == "undrain") {
    bool drain = action == "drain";
    bool was = member->draining.exchange(drain, std::memory_order_relaxed);
    log::info("pool {} member {}: {} (admin)", config::printable(poolName), config::printable(memberName),
              drain ? "draining" : "undrained");
    done = was == drain ? fmt::format("{} (it was already)", action) : std::string(action);
    if (history_) history_->noteState({pool->name(), member->name}, memberState(*member), nowMs);
  } else if (action == "weight") {
    std::string_view body = request.body;
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' '))
      body.remove_suffix(1);
    int weight = 0;
    auto [end, error] = std::from_chars(body.data(), body.data() + body.size(), weight);
    if (error != std::errc{} || end != body.data() + body.size() || weight < 1 || weight > 256)
      return text(400, "the body must be an integer weight from 1 to 256");
    uint32_t was = member->weight.load(std::memory_order_relaxed);
    pool->setWeight(*member, static_cast<uint32_t>(weight));
    done = fmt::format("weight {} (was {})", weight, was);
    log::info("pool {} member {}: weight {} (admin)", config::printable(poolName), config::printable(memberName),
              weight);
  } else {
    return text(404, "not found");
  }
  if (sources_.events) sources_.events->add(nowMs, EventKind::Admin, std::move(done), pool->name(), member->name,
                                            request.peer);
  std::string body = R"({"pool":")";
  appendJsonEscaped(body, pool->name());
  body += R"(","member":")";
  appendJsonEscaped(body, member->name);
  fmt::format_to(std::back_inserter(body), R"(","state":"{}","weight":{}}})" "\n", memberState(*member),
                 member->weight.load());
  return json(std::move(body));
}

}  // namespace lb
