#include "lb/tls/client_hello.h"

#include <algorithm>

namespace lb::tls {

namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kHandshakeHeaderBytes = 4;
// A plaintext record's fragment is at most 2^14 bytes (RFC 8446 5.1).
constexpr size_t kMaxRecordBody = 16384;
constexpr uint16_t kServerNameExtension = 0;
constexpr uint16_t kAlpnExtension = 16;
constexpr uint8_t kHostName = 0;

// Reads big-endian fields from a span; any read past the end sets `bad`
// and returns zeros, so a parse checks `bad` once per structure.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t remaining() const { return size_ - offset_; }
  bool bad() const { return bad_; }
  bool empty() const { return offset_ == size_; }

  uint32_t number(size_t bytes) {
    if (remaining() < bytes) return fail();
    uint32_t value = 0;
    for (size_t i = 0; i < bytes; ++i) value = (value << 8) | data_[offset_++];
    return value;
  }
  // The next `bytes` bytes as a reader of their own.
  Reader sub(size_t bytes) {
    if (remaining() < bytes) {
      fail();
      return Reader(data_, 0);
    }
    Reader inner(data_ + offset_, bytes);
    offset_ += bytes;
    return inner;
  }
  // A vector with a `lengthBytes` length prefix.
  Reader vector(size_t lengthBytes) { return sub(number(lengthBytes)); }
  void skip(size_t bytes) { sub(bytes); }
  std::string_view text() const {
    return {reinterpret_cast<const char*>(data_ + offset_), remaining()};
  }

 private:
  uint32_t fail() {
    bad_ = true;
    offset_ = size_;
    return 0;
  }

  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  bool bad_ = false;
};

// RFC 6066 3: a list of (name_type, opaque name<1..2^16-1>) with exactly one
// host_name. Returns the problem, or empty with `host` set.
std::string_view parseServerName(Reader extension, std::string& host) {
  Reader list = extension.vector(2);
  if (extension.bad() || !extension.empty()) return "server_name length mismatch";
  if (list.empty()) return "empty server_name list";
  bool found = false;
  while (!list.empty()) {
    uint8_t type = static_cast<uint8_t>(list.number(1));
    Reader name = list.vector(2);
    if (list.bad()) return "server_name entry overruns its list";
    if (type != kHostName) continue;
    if (found) return "two host_names in server_name";
    found = true;
    std::string_view text = name.text();
    if (text.empty()) return "empty host_name";
    if (text.size() > kMaxServerNameBytes) return "host_name too long";
    if (text.find('\0') != std::string_view::npos) return "NUL in host_name";
    host.assign(text);
  }
  if (!found) return "server_name without a host_name";
  return {};
}

// RFC 7301 3.1: ProtocolName protocol_name_list<2..2^16-1>, each
// opaque<1..2^8-1>.
std::string_view parseAlpn(Reader extension, std::vector<std::string>& protocols) {
  Reader list = extension.vector(2);
  if (extension.bad() || !extension.empty()) return "ALPN length mismatch";
  if (list.empty()) return "empty ALPN list";
  while (!list.empty()) {
    Reader name = list.vector(1);
    if (list.bad()) return "ALPN protocol overruns its list";
    if (name.empty()) return "empty ALPN protocol";
    if (protocols.size() < kMaxAlpnProtocols) protocols.emplace_back(name.text());
  }
  return {};
}

}  // namespace

std::string_view toString(HelloResult result) {
  switch (result) {
    case HelloResult::NeedMore: return "need_more";
    case HelloResult::Done: return "done";
    case HelloResult::NotTls: return "not_tls";
    case HelloResult::TooLarge: return "too_large";
    case HelloResult::Malformed: return "malformed";
  }
  return "unknown";
}

HelloResult ClientHelloParser::fail(HelloResult result, std::string_view problem) {
  result_ = result;
  problem_ = problem;
  serverName_.clear();
  alpn_.clear();
  handshake_ = {};
  return result_;
}

HelloResult ClientHelloParser::feed(const uint8_t* data, size_t length) {
  consumed_ += length;
  while (result_ == HelloResult::NeedMore && length > 0) {
    if (examined_ == kMaxClientHelloBytes) {
      return fail(HelloResult::TooLarge, "no whole ClientHello within the bound");
    }
    // Never look past the bound: the byte after it decides TooLarge.
    size_t room = kMaxClientHelloBytes - examined_;
    const uint8_t* chunk = data;
    size_t chunkLength = std::min(length, room);
    size_t before = chunkLength;
    if (recordHeaderHave_ < kRecordHeaderBytes) {
      takeRecordHeader(chunk, chunkLength);
    } else {
      takeRecordBody(chunk, chunkLength);
    }
    size_t taken = before - chunkLength;
    examined_ += taken;
    data += taken;
    length -= taken;
  }
  return result_;
}

// Takes bytes of the 5-byte record header: type, version (major, minor),
// length. Each byte is judged as it arrives.
HelloResult ClientHelloParser::takeRecordHeader(const uint8_t*& data, size_t& length) {
  while (length > 0 && recordHeaderHave_ < kRecordHeaderBytes) {
    uint8_t byte = *data++;
    --length;
    size_t index = recordHeaderHave_++;
    recordHeader_[index] = byte;
    if (index == 0 && byte != kHandshakeRecord) {
      return firstRecord_ ? fail(HelloResult::NotTls, "not a TLS handshake record")
                          : fail(HelloResult::Malformed, "a record other than handshake in the ClientHello");
    }
    if (index == 1 && byte != 3) {
      return firstRecord_ ? fail(HelloResult::NotTls, "record version is not 3.x")
                          : fail(HelloResult::Malformed, "record version is not 3.x");
    }
  }
  if (recordHeaderHave_ < kRecordHeaderBytes) return result_;
  firstRecord_ = false;
  recordRemaining_ = (size_t{recordHeader_[3]} << 8) | recordHeader_[4];
  if (recordRemaining_ == 0) return fail(HelloResult::Malformed, "empty handshake record");
  if (recordRemaining_ > kMaxRecordBody) return fail(HelloResult::Malformed, "record longer than 2^14");
  return result_;
}

// Takes bytes of the current record's body into the handshake message; the
// message ends (Done or Malformed) at its last byte, wherever the record ends.
HelloResult ClientHelloParser::takeRecordBody(const uint8_t*& data, size_t& length) {
  size_t take = std::min(length, recordRemaining_);
  size_t used = 0;
  while (used < take && handshakeHeaderHave_ < kHandshakeHeaderBytes) {
    uint8_t byte = data[used++];
    size_t index = handshakeHeaderHave_++;
    handshakeHeader_[index] = byte;
    if (index == 0 && byte != kClientHello) {
      data += used;
      length -= used;
      return fail(HelloResult::Malformed, "first handshake message is not a ClientHello");
    }
    if (index == kHandshakeHeaderBytes - 1) {
      bodyLength_ = (size_t{handshakeHeader_[1]} << 16) | (size_t{handshakeHeader_[2]} << 8) |
                    handshakeHeader_[3];
      // The message alone (records' headers aside) would pass the bound.
      if (kHandshakeHeaderBytes + bodyLength_ > kMaxClientHelloBytes) {
        data += used;
        length -= used;
        return fail(HelloResult::TooLarge, "ClientHello announced longer than the bound");
      }
      handshake_.reserve(bodyLength_);
    }
  }
  if (handshakeHeaderHave_ == kHandshakeHeaderBytes) {
    size_t bodyBytes = std::min(take - used, bodyLength_ - handshake_.size());
    handshake_.insert(handshake_.end(), data + used, data + used + bodyBytes);
    used += bodyBytes;
  }
  data += used;
  length -= used;
  recordRemaining_ -= used;
  if (recordRemaining_ == 0) recordHeaderHave_ = 0;
  if (handshakeHeaderHave_ == kHandshakeHeaderBytes && handshake_.size() == bodyLength_) {
    return parseBody();
  }
  return result_;
}

// RFC 8446 4.1.2 (and RFC 5246 7.4.1.2, where extensions may be absent).
HelloResult ClientHelloParser::parseBody() {
  Reader body(handshake_.data(), handshake_.size());
  uint32_t version = body.number(2);
  body.skip(32);  // random
  Reader sessionId = body.vector(1);
  Reader cipherSuites = body.vector(2);
  Reader compression = body.vector(1);
  if (body.bad()) return fail(HelloResult::Malformed, "ClientHello fields overrun it");
  if ((version >> 8) != 3) return fail(HelloResult::Malformed, "ClientHello version is not 3.x");
  if (sessionId.remaining() > 32) return fail(HelloResult::Malformed, "session id longer than 32");
  if (cipherSuites.empty() || cipherSuites.remaining() % 2 != 0) {
    return fail(HelloResult::Malformed, "bad cipher_suites length");
  }
  if (compression.empty()) return fail(HelloResult::Malformed, "no compression methods");

  if (!body.empty()) {
    Reader extensions = body.vector(2);
    if (body.bad() || !body.empty()) return fail(HelloResult::Malformed, "extensions length mismatch");
    bool sawServerName = false;
    bool sawAlpn = false;
    while (!extensions.empty()) {
      uint16_t type = static_cast<uint16_t>(extensions.number(2));
      Reader extension = extensions.vector(2);
      if (extensions.bad()) return fail(HelloResult::Malformed, "extension overruns the extensions");
      std::string_view problem;
      if (type == kServerNameExtension) {
        if (sawServerName) return fail(HelloResult::Malformed, "two server_name extensions");
        sawServerName = true;
        problem = parseServerName(extension, serverName_);
      } else if (type == kAlpnExtension) {
        if (sawAlpn) return fail(HelloResult::Malformed, "two ALPN extensions");
        sawAlpn = true;
        problem = parseAlpn(extension, alpn_);
      }
      if (!problem.empty()) return fail(HelloResult::Malformed, problem);
    }
  }
  handshake_ = {};  // the message is no longer needed
  result_ = HelloResult::Done;
  return result_;
}

}  // namespace lb::tls
