#pragma once
// Peeking at a TLS ClientHello without terminating TLS: finds the
// server_name (SNI) and ALPN protocols, fed bytes as they arrive, across any
// number of TCP segments and TLS records. Pure code, no allocation beyond
// the parser's own bounded buffer; fuzzed (tests/fuzz/client_hello_fuzz.cc).
//
// States: NeedMore --feed()--> NeedMore | Done | NotTls | TooLarge | Malformed.
// Every state but NeedMore is final; the caller forwards every byte it fed,
// whatever the outcome (the parser only looks).
//
// The state after a feed depends only on the bytes fed so far, never on how
// they were cut into feeds, and each verdict is reached at the first byte
// that decides it: NotTls at the first byte that is not a handshake record's
// (byte 0 != 22, or byte 1, the record's major version, != 3), so a plain
// "GET " is NotTls at its first byte; TooLarge at the first byte past
// kMaxClientHelloBytes, or as soon as a handshake header announces a
// message that cannot fit in it. An SSLv2-compatible hello is NotTls.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lb::tls {

inline constexpr size_t kMaxClientHelloBytes = 16 * 1024;
// A host_name longer than this (or holding a NUL) is Malformed, as OpenSSL
// servers refuse it too; so serverName().size() <= kMaxServerNameBytes.
inline constexpr size_t kMaxServerNameBytes = 255;
// alpn() keeps the first this-many protocols of the list (all of the list
// is still checked): the list is for the access log.
inline constexpr size_t kMaxAlpnProtocols = 16;

enum class HelloResult : uint8_t {
  NeedMore,   // a ClientHello so far; feed more bytes
  Done,       // the whole ClientHello was seen; serverName()/alpn() are final
  NotTls,     // the first bytes are not a TLS handshake record
  TooLarge,   // the ClientHello (or the bytes fed before it ended) pass kMaxClientHelloBytes
  Malformed,  // a TLS record, but not a well-formed ClientHello
};

std::string_view toString(HelloResult result);

class ClientHelloParser {
 public:
  // Feeds the next bytes of the client's stream. Returns the state after
  // them; once final, further feeds return it unchanged.
  HelloResult feed(const uint8_t* data, size_t length);
  HelloResult result() const { return result_; }
  // The host_name from server_name as sent (empty: none).
  const std::string& serverName() const { return serverName_; }
  // The protocols of application_layer_protocol_negotiation, in order (at
  // most kMaxAlpnProtocols).
  const std::vector<std::string>& alpn() const { return alpn_; }
  // Bytes fed so far (all of them, also those fed after a final state).
  size_t consumed() const { return consumed_; }
  // Why the state is NotTls, TooLarge or Malformed (a static phrase for
  // logs and tests); empty otherwise.
  std::string_view problem() const { return problem_; }

 private:
  HelloResult fail(HelloResult result, std::string_view problem);
  HelloResult takeRecordHeader(const uint8_t*& data, size_t& length);
  HelloResult takeRecordBody(const uint8_t*& data, size_t& length);
  HelloResult parseBody();

  HelloResult result_ = HelloResult::NeedMore;
  size_t consumed_ = 0;
  std::string serverName_;
  std::vector<std::string> alpn_;
  std::string_view problem_;

  // Bytes looked at (<= kMaxClientHelloBytes); what follows the final
  // state's byte is counted by consumed_ only.
  size_t examined_ = 0;
  bool firstRecord_ = true;
  // The record header being read (recordHeaderHave_ < 5), or the body of
  // the current record (recordRemaining_ bytes left of it).
  std::array<uint8_t, 5> recordHeader_{};
  size_t recordHeaderHave_ = 0;
  size_t recordRemaining_ = 0;
  // The handshake message: its 4-byte header, then its body, reserved at
  // its announced length once the header is whole (<= kMaxClientHelloBytes).
  std::array<uint8_t, 4> handshakeHeader_{};
  size_t handshakeHeaderHave_ = 0;
  size_t bodyLength_ = 0;
  std::vector<uint8_t> handshake_;
};

}  // namespace lb::tls
