// Fuzzes what a detached server leg (lb/tls/leg.h) does with records from a
// hostile client: one that holds the keys, so it can seal anything.
//
// Each input: a real TLS 1.3 handshake in memory (OpenSSL client, ringlb's
// server leg, which detaches), then the input as a list of records the
// client sends, each sealed with the client's own secret (from its key log)
// or, when marked raw, passed unsealed. Record i: a byte `kind` (bit 7 raw,
// bits 0-1 the type: 23 data, 21 alert, 22 handshake, 20 other), a byte of
// length, that many content bytes. The wire is fed in pieces whose sizes a
// seed byte (the input's first) draws.
//
// Properties: no crash or leak; what the leg returns is always a prefix of
// the application data sealed, in order; with no raw record it is all of
// it, and the leg ends as the records say: close_notify Closed; a KeyUpdate
// (the forger moves to the next keys with it) goes on; any other alert,
// handshake message or type Failed; otherwise WantRead with the input used
// up. After reset every block is back in the pool.

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lb/tls/in_memory.h"
#include "lb/tls/leg.h"
#include "lb/tls/record_opener.h"
#include "lb/tls/record_sealer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using lb::tls::BlockPool;
using lb::tls::Leg;
using lb::tls::LegStatus;

std::string clientSecretLine;

struct Contexts {
  SSL_CTX* server = nullptr;
  SSL_CTX* client = nullptr;

  Contexts() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    server = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server, cert);
    SSL_CTX_use_PrivateKey(server, key);
    SSL_CTX_set_min_proto_version(server, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(server, 0);
    Leg::enableDetach(server);
    client = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_keylog_callback(client, [](const SSL*, const char* line) {
      if (std::strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) clientSecretLine = line;
    });
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

std::vector<uint8_t> hexBytes(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

enum class Expect { More, Closed, Failed };

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Contexts contexts;
  if (size < 1) return 0;
  uint32_t cut = data[0] * 2654435761u + 1;
  BlockPool pool;
  Leg server, client;
  FUZZ_CHECK(server.open(contexts.server, true, &pool, false, true));
  FUZZ_CHECK(client.open(contexts.client, false, &pool));
  std::string toServer, toClient;
  LegStatus s = LegStatus::WantRead, c = LegStatus::WantRead;
  for (int round = 0; round < 10 && (s != LegStatus::Ok || c != LegStatus::Ok); ++round) {
    if (c != LegStatus::Ok) c = client.handshake();
    lb::tls::carryOutput(client, server, &toServer);
    if (s != LegStatus::Ok) s = server.handshake();
    lb::tls::carryOutput(server, client, &toClient);
  }
  FUZZ_CHECK(s == LegStatus::Ok && c == LegStatus::Ok);
  FUZZ_CHECK(server.detached());
  FUZZ_CHECK(server.inputConsumed());

  std::vector<uint8_t> secret = hexBytes(clientSecretLine.substr(clientSecretLine.rfind(' ') + 1));
  auto suite = static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(client.ssl())));
  lb::tls::Tls13Suite use;
  FUZZ_CHECK(lb::tls::tls13Suite(suite, &use));
  lb::tls::RecordSealer forger;
  FUZZ_CHECK(forger.startTls13(suite, secret));

  // The wire, and what the leg must make of it.
  std::string wire, sent;
  Expect expect = Expect::More;
  bool raw = false;
  std::vector<uint8_t> record(300 + lb::tls::RecordSealer::kOverheadBytes);
  for (size_t at = 1; at + 2 <= size && expect == Expect::More;) {
    uint8_t kind = data[at];
    size_t length = data[at + 1];
    at += 2;
    if (at + length > size) length = size - at;
    const uint8_t* content = data + at;
    at += length;
    if (kind & 0x80) {
      wire.append(reinterpret_cast<const char*>(content), length);
      raw = true;
      continue;
    }
    static constexpr uint8_t kTypes[] = {23, 21, 22, 20};
    uint8_t type = kTypes[kind & 3];
    size_t n = forger.seal(type, {content, length}, record);
    FUZZ_CHECK(n > 0);
    wire.append(reinterpret_cast<const char*>(record.data()), n);
    bool keyUpdate = type == 22 && length == 5 && content[0] == 24 && content[1] == 0 && content[2] == 0 &&
                     content[3] == 1 && content[4] <= 1;
    if (type == 23) {
      sent.append(reinterpret_cast<const char*>(content), length);
    } else if (type == 21 && length == 2 && content[1] == 0) {
      expect = Expect::Closed;
    } else if (keyUpdate) {
      FUZZ_CHECK(lb::tls::nextTrafficSecret(use, secret) && forger.startTls13(suite, secret));
    } else {
      expect = Expect::Failed;
    }
  }

  std::string got;
  std::vector<char> plain(BlockPool::kBlockBytes);
  LegStatus last = LegStatus::WantRead;
  for (size_t at = 0; at < wire.size() && last != LegStatus::Closed && last != LegStatus::Failed;) {
    cut = cut * 1103515245u + 12345u;
    size_t piece = (cut >> 16) % 4 == 0 ? 1 + (cut >> 18) % 20000 : 1 + (cut >> 18) % 16;
    if (piece > wire.size() - at) piece = wire.size() - at;
    std::string input = wire.substr(at, piece);
    at += piece;
    server.setInput(input.data(), input.size());
    size_t n = 0;
    while ((last = server.read(plain.data(), plain.size(), &n)) == LegStatus::Ok) {
      FUZZ_CHECK(n > 0);
      got.append(plain.data(), n);
      FUZZ_CHECK(got.size() <= sent.size());
    }
    FUZZ_CHECK(last != LegStatus::WantWrite);
    if (last == LegStatus::WantRead) FUZZ_CHECK(server.inputConsumed());
    server.dropInput();
    while (server.hasOutput()) server.outputSent(server.takeOutput().size());  // an answered KeyUpdate
  }
  // Raw bytes break the framing from where they are: what came before
  // them is still read, nothing after them can be.
  FUZZ_CHECK(sent.compare(0, got.size(), got) == 0);
  if (!raw) {
    FUZZ_CHECK(got == sent);
    if (expect == Expect::Closed) FUZZ_CHECK(last == LegStatus::Closed);
    if (expect == Expect::Failed) FUZZ_CHECK(last == LegStatus::Failed);
    if (expect == Expect::More) FUZZ_CHECK(last == LegStatus::WantRead);
  }
  server.reset();
  client.reset();
  FUZZ_CHECK(pool.inUse() == 0);
  return 0;
}
