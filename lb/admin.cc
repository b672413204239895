#include "lb/admin.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include <fmt/format.h>

#include "lb/access_log.h"
#include "lb/log.h"
#include "lb/ring/user_data.h"
#include "lb/status_page.h"

namespace lb {
namespace {

constexpr size_t kMaxConnections = 64;
constexpr size_t kNoConnection = ring::kMaxSlot;
constexpr auto kRequestDeadline = std::chrono::seconds(5);

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

}  // namespace

Admin::Admin(ring::Submitter* submitter, int listenFd, std::string token, ReportSources sources)
    : submitter_(submitter), listenFd_(listenFd), token_(std::move(token)), sources_(sources),
      connections_(kMaxConnections) {}

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
void Admin::onAccept(int fd, uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    if (fd < 0)
      acceptPaused_ = true;
    else
      armAccept();
  }
  if (fd < 0) return;
  for (size_t slot = 0; slot < connections_.size(); ++slot) {
    Connection& c = connections_[slot];
    if (c.open || c.inflight > 0) continue;
    c.open = true;
    c.lingering = false;
    c.fd = fd;
    c.received.clear();
    c.response.clear();
    c.sent = 0;
    c.deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    return submitRecv(slot);
  }
  ::close(fd);  // too many admin connections at once
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
  switch (parseAdminRequest(c.received, &request)) {
    case ParseOutcome::NeedMore: return submitRecv(slot);
    case ParseOutcome::Bad: return respond(slot, text(400, "bad request"));
    case ParseOutcome::TooLarge: return respond(slot, text(413, "request too large"));
    case ParseOutcome::Done: {
      AdminResponse response = route(request);
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
    if (c.open && now >= c.deadline) close(slot);
  }
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
  if (token_.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view given = request.authorization;
  if (given.substr(0, kBearer.size()) != kBearer) return false;
  return sameSecret(given.substr(kBearer.size()), token_);
}

AdminResponse Admin::route(const AdminRequest& request) {
  const std::string& path = request.path;
  bool get = request.method == "GET" || request.method == "HEAD";
  if (path == "/" || path == "/status" || path == "/metrics") {
    if (!get) {
      AdminResponse r = text(405, "use GET");
      r.extraHeaders = "Allow: GET, HEAD\r\n";
      return r;
    }
    if (path == "/metrics") {
      AdminResponse r = text(200, renderMetrics(sources_));
      r.contentType = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    if (path == "/status") return json(renderStatusJson(sources_));
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
    std::string errors;
    if (!reload_ || !reload_(&errors))
      return text(400, fmt::format("reload refused; the running config stays:\n{}", errors));
    return text(200, "reloaded");
  }
  return text(404, "not found");
}

// "{pool}/members/{member}/{drain|undrain|weight}"
AdminResponse Admin::memberAction(const AdminRequest& request, std::string_view rest) {
  size_t a = rest.find('/');
  if (a == std::string_view::npos || rest.substr(a, 9) != "/members/") return text(404, "not found");
  std::string_view poolName = rest.substr(0, a);
  rest.remove_prefix(a + 9);
  size_t b = rest.rfind('/');
  if (b == std::string_view::npos) return text(404, "not found");
  std::string_view memberName = rest.substr(0, b);
  std::string_view action = rest.substr(b + 1);
  Pool* pool = nullptr;
  for (const auto& p : sources_.runtime->pools)
    if (p->name() == poolName) pool = p.get();
  Member* member = pool ? pool->findMember(memberName) : nullptr;
  if (!member) return text(404, fmt::format("no member \"{}\" in pool \"{}\"", memberName, poolName));
  if (action == "drain" || action == "undrain") {
    bool drain = action == "drain";
    member->draining.store(drain, std::memory_order_relaxed);
    log::info("pool {} member {}: {} (admin)", poolName, memberName, drain ? "draining" : "undrained");
  } else if (action == "weight") {
    std::string_view body = request.body;
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' '))
      body.remove_suffix(1);
    int weight = 0;
    auto [end, error] = std::from_chars(body.data(), body.data() + body.size(), weight);
    if (error != std::errc{} || end != body.data() + body.size() || weight < 1 || weight > 256)
      return text(400, "the body must be an integer weight from 1 to 256");
    pool->setWeight(*member, static_cast<uint32_t>(weight));
    log::info("pool {} member {}: weight {} (admin)", poolName, memberName, weight);
  } else {
    return text(404, "not found");
  }
  std::string body = R"({"pool":")";
  appendJsonEscaped(body, pool->name());
  body += R"(","member":")";
  appendJsonEscaped(body, member->name);
  fmt::format_to(std::back_inserter(body), R"(","state":"{}","weight":{}}})" "\n", memberState(*member),
                 member->weight.load());
  return json(std::move(body));
}

}  // namespace lb
