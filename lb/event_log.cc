#include "lb/event_log.h"

#include <fmt/format.h>

#include <algorithm>

#include "lb/access_log.h"
#include "lb/metrics.h"

namespace lb {

namespace {

// The longest prefix of `text` of at most `max` bytes that does not end
// inside a UTF-8 sequence.
void cutAtCharacter(std::string& text, size_t max) {
  if (text.size() <= max) return;
  size_t cut = max;
  // Bytes 10xxxxxx continue a character; back off to where it started.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
}

// Bytes that are not UTF-8 (a backend's reply quoted in a probe's reason)
// become '?', so that the JSON of GET /events is always valid.
void replaceInvalidUtf8(std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    auto lead = static_cast<unsigned char>(text[i]);
    size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k)
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    if (!valid) {
      text[i++] = '?';
      continue;
    }
    i += length;
  }
}

void appendJsonStringOrNull(std::string& out, std::string_view text) {
  if (text.empty()) {
    out += "null";
    return;
  }
  out += '"';
  appendJsonEscaped(out, text);
  out += '"';
}

int64_t unixSeconds(int64_t unixMs) { return unixMs >= 0 ? unixMs / 1000 : (unixMs - 999) / 1000; }

// A field of the text table: control characters (a terminal would act on
// them) shown as '?'. Newlines are kept only in the message, where the
// table indents them.
std::string printable(std::string_view text, bool keepNewlines) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n' && keepNewlines)
      out += c;
    else if (u < 0x20 || u == 0x7f)
      out += '?';
    else
      out += c;
  }
  return out;
}

std::string subjectOf(const Event& e) {
  if (e.pool.empty() && e.member.empty()) return "-";
  if (e.member.empty()) return e.pool;
  return e.pool + "/" + e.member;
}

}  // namespace

std::string_view toString(EventKind kind) {
  switch (kind) {
    case EventKind::Start: return "start";
    case EventKind::Health: return "health";
    case EventKind::Admin: return "admin";
    case EventKind::Reload: return "reload";
    case EventKind::Discovery: return "discovery";
    case EventKind::Certificate: return "certificate";
    case EventKind::Upgrade: return "upgrade";
  }
  return "unknown";
}

uint64_t EventLog::add(int64_t unixMs, EventKind kind, std::string message, std::string pool,
                       std::string member, std::string who) {
  uint64_t id = nextId_++;
  if (capacity_ == 0) return id;
  cutAtCharacter(message, kEventMaxMessage);
  for (std::string* text : {&message, &pool, &member, &who}) replaceInvalidUtf8(*text);
  events_.push_back(Event{id, unixMs, kind, std::move(pool), std::move(member), std::move(who),
                          std::move(message)});
  while (events_.size() > capacity_) events_.pop_front();
  return id;
}

std::vector<const Event*> EventLog::after(uint64_t afterId, size_t limit) const {
  std::vector<const Event*> out;
  if (events_.empty() || limit == 0) return out;
  // Ids in events_ are consecutive, so the first one wanted is found by
  // arithmetic.
  uint64_t firstId = events_.front().id;
  size_t from = afterId >= firstId ? static_cast<size_t>(afterId - firstId + 1) : 0;
  if (from >= events_.size()) return out;
  size_t count = events_.size() - from;
  if (count > limit) from += count - limit;  // the newest `limit` of them
  for (size_t i = from; i < events_.size(); ++i) out.push_back(&events_[i]);
  return out;
}

std::vector<const Event*> EventLog::latest(size_t n) const {
  std::vector<const Event*> out;
  size_t count = std::min(n, events_.size());
  for (size_t i = 0; i < count; ++i) out.push_back(&events_[events_.size() - 1 - i]);
  return out;
}

std::string renderEventsJson(const EventLog& log, uint64_t afterId, size_t limit) {
  std::string out = fmt::format(R"({{"last_id":{},"events":[)", log.lastId());
  bool first = true;
  for (const Event* e : log.after(afterId, limit)) {
    fmt::format_to(std::back_inserter(out), R"({}{{"id":{},"time":"{}","unix_ms":{},"kind":"{}","pool":)",
                   first ? "" : ",", e->id, isoTime(unixSeconds(e->unixMs)), e->unixMs, toString(e->kind));
    first = false;
    appendJsonStringOrNull(out, e->pool);
    out += R"(,"member":)";
    appendJsonStringOrNull(out, e->member);
    out += R"(,"who":)";
    appendJsonStringOrNull(out, e->who);
    out += R"(,"message":")";
    appendJsonEscaped(out, e->message);
    out += "\"}";
  }
  out += "]}\n";
  return out;
}

std::string renderEventsText(const EventLog& log, uint64_t afterId, size_t limit) {
  struct Row {
    std::string id, time, kind, subject, who, message;
  };
  std::vector<Row> rows;
  rows.push_back({"ID", "TIME", "KIND", "POOL/MEMBER", "WHO", "MESSAGE"});
  for (const Event* e : log.after(afterId, limit))
    rows.push_back({std::to_string(e->id), isoTime(unixSeconds(e->unixMs)), std::string(toString(e->kind)),
                    printable(subjectOf(*e), false), e->who.empty() ? "-" : printable(e->who, false),
                    printable(e->message, true)});
  size_t widths[5] = {};
  for (const Row& r : rows) {
    const std::string* cells[5] = {&r.id, &r.time, &r.kind, &r.subject, &r.who};
    for (size_t c = 0; c < 5; ++c) widths[c] = std::max(widths[c], cells[c]->size());
  }
  size_t messageColumn = 0;
  for (size_t w : widths) messageColumn += w + 2;

  std::string out;
  for (const Row& r : rows) {
    fmt::format_to(std::back_inserter(out), "{:>{}}  {:<{}}  {:<{}}  {:<{}}  {:<{}}  ", r.id, widths[0], r.time,
                   widths[1], r.kind, widths[2], r.subject, widths[3], r.who, widths[4]);
    // A message of several lines (a refused reload's errors) continues
    // under its own column.
    std::string_view message = r.message;
    while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
    for (size_t newline; (newline = message.find('\n')) != std::string_view::npos;) {
      out += message.substr(0, newline);
      out += '\n';
      out.append(messageColumn, ' ');
      message.remove_prefix(newline + 1);
    }
    out += message;
    out += '\n';
  }
  return out;
}

}  // namespace lb
