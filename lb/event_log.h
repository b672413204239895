#pragma once
// What just happened, for the operator: the last kEventLogCapacity events
// with their time and reason (health transitions, admin actions and who
// asked, reloads, discovery changes, certificate loads, upgrades). Kept by
// the control thread (single-threaded: the admin endpoint reads it there),
// served as GET /events and listed on the status page. Every event also
// has a log line; this is the part an operator sees without the journal.
//
// Bounded: a fixed number of events, each message cut to kEventMaxMessage
// bytes. Ids grow by one per event and are never reused, so a client can
// ask for what came after the last id it saw.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace lb {

inline constexpr size_t kEventLogCapacity = 500;
inline constexpr size_t kEventMaxMessage = 1024;

enum class EventKind : uint8_t {
  Start,        // the process started serving (or took over from an upgrade)
  Health,       // a member went up or down: the probe's (or passive checks') reason
  Admin,        // drain, undrain, weight through the admin endpoint: who = the client's address
  Reload,       // a reload, ok or refused (with its errors); who = "SIGHUP" or the admin client
  Discovery,    // DNS added, removed or moved members
  Certificate,  // a certificate loaded (at start or reload): file, serial, expiry
  Upgrade,      // SIGUSR2: a new process started, took over, or failed
};
std::string_view toString(EventKind kind);  // "start", "health", ...

struct Event {
  uint64_t id = 0;
  int64_t unixMs = 0;
  EventKind kind = EventKind::Start;
  std::string pool;    // empty when not about a pool
  std::string member;  // empty when not about a member
  std::string who;     // who asked, when someone did
  std::string message;
};

class EventLog {
 public:
  explicit EventLog(size_t capacity = kEventLogCapacity) : capacity_(capacity) {}

  // Appends (dropping the oldest when full) and returns the new event's id.
  uint64_t add(int64_t unixMs, EventKind kind, std::string message, std::string pool = {},
               std::string member = {}, std::string who = {});
  // Events with id > afterId, oldest first, at most `limit` (the newest ones).
  std::vector<const Event*> after(uint64_t afterId, size_t limit) const;
  // The newest `n`, newest first.
  std::vector<const Event*> latest(size_t n) const;
  uint64_t lastId() const { return nextId_ - 1; }
  size_t size() const { return events_.size(); }

 private:
  size_t capacity_;
  uint64_t nextId_ = 1;
  std::deque<Event> events_;
};

// GET /events: {"last_id":N,"events":[{"id":..,"time":"ISO","unix_ms":..,
// "kind":"..","pool":..,"member":..,"who":..,"message":".."}, ...]}, oldest
// first (null for empty pool, member, who).
std::string renderEventsJson(const EventLog& log, uint64_t afterId, size_t limit);
// The same as a readable table for `ringlb ctl events`.
std::string renderEventsText(const EventLog& log, uint64_t afterId, size_t limit);

}  // namespace lb
