#pragma once
// The fields of a PROXY v1 line (lb/edge/proxy_header.cc), read one
// character at a time.
//
// Each reader says after every character whether some valid field still
// starts with what it was fed (feed() false: none does), whether what it was
// fed is a whole field (complete()), and how many more characters a whole
// field needs at least (shortestRest()). Every state feed() accepts can be
// completed, so "no reader refused a character" means "still possibly
// valid", and the parser can say Invalid at the first impossible byte.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace lb::edge::v1text {

inline bool isDigit(char c) { return c >= '0' && c <= '9'; }

inline int hexValue(char c) {
  if (isDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// An IPv4 address as inet_pton(AF_INET) takes it: four decimal numbers
// 0..255 joined by single dots, no leading zeros.
class DottedQuadReader {
 public:
  static constexpr size_t kShortest = 7;  // "0.0.0.0"

  bool feed(char c) {
    if (isDigit(c)) {
      if (digits_ == 1 && octet_ == 0) return false;  // a leading zero
      octet_ = octet_ * 10 + static_cast<unsigned>(c - '0');
      ++digits_;
      return octet_ <= 255;
    }
    if (c != '.' || digits_ == 0 || done_ == 3) return false;
    bytes_[done_++] = static_cast<uint8_t>(octet_);
    octet_ = 0;
    digits_ = 0;
    return true;
  }
  bool complete() const { return done_ == 3 && digits_ > 0; }
  size_t shortestRest() const { return (digits_ > 0 ? 0 : 1) + (3 - done_) * 2; }
  // complete() only.
  std::array<uint8_t, 4> bytes() const {
    std::array<uint8_t, 4> out = bytes_;
    out[3] = static_cast<uint8_t>(octet_);
    return out;
  }

 private:
  std::array<uint8_t, 4> bytes_{};
  size_t done_ = 0;    // octets closed by a dot
  size_t digits_ = 0;  // digits of the octet being read
  unsigned octet_ = 0;
};

// An IPv6 address as inet_pton(AF_INET6) takes it: up to eight groups of 1
// to 4 hex digits, at most one "::" standing for at least one zero group,
// optionally ending in a dotted quad that counts as two groups.
class Ipv6Reader {
 public:
  static constexpr size_t kShortest = 2;  // "::"

  bool feed(char c) {
    if (inQuad_) return quad_.feed(c);
    if (const int value = hexValue(c); value >= 0) {
      if (isLeadingColon()) return false;              // ":1" is not an address
      if (digits_ == 0 && count_ + 1 > limit()) return false;  // no room for another group
      if (digits_ == 4) return false;
      token_[digits_++] = c;
      group_ = static_cast<uint16_t>(group_ * 16 + value);
      colons_ = 0;
      return true;
    }
    if (c == ':') {
      if (digits_ > 0) {  // closes a group; another group or "::" must follow
        groups_[count_++] = group_;
        group_ = 0;
        digits_ = 0;
        colons_ = 1;
        return count_ < limit();
      }
      if (colons_ == 0) {  // only at the start: the first half of a leading "::"
        colons_ = 1;
        return true;
      }
      if (colons_ == 2 || gap_ >= 0) return false;  // ":::" or a second "::"
      gap_ = static_cast<int>(count_);
      colons_ = 2;
      return true;
    }
    if (c == '.') {  // the group being read was the first octet of a dotted quad
      if (digits_ == 0) return false;
      if (gap_ >= 0 ? count_ + 2 > limit() : count_ + 2 != 8) return false;
      inQuad_ = true;
      for (size_t i = 0; i < digits_; ++i) {
        if (!quad_.feed(token_[i])) return false;
      }
      return quad_.feed('.');
    }
    return false;
  }

  bool complete() const {
    if (inQuad_) return quad_.complete();  // room for its two groups was checked at its first dot
    if (digits_ > 0) return gap_ >= 0 || count_ + 1 == 8;
    return colons_ == 2;
  }

  size_t shortestRest() const {
    if (inQuad_) return quad_.shortestRest();
    if (digits_ > 0) return complete() ? 0 : 2;  // "::"
    if (colons_ == 2) return 0;
    return colons_ == 1 ? 1 : 2;  // a digit or the second colon; "::" when nothing was fed
  }

  // complete() only.
  std::array<uint8_t, 16> bytes() const {
    std::array<uint16_t, 8> words{};
    std::array<uint16_t, 8> read = groups_;
    size_t count = count_;
    if (inQuad_) {
      const std::array<uint8_t, 4> quad = quad_.bytes();
      read[count++] = static_cast<uint16_t>(quad[0] << 8 | quad[1]);
      read[count++] = static_cast<uint16_t>(quad[2] << 8 | quad[3]);
    } else if (digits_ > 0) {
      read[count++] = group_;
    }
    const size_t before = gap_ >= 0 ? static_cast<size_t>(gap_) : count;
    std::copy_n(read.begin(), before, words.begin());
    std::copy(read.begin() + before, read.begin() + count, words.end() - (count - before));
    std::array<uint8_t, 16> out{};
    for (size_t i = 0; i < 8; ++i) {
      out[2 * i] = static_cast<uint8_t>(words[i] >> 8);
      out[2 * i + 1] = static_cast<uint8_t>(words[i]);
    }
    return out;
  }

 private:
  size_t limit() const { return gap_ >= 0 ? 7 : 8; }  // explicit groups the address may hold
  bool isLeadingColon() const { return colons_ == 1 && count_ == 0 && gap_ < 0; }

  std::array<uint16_t, 8> groups_{};  // closed groups, in order; the gap sits before groups_[gap_]
  size_t count_ = 0;
  int gap_ = -1;        // where "::" is, or -1
  size_t colons_ = 0;   // colons just read: 0, 1 or 2
  size_t digits_ = 0;   // digits of the group being read
  uint16_t group_ = 0;
  std::array<char, 4> token_{};  // its digits, replayed if it turns out to be an octet
  bool inQuad_ = false;
  DottedQuadReader quad_;
};

// A decimal port 0..65535 without leading zeros.
class PortReader {
 public:
  static constexpr size_t kShortest = 1;

  bool feed(char c) {
    if (!isDigit(c) || (digits_ == 1 && value_ == 0)) return false;
    value_ = value_ * 10 + static_cast<unsigned>(c - '0');
    ++digits_;
    return value_ <= 65535;
  }
  bool complete() const { return digits_ > 0; }
  size_t shortestRest() const { return digits_ > 0 ? 0 : 1; }
  uint16_t value() const { return static_cast<uint16_t>(value_); }

 private:
  size_t digits_ = 0;
  unsigned value_ = 0;
};

}  // namespace lb::edge::v1text
