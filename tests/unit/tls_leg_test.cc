// The TLS leg driven through memory only: two legs (a server and a client)
// whose outputs are handed to each other's inputs, as the worker does with
// its receives and sends. Certificates are made here, in memory.
#include "lb/tls/leg.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>
#include <string>
#include <vector>

namespace lb::tls {
namespace {

struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~Identity() {
    EVP_PKEY_free(key);
    X509_free(cert);
  }
};

// A self-signed ECDSA P-256 certificate for `name`.
void makeIdentity(Identity* id, const char* name) {
  id->key = EVP_EC_gen("P-256");
  ASSERT_NE(id->key, nullptr);
  id->cert = X509_new();
  X509_set_version(id->cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(id->cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(id->cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(id->cert), 3600);
  X509_set_pubkey(id->cert, id->key);
  X509_NAME* subject = X509_get_subject_name(id->cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name), -1,
                             -1, 0);
  X509_set_issuer_name(id->cert, subject);
  ASSERT_GT(X509_sign(id->cert, id->key, EVP_sha256()), 0);
}

struct Ctx {
  SSL_CTX* ctx = nullptr;
  ~Ctx() { SSL_CTX_free(ctx); }
};

void serverCtx(Ctx* c, const Identity& id) {
  c->ctx = SSL_CTX_new(TLS_server_method());
  ASSERT_EQ(SSL_CTX_use_certificate(c->ctx, id.cert), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(c->ctx, id.key), 1);
}

// Verifies the server against `trusted`.
void clientCtx(Ctx* c, const Identity& trusted) {
  c->ctx = SSL_CTX_new(TLS_client_method());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx), trusted.cert);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, nullptr);
}

// Hands what `from` wrote to `to` as input, as one receive would.
// Returns whether anything moved. `to`'s previous input must be consumed.
bool carry(Leg& from, Leg& to, std::string* wire) {
  if (!from.hasOutput() || !to.inputConsumed()) return false;
  std::span<const char> out = from.takeOutput();
  wire->assign(out.data(), out.size());
  from.outputSent(out.size());
  to.setInput(wire->data(), wire->size());
  return true;
}

class LegPair : public ::testing::Test {
 protected:
  void SetUp() override {
    makeIdentity(&serverId, "server.test");
    serverCtx(&server, serverId);
    clientCtx(&client, serverId);
  }

  void open() {
    ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool));
    ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  }

  // Runs both handshakes to their end; the results of the last calls.
  void handshake(LegStatus* serverStatus, LegStatus* clientStatus) {
    *serverStatus = *clientStatus = LegStatus::WantRead;
    for (int round = 0; round < 20; ++round) {
      if (*clientStatus != LegStatus::Ok && *clientStatus != LegStatus::Failed)
        *clientStatus = clientLeg.handshake();
      carry(clientLeg, serverLeg, &toServer);
      if (*serverStatus != LegStatus::Ok && *serverStatus != LegStatus::Failed)
        *serverStatus = serverLeg.handshake();
      carry(serverLeg, clientLeg, &toClient);
      bool done = (*serverStatus == LegStatus::Ok || *serverStatus == LegStatus::Failed) &&
                  (*clientStatus == LegStatus::Ok || *clientStatus == LegStatus::Failed);
      if (done && !serverLeg.hasOutput() && !clientLeg.hasOutput()) return;
    }
  }

  // Sends `data` from `from` to `to` record by record; returns what `to` read.
  std::string transfer(Leg& from, Leg& to, std::string* wire, const std::string& data) {
    std::string got;
    std::vector<char> plain(BlockPool::kBlockBytes);
    size_t offset = 0;
    for (int guard = 0; guard < 100000 && (offset < data.size() || from.hasOutput() || !to.inputConsumed());
         ++guard) {
      if (offset < data.size() && !from.hasOutput()) {
        size_t n = 0;
        size_t chunk = std::min<size_t>(16384, data.size() - offset);
        EXPECT_EQ(from.write(data.data() + offset, chunk, &n), LegStatus::Ok);
        offset += n;
      }
      carry(from, to, wire);
      for (;;) {
        size_t n = 0;
        LegStatus status = to.read(plain.data(), 16384, &n);
        if (status != LegStatus::Ok) {
          EXPECT_EQ(status, LegStatus::WantRead);
          EXPECT_TRUE(to.inputConsumed()) << "WantRead means the input was used up";
          break;
        }
        got.append(plain.data(), n);
      }
      carry(to, from, wire);  // post-handshake messages (tickets) go back
    }
    return got;
  }

  Identity serverId;
  Ctx server;
  Ctx client;
  BlockPool pool;
  Leg serverLeg;
  Leg clientLeg;
  std::string toServer;
  std::string toClient;
};

TEST_F(LegPair, HandshakeThenBytesBothWaysThenCloseNotify) {
  open();
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  ASSERT_EQ(c, LegStatus::Ok);
  EXPECT_TRUE(serverLeg.handshakeDone());

  std::string up(1 << 20, '\0');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>(i * 7 + i / 4096);
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, up), up);
  std::string down(300000, 'd');
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, down), down);

  ASSERT_EQ(clientLeg.shutdown(), LegStatus::Ok);
  ASSERT_TRUE(carry(clientLeg, serverLeg, &toServer));
  char buffer[64];
  size_t n = 0;
  EXPECT_EQ(serverLeg.read(buffer, sizeof buffer, &n), LegStatus::Closed);
  // Half-closed: the server still writes after the client's close_notify.
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "after"), "after");
}

TEST_F(LegPair, AWaitingLegHoldsNoBlock) {
  open();
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  transfer(clientLeg, serverLeg, &toServer, std::string(50000, 'x'));
  EXPECT_FALSE(serverLeg.hasOutput());
  EXPECT_EQ(pool.inUse(), 0u) << "output blocks go back once sent";
}

TEST_F(LegPair, AFullOutputBlockSaysWantWriteUntilSent) {
  open();
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  std::string data(16384, 'r');
  size_t n = 0;
  ASSERT_EQ(serverLeg.write(data.data(), data.size(), &n), LegStatus::Ok);
  EXPECT_EQ(n, data.size()) << "one record fits a block";
  // Nothing sent: the next record does not fit behind the first.
  EXPECT_EQ(serverLeg.write(data.data(), data.size(), &n), LegStatus::WantWrite);
  std::span<const char> out = serverLeg.takeOutput();
  EXPECT_GT(out.size(), data.size());
  // A partial send: the rest is taken next, and the retry still waits.
  serverLeg.outputSent(1000);
  EXPECT_TRUE(serverLeg.hasOutput());
  out = serverLeg.takeOutput();
  serverLeg.outputSent(out.size());
  EXPECT_EQ(serverLeg.write(data.data(), data.size(), &n), LegStatus::Ok) << "the same bytes, again";
  EXPECT_EQ(n, data.size());
}

TEST_F(LegPair, GarbageIsAProtocolFailure) {
  ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool));
  std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  serverLeg.setInput(garbage.data(), garbage.size());
  EXPECT_EQ(serverLeg.handshake(), LegStatus::Failed);
  EXPECT_EQ(serverLeg.failure(), HandshakeFailure::Protocol);
  EXPECT_EQ(ERR_peek_error(), 0u) << "the error queue is left empty";
}

TEST_F(LegPair, AServerTheClientDoesNotTrustIsUnknownCa) {
  Identity other;
  makeIdentity(&other, "other.test");
  Ctx distrusting;
  clientCtx(&distrusting, other);
  ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool));
  ASSERT_TRUE(clientLeg.open(distrusting.ctx, false, &pool));
  LegStatus s, c;
  handshake(&s, &c);
  EXPECT_EQ(c, LegStatus::Failed);
  EXPECT_EQ(clientLeg.failure(), HandshakeFailure::UnknownCa);
}

TEST_F(LegPair, AMissingRequiredClientCertificateIsBadCertificate) {
  SSL_CTX_set_verify(server.ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  open();
  LegStatus s, c;
  handshake(&s, &c);
  EXPECT_EQ(s, LegStatus::Failed);
  EXPECT_EQ(serverLeg.failure(), HandshakeFailure::BadCertificate);
}

TEST_F(LegPair, NoCommonVersionIsNoShared) {
  SSL_CTX_set_min_proto_version(server.ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(client.ctx, TLS1_2_VERSION);
  open();
  LegStatus s, c;
  handshake(&s, &c);
  EXPECT_EQ(s, LegStatus::Failed);
  EXPECT_EQ(serverLeg.failure(), HandshakeFailure::NoShared);
}

TEST_F(LegPair, AClientReusesTheSessionItStored) {
  Leg::enableSessionStore(client.ctx);
  SSL_SESSION* stored = nullptr;
  for (int round = 0; round < 2; ++round) {
    open();
    clientLeg.setSessionSlot(&stored);
    LegStatus s, c;
    handshake(&s, &c);
    ASSERT_EQ(c, LegStatus::Ok);
    // TLS 1.3 tickets come after the handshake, read like data.
    transfer(serverLeg, clientLeg, &toClient, "x");
    EXPECT_EQ(SSL_session_reused(clientLeg.ssl()) == 1, round == 1) << "round " << round;
    serverLeg.reset();
    clientLeg.reset();
  }
  ASSERT_NE(stored, nullptr);
  SSL_SESSION_free(stored);
}

}  // namespace
}  // namespace lb::tls
