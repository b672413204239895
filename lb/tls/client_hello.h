#pragma once
// Peeking at a TLS ClientHello without terminating TLS: finds the
// server_name (SNI) and ALPN protocols, fed bytes as they arrive, across any
// number of TCP segments and TLS records. Pure code, no allocation beyond
// the parser's own bounded buffer; fuzzed (tests/fuzz/client_hello_fuzz.cc).
//
// States: NeedMore --feed()--> NeedMore | Done | NotTls | TooLarge | Malformed.
// Every state but NeedMore is final; the caller forwards every byte it fed,
// whatever the outcome (the parser only looks).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lb::tls {

inline constexpr size_t kMaxClientHelloBytes = 16 * 1024;

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
  // The protocols of application_layer_protocol_negotiation, in order.
  const std::vector<std::string>& alpn() const { return alpn_; }
  // Bytes fed so far.
  size_t consumed() const { return consumed_; }

 private:
  HelloResult result_ = HelloResult::NeedMore;
  size_t consumed_ = 0;
  std::string serverName_;
  std::vector<std::string> alpn_;
  // Implementation state (record reassembly into a bounded handshake
  // buffer) is the implementer's choice.
  std::vector<uint8_t> handshake_;
  std::vector<uint8_t> recordHeader_;
  size_t recordRemaining_ = 0;
};

}  // namespace lb::tls
