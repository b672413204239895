// Scalar value syntaxes of the config file: socket addresses, durations and
// address blocks. The parsers are strict: what they accept has exactly one
// meaning.

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "config/config.h"

namespace config {
namespace {

std::nullopt_t fail(std::string* whyNot, std::string message) {
  if (whyNot) *whyNot = std::move(message);
  return std::nullopt;
}

bool allDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

// "1".."65535" in host order, or 0 when `text` is not such a number.
uint16_t parsePort(std::string_view text) {
  if (!allDigits(text) || text.size() > 5) return 0;
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value <= 65535 ? static_cast<uint16_t>(value) : 0;
}

// inet_pton() reads a C string: a NUL would end the address early.
bool hasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

std::string expectedForm(std::string_view text) {
  return fmt::format(R"(expected "IPv4:port" or "[IPv6]:port", got "{}")", printable(text));
}

// `host` is the text between the brackets of "[host]:port".
std::optional<Address> makeV6(std::string_view host, uint16_t port, std::string_view text,
                              std::string* whyNot) {
  Address address;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  std::string hostText(host);
  if (hasNul(host) || inet_pton(AF_INET6, hostText.c_str(), &sin6->sin6_addr) != 1)
    return fail(whyNot, fmt::format(R"(invalid IPv6 address "{}" in "{}")", printable(host), printable(text)));
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  address.length = sizeof(sockaddr_in6);
  char buffer[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &sin6->sin6_addr, buffer, sizeof buffer);
  address.text = fmt::format("[{}]:{}", buffer, port);
  return address;
}

std::optional<Address> makeV4(std::string_view host, uint16_t port, std::string_view text,
                              std::string* whyNot) {
  Address address;
  auto* sin = reinterpret_cast<sockaddr_in*>(&address.storage);
  std::string hostText(host);
  if (hasNul(host) || inet_pton(AF_INET, hostText.c_str(), &sin->sin_addr) != 1)
    return fail(whyNot, expectedForm(text));
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  address.length = sizeof(sockaddr_in);
  char buffer[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sin->sin_addr, buffer, sizeof buffer);
  address.text = fmt::format("{}:{}", buffer, port);
  return address;
}

}  // namespace

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::optional<Address> parseAddress(std::string_view text, std::string* whyNot) {
  std::string_view host;
  std::string_view portText;
  bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail(whyNot, expectedForm(text));
    host = text.substr(1, close - 1);
    portText = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail(whyNot, expectedForm(text));
    host = text.substr(0, colon);
    portText = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return fail(whyNot, expectedForm(text));
  }
  uint16_t port = parsePort(portText);
  if (port == 0)
    return fail(whyNot,
                fmt::format(R"(invalid port "{}" in "{}" (expected 1 to 65535))", printable(portText),
                            printable(text)));
  return bracketed ? makeV6(host, port, text, whyNot) : makeV4(host, port, text, whyNot);
}

namespace {

// Longer durations are rejected so that any Duration converts to
// nanoseconds and can be added to a steady_clock time without overflow.
constexpr int64_t kMaxDurationMs = int64_t{1'000'000} * 3'600'000;  // 1000000h

struct Unit {
  std::string_view suffix;
  int64_t milliseconds;
};
constexpr Unit kUnits[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};

}  // namespace

std::optional<Duration> parseDuration(std::string_view text, std::string* whyNot) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view suffix = text.substr(digits);
  const Unit* unit = nullptr;
  for (const Unit& candidate : kUnits)
    if (candidate.suffix == suffix) unit = &candidate;
  if (digits == 0 || unit == nullptr)
    return fail(
        whyNot,
        fmt::format(R"(expected a whole number followed by ms, s, m or h, got "{}")", printable(text)));
  uint64_t value = 0;
  auto parsed = std::from_chars(text.data(), text.data() + digits, value);
  if (parsed.ec != std::errc() ||
      value > static_cast<uint64_t>(kMaxDurationMs / unit->milliseconds))
    return fail(whyNot, fmt::format(R"("{}" is too long (at most 1000000h))", printable(text)));
  return Duration(static_cast<int64_t>(value) * unit->milliseconds);
}

namespace {

std::string expectedCidr(std::string_view text) {
  return fmt::format(R"(expected an address block such as "10.0.0.0/8" or "2001:db8::/32", or an address, )"
                     R"(got "{}")",
                     printable(text));
}

// `bits` of the 128-bit form kept, the rest cleared.
std::array<uint8_t, 16> masked(std::array<uint8_t, 16> address, int bits) {
  for (int i = 0; i < 16; ++i) {
    int keep = std::clamp(bits - 8 * i, 0, 8);
    address[i] &= static_cast<uint8_t>(0xff00 >> keep);
  }
  return address;
}

// The block's address as written back: dotted IPv4 for mapped blocks.
std::string blockText(const std::array<uint8_t, 16>& address, bool v4, int prefix) {
  char buffer[INET6_ADDRSTRLEN];
  if (v4)
    inet_ntop(AF_INET, address.data() + 12, buffer, sizeof buffer);
  else
    inet_ntop(AF_INET6, address.data(), buffer, sizeof buffer);
  return fmt::format("{}/{}", buffer, prefix);
}

}  // namespace

std::optional<Cidr> parseCidr(std::string_view text, std::string* whyNot) {
  size_t slash = text.find('/');
  std::string host(text.substr(0, slash));
  Cidr cidr;
  cidr.text = std::string(text);
  bool v4 = host.find(':') == std::string::npos;
  if (hasNul(host)) return fail(whyNot, expectedCidr(text));
  if (v4) {
    // ::ffff:a.b.c.d: one table for both families.
    cidr.address[10] = cidr.address[11] = 0xff;
    if (inet_pton(AF_INET, host.c_str(), cidr.address.data() + 12) != 1) return fail(whyNot, expectedCidr(text));
  } else if (inet_pton(AF_INET6, host.c_str(), cidr.address.data()) != 1) {
    return fail(whyNot, expectedCidr(text));
  }
  int maxPrefix = v4 ? 32 : 128;
  int prefix = maxPrefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (!allDigits(digits)) return fail(whyNot, expectedCidr(text));
    unsigned value = 0;
    auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (parsed.ec != std::errc() || value > static_cast<unsigned>(maxPrefix))
      return fail(whyNot, fmt::format("prefix /{} of {} is out of range (0 to {} for {})", printable(digits),
                                      printable(text), maxPrefix, v4 ? "IPv4" : "IPv6"));
    prefix = static_cast<int>(value);
  }
  cidr.prefix = v4 ? prefix + 96 : prefix;
  std::array<uint8_t, 16> network = masked(cidr.address, cidr.prefix);
  if (network != cidr.address)
    return fail(whyNot, fmt::format("{} has host bits set (did you mean {}?)", printable(text),
                                    blockText(network, v4, prefix)));
  return cidr;
}

}  // namespace config
