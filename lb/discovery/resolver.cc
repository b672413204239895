#include "lb/discovery/resolver.h"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <list>

#include "lb/discovery/dns_answer.h"
#include "lb/discovery/socket_polls.h"
#include "lb/ring/user_data.h"

namespace lb::discovery {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxSrvTargets = 64;   // targets whose addresses one SRV lookup looks up

int typeCode(config::DiscoverType type) {
  switch (type) {
    case config::DiscoverType::A: return 1;
    case config::DiscoverType::AAAA: return 28;
    case config::DiscoverType::SRV: return 33;
  }
  return 0;
}

LookupStatus statusOf(int aresStatus) {
  switch (aresStatus) {
    case ARES_SUCCESS: return LookupStatus::Ok;
    case ARES_ENOTFOUND: return LookupStatus::NoSuchName;
    case ARES_ENODATA: return LookupStatus::NoData;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ENOTIMP:
    case ARES_EFORMERR: return LookupStatus::ServerFailure;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
    case ARES_EOF: return LookupStatus::Timeout;
    case ARES_EBADRESP: return LookupStatus::Malformed;
    default: return LookupStatus::LocalError;  // ENOMEM, EBADNAME, ENOTINITIALIZED, ECANCELLED, ...
  }
}

// c-ares 1.18 passes a SERVFAIL, REFUSED or NOTIMP answer over to the next
// server (and the next attempt); when every one has failed so, it reports
// ECONNREFUSED, as for unreachable servers: both are Timeout here.
std::string detailOf(int aresStatus) {
  std::string detail = ares_strerror(aresStatus);
  if (aresStatus == ARES_ECONNREFUSED) detail += " (unreachable, or every answer was SERVFAIL or REFUSED)";
  return detail;
}

bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    auto& x = reinterpret_cast<const sockaddr_in&>(a);
    auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
}

sockaddr_storage withPort(sockaddr_storage address, uint16_t port) {
  if (address.ss_family == AF_INET) reinterpret_cast<sockaddr_in&>(address).sin_port = htons(port);
  if (address.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6&>(address).sin6_port = htons(port);
  return address;
}

// Appends unless an equal endpoint is already there (the first one stays).
void addRecord(std::vector<Record>* records, const Record& record) {
  for (const Record& existing : *records) {
    if (sameEndpoint(existing.address, record.address)) return;
  }
  records->push_back(record);
}

}  // namespace

std::string_view toString(LookupStatus status) {
  switch (status) {
    case LookupStatus::Ok: return "ok";
    case LookupStatus::NoSuchName: return "no_such_name";
    case LookupStatus::NoData: return "no_data";
    case LookupStatus::ServerFailure: return "server_failure";
    case LookupStatus::Timeout: return "timeout";
    case LookupStatus::Malformed: return "malformed";
    case LookupStatus::LocalError: return "local_error";
  }
  return "unknown";
}

struct Resolver::Impl {
  // One lookup as the caller sees it. An SRV lookup is the SRV query, then
  // (phase 2) the A and AAAA queries of the targets that the additional
  // section did not give addresses for.
  struct Lookup {
    std::string name;
    config::DiscoverType type = config::DiscoverType::A;
    uint16_t port = 0;
    Callback done;
    SteadyClock::time_point deadline;
    bool finished = false;  // result handed over (or queued); later c-ares answers are dropped
    // SRV only.
    DnsAnswer srv;
    struct Target {
      std::string name;
      std::vector<AddressRecord> fromAdditional;
      LookupResult v4, v6;  // address lookups' results (status Ok with no records until answered)
      std::vector<AddressRecord> v4Addresses, v6Addresses;  // owned by the target's canonical name
    };
    std::vector<Target> targets;
    unsigned outstanding = 0;  // target queries not answered yet
  };
  // What c-ares's `arg` points to: one query of one lookup. Owned by
  // c-ares until its callback runs (every query's callback runs exactly
  // once, ARES_EDESTRUCTION from ares_destroy included).
  struct Query {
    Impl* impl;
    std::shared_ptr<Lookup> lookup;
    int target = -1;  // -1: the lookup's own question; else the target index
    bool v6 = false;
  };

  ring::Submitter* submitter = nullptr;
  ares_channel channel = nullptr;
  bool started = false;
  bool destroying = false;
  SteadyClock::duration budget{};  // timeout x attempts x servers: a lookup's deadline
  SocketPolls polls{[this](int fd, unsigned mask, uint64_t userData) { addPoll(fd, mask, userData); },
                    [this](uint64_t userData) { removePoll(userData); }};
  std::list<std::shared_ptr<Lookup>> active;  // not finished yet
  std::deque<std::pair<Callback, LookupResult>> ready;  // finished, callback not run yet

  ~Impl() {
    destroying = true;
    if (channel) ares_destroy(channel);  // EDESTRUCTION callbacks free the Query objects
  }

  static void onSocketState(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<Impl*>(data)->polls.set(fd, readable != 0, writable != 0);
  }

  static void onAnswer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    std::unique_ptr<Query> query(static_cast<Query*>(arg));
    if (status == ARES_EDESTRUCTION || query->impl->destroying || query->lookup->finished) return;
    std::span<const uint8_t> message;
    if (abuf && alen > 0) message = {abuf, static_cast<size_t>(alen)};
    if (query->target < 0) {
      query->impl->onMainAnswer(query->lookup, status, message);
    } else {
      query->impl->onTargetAnswer(query->lookup, static_cast<size_t>(query->target), query->v6, status, message);
    }
  }

  void addPoll(int fd, unsigned mask, uint64_t userData) {
    io_uring_sqe* sqe = submitter->getSqe();
    io_uring_prep_poll_add(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, userData);
  }

  void removePoll(uint64_t userData) {
    io_uring_sqe* sqe = submitter->getSqe();
    io_uring_prep_poll_remove(sqe, userData);
    io_uring_sqe_set_data64(sqe, ring::encodeOwner(ring::Owner::None));
  }

  void onPollCompletion(uint64_t userData, int result) {
    std::optional<SocketPolls::Ready> ready = polls.onCompletion(userData, result);
    if (!ready) return;  // stale
    ares_process_fd(channel, ready->read ? ready->fd : ARES_SOCKET_BAD, ready->write ? ready->fd : ARES_SOCKET_BAD);
    polls.rearm(ready->fd);
  }

  void finish(const std::shared_ptr<Lookup>& lookup, LookupResult result) {
    if (lookup->finished) return;
    lookup->finished = true;
    active.remove(lookup);
    ready.emplace_back(std::move(lookup->done), std::move(result));
  }

  // Runs the callbacks of finished lookups, outside any c-ares call (a
  // callback may start lookups).
  void deliverReady() {
    while (!ready.empty()) {
      auto [done, result] = std::move(ready.front());
      ready.pop_front();
      if (done) done(std::move(result));
    }
  }

  void ask(const std::shared_ptr<Lookup>& lookup, const std::string& name, int type, int target, bool v6) {
    auto* query = new Query{this, lookup, target, v6};
    ares_query(channel, name.c_str(), 1 /* C_IN */, type, &Impl::onAnswer, query);
  }

  static LookupResult failure(LookupStatus status, std::string detail) {
    LookupResult result;
    result.status = status;
    result.detail = std::move(detail);
    return result;
  }

  // The answer to a lookup's own question: its records, or (SRV) phase 2.
  void onMainAnswer(const std::shared_ptr<Lookup>& lookup, int status, std::span<const uint8_t> message) {
    if (status != ARES_SUCCESS) return finish(lookup, failure(statusOf(status), detailOf(status)));
    std::string why;
    std::optional<DnsAnswer> answer = parseDnsAnswer(message, lookup->name, lookup->type, &why);
    if (!answer) return finish(lookup, failure(LookupStatus::Malformed, why));
    if (lookup->type != config::DiscoverType::SRV) {
      if (answer->addresses.empty())
        return finish(lookup, failure(LookupStatus::NoData, "no records of the type (after CNAMEs)"));
      LookupResult result;
      for (const AddressRecord& record : answer->addresses)
        addRecord(&result.records, Record{withPort(record.address, lookup->port), 0, 0});
      result.ttl = std::chrono::seconds(answer->ttl);
      return finish(lookup, std::move(result));
    }
    if (answer->services.empty()) return finish(lookup, failure(LookupStatus::NoData, "no SRV records (after CNAMEs)"));
    lookup->srv = std::move(*answer);
    startTargets(lookup);
  }

  void startTargets(const std::shared_ptr<Lookup>& lookup) {
    for (const SrvRecord& srv : lookup->srv.services) {
      if (srv.target.empty()) continue;  // "." : no service here (RFC 2782)
      bool known = std::any_of(lookup->targets.begin(), lookup->targets.end(),
                               [&](const Lookup::Target& t) { return t.name == srv.target; });
      if (known) continue;
      if (lookup->targets.size() == kMaxSrvTargets) break;
      Lookup::Target target;
      target.name = srv.target;
      for (const AddressRecord& record : lookup->srv.additional) {
        if (record.owner == srv.target) target.fromAdditional.push_back(record);
      }
      lookup->targets.push_back(std::move(target));
    }
    lookup->deadline = SteadyClock::now() + budget;  // phase 2 gets a budget of its own
    std::vector<size_t> toAsk;
    for (size_t i = 0; i < lookup->targets.size(); ++i) {
      if (lookup->targets[i].fromAdditional.empty()) toAsk.push_back(i);
    }
    lookup->outstanding = static_cast<unsigned>(toAsk.size() * 2);
    for (size_t i : toAsk) {
      // Each ask may answer at once (a bad name): outstanding counts them all first.
      ask(lookup, lookup->targets[i].name, typeCode(config::DiscoverType::A), static_cast<int>(i), false);
      ask(lookup, lookup->targets[i].name, typeCode(config::DiscoverType::AAAA), static_cast<int>(i), true);
    }
    if (toAsk.empty()) assembleSrv(lookup);
  }

  void onTargetAnswer(const std::shared_ptr<Lookup>& lookup, size_t index, bool v6, int status,
                      std::span<const uint8_t> message) {
    Lookup::Target& target = lookup->targets[index];
    LookupResult& result = v6 ? target.v6 : target.v4;
    config::DiscoverType type = v6 ? config::DiscoverType::AAAA : config::DiscoverType::A;
    if (status != ARES_SUCCESS) {
      result = failure(statusOf(status), detailOf(status));
    } else {
      std::string why;
      std::optional<DnsAnswer> answer = parseDnsAnswer(message, target.name, type, &why);
      if (!answer) {
        result = failure(LookupStatus::Malformed, why);
      } else {
        (v6 ? target.v6Addresses : target.v4Addresses) = std::move(answer->addresses);
      }
    }
    if (--lookup->outstanding == 0) assembleSrv(lookup);
  }

  // One Record per (SRV record, target address), in answer order. A target
  // whose lookup failed (timeout, server failure, ...) fails the whole
  // lookup, so discovery keeps its last good set rather than lose that
  // target's members; a target with no address (NXDOMAIN, no data) is
  // skipped.
  void assembleSrv(const std::shared_ptr<Lookup>& lookup) {
    for (const Lookup::Target& target : lookup->targets) {
      for (const LookupResult* part : {&target.v4, &target.v6}) {
        if (part->status == LookupStatus::Ok || part->status == LookupStatus::NoData ||
            part->status == LookupStatus::NoSuchName)
          continue;
        return finish(lookup, failure(part->status, "SRV target " + target.name + ": " + part->detail));
      }
    }
    LookupResult result;
    uint32_t ttl = lookup->srv.ttl;
    for (const SrvRecord& srv : lookup->srv.services) {
      auto target = std::find_if(lookup->targets.begin(), lookup->targets.end(),
                                 [&](const Lookup::Target& t) { return t.name == srv.target; });
      if (target == lookup->targets.end()) continue;  // "." or beyond the 64 looked up
      auto add = [&](const std::vector<AddressRecord>& addresses) {
        for (const AddressRecord& address : addresses) {
          addRecord(&result.records, Record{withPort(address.address, srv.port), srv.priority, srv.weight});
          ttl = std::min(ttl, address.ttl);
        }
      };
      if (!target->fromAdditional.empty()) {
        add(target->fromAdditional);
      } else {
        add(target->v4Addresses);
        add(target->v6Addresses);
      }
    }
    if (result.records.empty())
      return finish(lookup, failure(LookupStatus::NoData, "no SRV target has an address"));
    result.ttl = std::chrono::seconds(ttl);
    finish(lookup, std::move(result));
  }

  void expire(SteadyClock::time_point now) {
    std::vector<std::shared_ptr<Lookup>> late;
    for (const auto& lookup : active) {
      if (now >= lookup->deadline) late.push_back(lookup);
    }
    for (const auto& lookup : late) finish(lookup, failure(LookupStatus::Timeout, "no answer in time"));
  }
};

Resolver::Resolver(ring::Submitter* submitter) : impl_(std::make_unique<Impl>()) { impl_->submitter = submitter; }

Resolver::~Resolver() = default;

bool Resolver::start(const config::Global::Dns& dns, std::string* whyNot) {
  static const int libraryStatus = ares_library_init(ARES_LIB_INIT_ALL);
  auto fail = [&](const std::string& why) {
    if (whyNot) *whyNot = why;
    return false;
  };
  if (libraryStatus != ARES_SUCCESS) return fail(std::string("ares_library_init: ") + ares_strerror(libraryStatus));
  if (impl_->channel) return fail("the resolver is already started");

  ares_options options{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  options.sock_state_cb = &Impl::onSocketState;
  options.sock_state_cb_data = impl_.get();
  auto timeoutMs = std::chrono::duration_cast<std::chrono::milliseconds>(dns.timeout).count();
  options.timeout = static_cast<int>(std::clamp<int64_t>(timeoutMs, 1, 3600 * 1000));
  options.tries = std::max(1, dns.attempts);
  // No search domains, no HOSTALIASES: the name is asked as written.
  // Without EDNS a long answer comes truncated and c-ares asks again over TCP.
  options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  int status = ares_init_options(&impl_->channel, &options, mask);
  if (status != ARES_SUCCESS) {
    impl_->channel = nullptr;
    return fail(std::string("ares_init_options: ") + ares_strerror(status));
  }

  if (!dns.servers.empty()) {
    std::vector<ares_addr_port_node> nodes(dns.servers.size());
    for (size_t i = 0; i < dns.servers.size(); ++i) {
      const config::Address& server = dns.servers[i];
      ares_addr_port_node& node = nodes[i];
      node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
      node.family = server.family();
      if (server.family() == AF_INET) {
        node.addr.addr4 = reinterpret_cast<const sockaddr_in&>(server.storage).sin_addr;
      } else {
        std::memcpy(&node.addr.addr6, &reinterpret_cast<const sockaddr_in6&>(server.storage).sin6_addr, 16);
      }
      node.udp_port = node.tcp_port = server.port();
    }
    status = ares_set_servers_ports(impl_->channel, nodes.data());
    if (status != ARES_SUCCESS) return fail(std::string("ares_set_servers_ports: ") + ares_strerror(status));
  }
  size_t servers = dns.servers.size();
  if (servers == 0) {
    ares_addr_port_node* list = nullptr;
    if (ares_get_servers_ports(impl_->channel, &list) == ARES_SUCCESS) {
      for (ares_addr_port_node* node = list; node; node = node->next) ++servers;
      ares_free_data(list);
    }
  }
  impl_->budget = options.timeout * std::chrono::milliseconds(1) * options.tries * std::max<size_t>(1, servers);
  impl_->started = true;
  return true;
}

void Resolver::lookup(const std::string& name, config::DiscoverType type, uint16_t port, Callback done) {
  auto lookup = std::make_shared<Impl::Lookup>();
  lookup->name = name;
  lookup->type = type;
  lookup->port = port;
  lookup->done = std::move(done);
  lookup->deadline = SteadyClock::now() + impl_->budget;
  impl_->active.push_back(lookup);
  if (!impl_->started) {
    return impl_->finish(lookup, Impl::failure(LookupStatus::LocalError, "DNS is not set up"));
  }
  impl_->ask(lookup, name, typeCode(type), -1, false);
}

void Resolver::onCompletion(uint64_t userData, int result) {
  impl_->onPollCompletion(userData, result);
  impl_->deliverReady();
}

void Resolver::onTick() {
  if (impl_->channel) ares_process_fd(impl_->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  impl_->expire(SteadyClock::now());
  impl_->deliverReady();
}

size_t Resolver::pending() const { return impl_->active.size() + impl_->ready.size(); }

}  // namespace lb::discovery
