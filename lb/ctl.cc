#include "lb/ctl.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "config/config.h"

namespace lb {
namespace ctl {
namespace {

constexpr std::string_view kUsage =
    "usage: ringlb ctl [-c CONFIG] [--json] status\n"
    "       ringlb ctl [-c CONFIG] [--json] events [--since ID]\n"
    "       ringlb ctl [-c CONFIG] [--json] drain|undrain POOL MEMBER\n"
    "       ringlb ctl [-c CONFIG] [--json] weight POOL MEMBER N\n"
    "       ringlb ctl [-c CONFIG] reload\n"
    "CONFIG (default /etc/ringlb/ringlb.toml) gives the [admin] listen address and token.\n"
    "Exit status: 0 done, 1 the server refused or failed, 2 usage or config error,\n"
    "3 the admin endpoint could not be reached.\n";

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr size_t kMaxResponse = 64 * 1024 * 1024;

bool isDigits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// A JSON value's extent, by a small strict reader: enough to find the few
// fields ctl prints, and to refuse what is not JSON rather than misread it.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  // The object's top-level `key`: a string decoded, a number or literal as
  // written. Fails (none) on malformed text anywhere in the object.
  std::optional<std::string> field(std::string_view key) {
    std::optional<std::string> found;
    skipSpace();
    if (!take('{')) return std::nullopt;
    skipSpace();
    if (take('}')) return finish() ? found : std::nullopt;
    for (;;) {
      std::string name;
      skipSpace();
      if (!string(&name)) return std::nullopt;
      skipSpace();
      if (!take(':')) return std::nullopt;
      skipSpace();
      std::string value;
      bool scalar = false;
      if (!this->value(&value, &scalar, 0)) return std::nullopt;
      if (name == key && scalar) found = std::move(value);
      skipSpace();
      if (take('}')) break;
      if (!take(',')) return std::nullopt;
    }
    return finish() ? found : std::nullopt;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool finish() {
    skipSpace();
    return at_ == text_.size();
  }
  void skipSpace() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\n' || text_[at_] == '\r' || text_[at_] == '\t'))
      ++at_;
  }
  bool take(char c) {
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word, std::string* out) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    *out = word;
    return true;
  }
  bool hex4(uint32_t* out) {
    if (text_.size() - at_ < 4) return false;
    *out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[at_++];
      uint32_t digit = c >= '0' && c <= '9'   ? static_cast<uint32_t>(c - '0')
                       : c >= 'a' && c <= 'f' ? static_cast<uint32_t>(c - 'a' + 10)
                       : c >= 'A' && c <= 'F' ? static_cast<uint32_t>(c - 'A' + 10)
                                              : 16u;
      if (digit == 16) return false;
      *out = *out * 16 + digit;
    }
    return true;
  }
  static void appendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool string(std::string* out) {
    if (!take('"')) return false;
    out->clear();
    while (at_ < text_.size()) {
      char c = text_[at_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (at_ == text_.size()) return false;
      char e = text_[at_++];
      switch (e) {
        case '"': case '\\': case '/': *out += e; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {  // a high surrogate: its low one must follow
            uint32_t low = 0;
            if (!take('\\') || !take('u') || !hex4(&low) || low < 0xDC00 || low >= 0xE000) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return false;
          }
          appendUtf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;  // unterminated
  }
  bool number(std::string* out) {
    size_t start = at_;
    take('-');
    size_t digits = at_;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
    if (at_ == digits) return false;
    if (take('.')) {
      size_t fraction = at_;
      while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
      if (at_ == fraction) return false;
    }
    if (take('e') || take('E')) {
      if (!take('+')) take('-');
      size_t exponent = at_;
      while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') ++at_;
      if (at_ == exponent) return false;
    }
    *out = text_.substr(start, at_ - start);
    return true;
  }
  // Any value; `scalar` false for objects and arrays (skipped, not kept).
  bool value(std::string* out, bool* scalar, int depth) {
    if (depth > kMaxDepth || at_ >= text_.size()) return false;
    *scalar = true;
    char c = text_[at_];
    if (c == '"') return string(out);
    if (c == 't') return literal("true", out);
    if (c == 'f') return literal("false", out);
    if (c == 'n') return literal("null", out);
    if (c == '-' || (c >= '0' && c <= '9')) return number(out);
    if (c != '{' && c != '[') return false;
    *scalar = false;
    char close = c == '{' ? '}' : ']';
    ++at_;
    skipSpace();
    if (take(close)) return true;
    for (;;) {
      skipSpace();
      std::string ignored;
      bool inner = false;
      if (close == '}') {
        if (!string(&ignored)) return false;
        skipSpace();
        if (!take(':')) return false;
        skipSpace();
      }
      if (!value(&ignored, &inner, depth + 1)) return false;
      skipSpace();
      if (take(close)) return true;
      if (!take(',')) return false;
    }
  }

  std::string_view text_;
  size_t at_ = 0;
};

std::string_view trimLineEnds(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// Case-insensitive ASCII comparison of a header name.
bool sameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

enum class Exchange { Ok, Unreachable, Failed };

// Connects, sends `request`, reads until the server closes (or kTimeout
// has passed since the start): one blocking socket, no retries.
Exchange exchange(const config::Address& address, const std::string& request, std::string* response,
                  std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = fmt::format("socket: {}", std::strerror(errno));
    return Exchange::Unreachable;
  }
  timeval timeout{static_cast<time_t>(kTimeout.count()), 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);  // bounds connect() too
  if (::connect(fd, address.sockaddrPtr(), address.length) != 0) {
    int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
    *error = fmt::format("cannot connect to {}: {}", address.text, std::strerror(e));
    ::close(fd);
    return Exchange::Unreachable;
  }
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = fmt::format("sending to {}: {}", address.text, std::strerror(n < 0 ? errno : EPIPE));
      ::close(fd);
      return Exchange::Failed;
    }
    sent += static_cast<size_t>(n);
  }
  char buffer[16384];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      *error = fmt::format("no whole answer from {} within {}s", address.text, kTimeout.count());
      ::close(fd);
      return Exchange::Failed;
    }
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the deadline check above ends it
    ssize_t n = ready < 0 ? -1 : ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = fmt::format("reading from {}: {}", address.text, std::strerror(errno));
      ::close(fd);
      return Exchange::Failed;
    }
    if (n == 0) break;
    response->append(buffer, static_cast<size_t>(n));
    if (response->size() > kMaxResponse) {
      *error = fmt::format("the answer from {} is larger than {} bytes", address.text, kMaxResponse);
      ::close(fd);
      return Exchange::Failed;
    }
  }
  ::close(fd);
  return Exchange::Ok;
}

}  // namespace

std::optional<Command> parseArgs(std::span<char* const> args, std::string* error) {
  Command command;
  std::vector<std::string_view> words;
  bool sinceGiven = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    auto next = [&](std::string_view option) -> std::optional<std::string_view> {
      if (i + 1 >= args.size()) {
        *error = fmt::format("{} needs a value", option);
        return std::nullopt;
      }
      return std::string_view(args[++i]);
    };
    if (arg == "-c" || arg == "--config") {
      auto value = next(arg);
      if (!value) return std::nullopt;
      command.configPath = *value;
    } else if (arg == "--json") {
      command.json = true;
    } else if (arg == "--since") {
      auto value = next(arg);
      if (!value) return std::nullopt;
      auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), command.since);
      if (!isDigits(*value) || ec != std::errc{} || end != value->data() + value->size()) {
        *error = fmt::format("--since needs an event id (a number), not \"{}\"", config::printable(*value));
        return std::nullopt;
      }
      sinceGiven = true;
    } else if (arg == "--") {  // the rest are arguments (a member named "-x")
      words.insert(words.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    } else if (arg.size() > 1 && arg[0] == '-') {
      *error = fmt::format("unknown option \"{}\"", config::printable(arg));
      return std::nullopt;
    } else {
      words.push_back(arg);
    }
  }
  if (words.empty()) {
    *error = "no command given";
    return std::nullopt;
  }
  std::string_view verb = words[0];
  size_t want = 1;
  if (verb == "status") {
    command.action = Action::Status;
  } else if (verb == "events") {
    command.action = Action::Events;
  } else if (verb == "drain" || verb == "undrain") {
    command.action = verb == "drain" ? Action::Drain : Action::Undrain;
    want = 3;
  } else if (verb == "weight") {
    command.action = Action::Weight;
    want = 4;
  } else if (verb == "reload") {
    command.action = Action::Reload;
  } else {
    *error = fmt::format("unknown command \"{}\"", config::printable(verb));
    return std::nullopt;
  }
  if (words.size() != want) {
    *error = fmt::format("{} takes {} argument{}", verb, want - 1, want == 2 ? "" : "s");
    return std::nullopt;
  }
  if (sinceGiven && command.action != Action::Events) {
    *error = "--since is for events";
    return std::nullopt;
  }
  if (want >= 3) {
    command.pool = words[1];
    command.member = words[2];
  }
  if (want == 4) command.weight = words[3];
  return command;
}

std::string percentEncode(std::string_view text) {
  std::string out;
  for (char c : text) {
    bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '.' || c == '_' || c == '~';
    if (plain)
      out += c;
    else
      fmt::format_to(std::back_inserter(out), "%{:02X}", static_cast<unsigned char>(c));
  }
  return out;
}

Request requestFor(const Command& command) {
  auto member = [&](std::string_view action) {
    return fmt::format("/pools/{}/members/{}/{}", percentEncode(command.pool), percentEncode(command.member),
                       action);
  };
  switch (command.action) {
    case Action::Status: return {"GET", command.json ? "/status" : "/status?format=text", ""};
    case Action::Events:
      return {"GET", fmt::format("/events?{}since={}", command.json ? "" : "format=text&", command.since), ""};
    case Action::Drain: return {"POST", member("drain"), ""};
    case Action::Undrain: return {"POST", member("undrain"), ""};
    case Action::Weight: return {"POST", member("weight"), command.weight};
    case Action::Reload: return {"POST", "/reload", ""};
  }
  return {};
}

std::string serializeRequest(const Request& request, std::string_view host, std::string_view token) {
  std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringlb-ctl\r\nConnection: close\r\n",
                                request.method, request.target, host);
  if (!token.empty()) fmt::format_to(std::back_inserter(out), "Authorization: Bearer {}\r\n", token);
  if (request.method == "POST")
    fmt::format_to(std::back_inserter(out), "Content-Type: text/plain\r\nContent-Length: {}\r\n", request.body.size());
  out += "\r\n";
  out += request.body;
  return out;
}

std::optional<Response> parseResponse(std::string_view raw, std::string* whyNot) {
  size_t headEnd = raw.find("\r\n\r\n");
  if (headEnd == std::string_view::npos) {
    *whyNot = raw.empty() ? "the server closed without an answer" : "the answer ended within its head";
    return std::nullopt;
  }
  std::string_view head = raw.substr(0, headEnd);
  std::string_view body = raw.substr(headEnd + 4);
  size_t lineEnd = head.find("\r\n");
  std::string_view statusLine = head.substr(0, lineEnd);
  // "HTTP/1.x NNN reason"
  if (statusLine.size() < 12 || statusLine.substr(0, 7) != "HTTP/1." || statusLine[8] != ' ' ||
      !isDigits(statusLine.substr(9, 3)) || (statusLine.size() > 12 && statusLine[12] != ' ')) {
    *whyNot = "not an HTTP answer";
    return std::nullopt;
  }
  Response response;
  std::from_chars(statusLine.data() + 9, statusLine.data() + 12, response.status);
  if (statusLine.size() > 13) response.reason = statusLine.substr(13);
  std::optional<size_t> length;
  std::string_view headers = lineEnd == std::string_view::npos ? std::string_view() : head.substr(lineEnd + 2);
  while (!headers.empty()) {
    size_t end = headers.find("\r\n");
    std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view() : headers.substr(end + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *whyNot = "a malformed header in the answer";
      return std::nullopt;
    }
    if (!sameName(line.substr(0, colon), "Content-Length")) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    size_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (!isDigits(value) || ec != std::errc{} || ptr != value.data() + value.size() || (length && *length != n)) {
      *whyNot = "a bad Content-Length in the answer";
      return std::nullopt;
    }
    length = n;
  }
  if (length) {
    if (body.size() < *length) {
      *whyNot = fmt::format("the answer was cut short ({} of {} body bytes)", body.size(), *length);
      return std::nullopt;
    }
    body = body.substr(0, *length);
  }
  response.body = body;
  return response;
}

std::optional<std::string> jsonField(std::string_view json, std::string_view key) {
  return JsonReader(json).field(key);
}

std::string confirmation(const Command& command, const Response& response) {
  if (command.action == Action::Reload) return std::string(trimLineEnds(response.body));
  auto pool = jsonField(response.body, "pool");
  auto member = jsonField(response.body, "member");
  auto state = jsonField(response.body, "state");
  auto weight = jsonField(response.body, "weight");
  if (!pool || !member || !state || !weight)  // an answer of another shape: shown as it came
    return std::string(trimLineEnds(response.body));
  return fmt::format("pool {} member {}: {} (weight {})", config::printable(*pool), config::printable(*member),
                     config::printable(*state), config::printable(*weight));
}

}  // namespace ctl

int runCtl(std::span<char* const> args) {
  for (std::string_view arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", ctl::kUsage);
      return 0;
    }
  }
  std::string usageError;
  std::optional<ctl::Command> command = ctl::parseArgs(args, &usageError);
  if (!command) {
    fmt::print(stderr, "ringlb ctl: {}\n{}", usageError, ctl::kUsage);
    return 2;
  }
  config::LoadResult loaded = config::loadFile(command->configPath);
  for (const config::Error& error : loaded.errors) fmt::print(stderr, "{}\n", config::formatError(error));
  if (!loaded.config) return 2;
  const config::Admin& admin = loaded.config->admin;
  if (!admin.listen) {
    fmt::print(stderr, "ringlb ctl: {} has no admin endpoint ([admin] listen): nothing to talk to\n",
               command->configPath);
    return 2;
  }
  ctl::Request request = ctl::requestFor(*command);
  std::string raw;
  std::string error;
  switch (ctl::exchange(*admin.listen, ctl::serializeRequest(request, admin.listen->text, admin.token), &raw, &error)) {
    case ctl::Exchange::Unreachable: fmt::print(stderr, "ringlb ctl: {}\n", error); return 3;
    case ctl::Exchange::Failed: fmt::print(stderr, "ringlb ctl: {}\n", error); return 1;
    case ctl::Exchange::Ok: break;
  }
  std::optional<ctl::Response> response = ctl::parseResponse(raw, &error);
  if (!response) {
    fmt::print(stderr, "ringlb ctl: {}: {}\n", admin.listen->text, error);
    return 1;
  }
  if (response->status < 200 || response->status > 299) {
    fmt::print(stderr, "ringlb ctl: {} {}: {}\n", response->status, response->reason,
               ctl::trimLineEnds(response->body));
    return 1;
  }
  bool showBody = command->json || command->action == ctl::Action::Status || command->action == ctl::Action::Events;
  if (showBody) {
    fmt::print("{}", response->body);
    if (!response->body.empty() && response->body.back() != '\n') fmt::print("\n");
  } else {
    fmt::print("{}\n", ctl::confirmation(*command, *response));
  }
  return 0;
}

}  // namespace lb
