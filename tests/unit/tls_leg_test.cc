// The TLS leg driven through memory only: two legs (a server and a client)
// whose outputs are handed to each other's inputs, as the worker does with
// its receives and sends. Certificates are made here, in memory.
#include "lb/tls/leg.h"

#include <gtest/gtest.h>
#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>
#include <string>
#include <vector>

#include "lb/tls/in_memory.h"

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

bool carry(Leg& from, Leg& to, std::string* wire) { return carryOutput(from, to, wire); }

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
        LegStatus status = to.read(plain.data(), plain.size(), &n);
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

TEST_F(LegPair, AKeyUpdateTheClientRequestsGoesOutWithTheNextWrite) {
  open();
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  transfer(serverLeg, clientLeg, &toClient, "tickets");  // the client takes its tickets
  ASSERT_EQ(SSL_key_update(clientLeg.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "x"), "x");
  // The server answers with its own KeyUpdate ahead of the next record it
  // writes (in the same output), so the client can still decrypt.
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "after the update"), "after the update");
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "and back"), "and back");
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


// ---------------------------------------------------------------------------
// kTLS transmit, with the test playing the kernel: after the hand-over it
// seals what the server sends with the key block the leg gave it. The
// client is plain OpenSSL, so every record it accepts proves the keys, the
// nonces and the sequence numbers right: before the hand-over (the leg's
// own sealing: TLS 1.2's Finished, TLS 1.3's tickets, data) and after it.

struct KtlsCase {
  const char* name;
  int version;         // TLS1_2_VERSION or TLS1_3_VERSION
  const char* cipher;  // a TLS 1.3 suite, or a TLS 1.2 cipher list
  uint16_t kernelCipher;
};

class KernelTx : public LegPair, public ::testing::WithParamInterface<KtlsCase> {
 protected:
  void openOffering() {
    const KtlsCase& c = GetParam();
    SSL_CTX_set_min_proto_version(server.ctx, c.version);
    SSL_CTX_set_max_proto_version(server.ctx, c.version);
    if (c.version == TLS1_3_VERSION)
      ASSERT_EQ(SSL_CTX_set_ciphersuites(server.ctx, c.cipher), 1);
    else
      ASSERT_EQ(SSL_CTX_set_cipher_list(server.ctx, c.cipher), 1);
    ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool, true));
    ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  }

  // The kernel's side of a hand-over: takes the leg's key block.
  void handOver() {
    ASSERT_TRUE(serverLeg.kernelTxReady());
    ASSERT_FALSE(serverLeg.hasOutput()) << "the worker hands over only once all output is sent";
    const KernelKeyBlock& keys = serverLeg.kernelKeys();
    ASSERT_GT(keys.length, sizeof(tls_crypto_info));
    tls_crypto_info info;
    std::memcpy(&info, keys.bytes.data(), sizeof info);
    EXPECT_EQ(info.cipher_type, GetParam().kernelCipher);
    EXPECT_EQ(info.version, GetParam().version == TLS1_3_VERSION ? TLS_1_3_VERSION : TLS_1_2_VERSION);
    ASSERT_TRUE(kernel.start({keys.bytes.data(), keys.length}));
    serverLeg.handOverTx();
    EXPECT_TRUE(serverLeg.kernelTx());
  }

  // What the kernel sends for a write of `plain` of record type `type`.
  void kernelSend(uint8_t type, const std::string& plain) {
    std::vector<uint8_t> record(plain.size() + RecordSealer::kOverheadBytes);
    size_t n = kernel.seal(type, {reinterpret_cast<const uint8_t*>(plain.data()), plain.size()}, record);
    ASSERT_GT(n, 0u);
    ASSERT_TRUE(clientLeg.inputConsumed());
    toClient.assign(reinterpret_cast<const char*>(record.data()), n);
    clientLeg.setInput(toClient.data(), toClient.size());
  }

  std::string clientReads() {
    std::string got;
    char buffer[16384];
    size_t n = 0;
    while (clientLeg.read(buffer, sizeof buffer, &n) == LegStatus::Ok) got.append(buffer, n);
    return got;
  }

  RecordSealer kernel;
};

TEST_P(KernelTx, TheClientReadsWhatTheLegAndThenTheKernelSeal) {
  openOffering();
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  ASSERT_EQ(c, LegStatus::Ok) << "TLS 1.2's Finished is sealed by the leg";
  EXPECT_TRUE(serverLeg.kernelTxReady()) << "OpenSSL handed over its transmit keys";
  EXPECT_STREQ(SSL_get_cipher_name(clientLeg.ssl()), SSL_get_cipher_name(serverLeg.ssl()));

  // Before the hand-over: tickets (TLS 1.3) and data, sealed by the leg.
  std::string before(40000, 'b');
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, before), before);
  if (GetParam().version == TLS1_3_VERSION) {
    SSL_SESSION* session = SSL_get1_session(clientLeg.ssl());
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(SSL_SESSION_is_resumable(session), 1) << "the sealed tickets reached the client";
    SSL_SESSION_free(session);
  }

  handOver();
  for (int i = 0; i < 3; ++i) {
    std::string record(i == 1 ? 16384 : 1000 + i, static_cast<char>('k' + i));
    kernelSend(23, record);
    EXPECT_EQ(clientReads(), record) << "record " << i << " after the hand-over";
  }
  // The client's data is still OpenSSL's to decrypt.
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "up after the hand-over"), "up after the hand-over");

  // close_notify: OpenSSL writes the alert as a plaintext control record.
  ASSERT_EQ(serverLeg.shutdown(), LegStatus::Ok);
  ASSERT_TRUE(serverLeg.hasOutput());
  EXPECT_EQ(serverLeg.outputRecordType(), 21);
  std::span<const char> alert = serverLeg.takeOutput();
  std::string alertBytes(alert.data(), alert.size());
  serverLeg.outputSent(alert.size());
  EXPECT_FALSE(serverLeg.hasOutput());
  kernelSend(21, alertBytes);
  char buffer[64];
  size_t n = 0;
  EXPECT_EQ(clientLeg.read(buffer, sizeof buffer, &n), LegStatus::Closed);
  EXPECT_EQ(pool.inUse(), 0u);
}

TEST_P(KernelTx, WithoutTheOfferOpenSslKeepsItsKeys) {
  ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool, false));
  ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  EXPECT_FALSE(serverLeg.kernelTxReady());
  EXPECT_EQ(serverLeg.kernelKeys().length, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Ciphers, KernelTx,
    ::testing::Values(KtlsCase{"tls13_aes128", TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", TLS_CIPHER_AES_GCM_128},
                      KtlsCase{"tls13_aes256", TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", TLS_CIPHER_AES_GCM_256},
                      KtlsCase{"tls13_chacha", TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256",
                               TLS_CIPHER_CHACHA20_POLY1305},
                      KtlsCase{"tls12_aes128", TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", TLS_CIPHER_AES_GCM_128},
                      KtlsCase{"tls12_aes256", TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", TLS_CIPHER_AES_GCM_256},
                      KtlsCase{"tls12_chacha", TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305",
                               TLS_CIPHER_CHACHA20_POLY1305}),
    [](const ::testing::TestParamInfo<KtlsCase>& info) { return std::string(info.param.name); });

// OpenSSL 3.0 changes its transmit keys for a key update without telling
// the BIO: the leg fails rather than send records the client cannot read,
// before the hand-over (sealing) and after it (the kernel's keys).
class KeyUpdateWithKernelTx : public LegPair, public ::testing::WithParamInterface<bool> {};

TEST_P(KeyUpdateWithKernelTx, FailsTheLeg) {
  SSL_CTX_set_min_proto_version(server.ctx, TLS1_3_VERSION);
  ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool, true));
  ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  transfer(serverLeg, clientLeg, &toClient, "tickets");
  ASSERT_TRUE(serverLeg.kernelTxReady());
  if (GetParam()) serverLeg.handOverTx();
  ASSERT_EQ(SSL_key_update(clientLeg.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  size_t n = 0;
  ASSERT_EQ(clientLeg.write("x", 1, &n), LegStatus::Ok);
  ASSERT_TRUE(carry(clientLeg, serverLeg, &toServer));
  char buffer[64];
  ASSERT_EQ(serverLeg.read(buffer, sizeof buffer, &n), LegStatus::Ok);
  // OpenSSL answers with its own KeyUpdate before its next record.
  EXPECT_EQ(serverLeg.write("y", 1, &n), LegStatus::Failed);
  EXPECT_FALSE(serverLeg.hasOutput()) << "nothing is sent under keys the client no longer uses";
}

INSTANTIATE_TEST_SUITE_P(BeforeAndAfterTheHandOver, KeyUpdateWithKernelTx, ::testing::Bool());

// ---------------------------------------------------------------------------
// Detached server legs: after a TLS 1.3 handshake the SSL object is freed;
// the client (plain OpenSSL) must read every record the leg seals, and the
// leg must open every record the client writes, whatever the suite.

class Detached : public LegPair, public ::testing::WithParamInterface<const char*> {
 protected:
  void openDetaching() {
    Leg::enableDetach(server.ctx);
    ASSERT_EQ(SSL_CTX_set_ciphersuites(server.ctx, GetParam()), 1);
    ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool, false, true));
    ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  }

  void handshakeAndDetach() {
    openDetaching();
    LegStatus s, c;
    handshake(&s, &c);
    ASSERT_EQ(s, LegStatus::Ok);
    ASSERT_EQ(c, LegStatus::Ok);
    ASSERT_TRUE(serverLeg.detached());
    ASSERT_EQ(serverLeg.ssl(), nullptr);
  }

  std::string serverReads() {
    std::string got;
    std::vector<char> plain(BlockPool::kBlockBytes);
    size_t n = 0;
    LegStatus status;
    while ((status = serverLeg.read(plain.data(), plain.size(), &n)) == LegStatus::Ok) got.append(plain.data(), n);
    EXPECT_EQ(status, LegStatus::WantRead) << serverLeg.failureText();
    return got;
  }

  // What the client wrote, handed to the server `step` bytes per input.
  std::string dribble(size_t step) {
    std::string wire;
    while (clientLeg.hasOutput()) {
      std::span<const char> out = clientLeg.takeOutput();
      wire.append(out.data(), out.size());
      clientLeg.outputSent(out.size());
    }
    std::string got;
    for (size_t at = 0; at < wire.size(); at += step) {
      std::string piece = wire.substr(at, step);
      serverLeg.setInput(piece.data(), piece.size());
      got += serverReads();
      EXPECT_TRUE(serverLeg.inputConsumed());
    }
    return got;
  }
};

TEST_P(Detached, BytesBothWaysThenCloseNotify) {
  handshakeAndDetach();
  EXPECT_STREQ(serverLeg.facts().version, "TLSv1.3");
  EXPECT_STREQ(serverLeg.facts().cipher, SSL_get_cipher_name(clientLeg.ssl()));
  EXPECT_FALSE(serverLeg.facts().resumed);

  std::string down(300000, '\0');
  for (size_t i = 0; i < down.size(); ++i) down[i] = static_cast<char>(i * 13 + i / 999);
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, down), down) << "tickets and data sealed by the leg";
  std::string up(1 << 20, '\0');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>(i * 7 + i / 4096);
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, up), up);

  ASSERT_EQ(clientLeg.shutdown(), LegStatus::Ok);
  ASSERT_TRUE(carry(clientLeg, serverLeg, &toServer));
  std::vector<char> plain(BlockPool::kBlockBytes);
  size_t n = 0;
  EXPECT_EQ(serverLeg.read(plain.data(), plain.size(), &n), LegStatus::Closed);
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "after"), "after") << "half-closed, the server still writes";
  ASSERT_EQ(serverLeg.shutdown(), LegStatus::Ok);
  ASSERT_TRUE(carry(serverLeg, clientLeg, &toClient));
  EXPECT_EQ(clientLeg.read(plain.data(), plain.size(), &n), LegStatus::Closed) << "our close_notify";
  EXPECT_EQ(pool.inUse(), 0u) << "an idle detached leg holds no block";
}

TEST_P(Detached, RecordsSplitAcrossInputsAreGathered) {
  handshakeAndDetach();
  transfer(serverLeg, clientLeg, &toClient, "tickets");
  std::string data;
  for (int i = 0; i < 5; ++i) {
    std::string record(i == 2 ? 16384 : 100 + i, static_cast<char>('a' + i));
    size_t n = 0;
    ASSERT_EQ(clientLeg.write(record.data(), record.size(), &n), LegStatus::Ok);
    ASSERT_EQ(n, record.size());
    data += record;
  }
  EXPECT_EQ(dribble(1), data) << "one byte per input";
  EXPECT_EQ(pool.inUse(), 0u) << "the gathering block goes back with the last record";
  size_t n = 0;
  ASSERT_EQ(clientLeg.write(data.data(), 16384, &n), LegStatus::Ok);
  EXPECT_EQ(dribble(7000), data.substr(0, 16384)) << "a record over three inputs";
}

TEST_P(Detached, TheClientsKeyUpdatesAreFollowedAndAnswered) {
  handshakeAndDetach();
  transfer(serverLeg, clientLeg, &toClient, "tickets");
  ASSERT_EQ(SSL_key_update(clientLeg.ssl(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "after ours"), "after ours");
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "down"), "down");
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(SSL_key_update(clientLeg.ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "x"), "x");
    // The leg's own KeyUpdate goes out under the old keys, then the next.
    EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "under new keys"), "under new keys") << round;
    EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "and back"), "and back") << round;
  }
}

TEST_P(Detached, ATamperedRecordFailsTheLeg) {
  handshakeAndDetach();
  size_t n = 0;
  ASSERT_EQ(clientLeg.write("secret", 6, &n), LegStatus::Ok);
  std::span<const char> out = clientLeg.takeOutput();
  std::string wire(out.data(), out.size());
  clientLeg.outputSent(out.size());
  wire[wire.size() - 20] ^= 1;
  serverLeg.setInput(wire.data(), wire.size());
  std::vector<char> plain(BlockPool::kBlockBytes);
  EXPECT_EQ(serverLeg.read(plain.data(), plain.size(), &n), LegStatus::Failed);
  EXPECT_STREQ(std::string(serverLeg.failureText()).c_str(), "bad record mac");
}

TEST_P(Detached, NotARecordFailsTheLeg) {
  handshakeAndDetach();
  std::string wire = "\x17\x03\x03\x48\x00";  // longer than any record may be
  wire.append(100, 'x');
  serverLeg.setInput(wire.data(), wire.size());
  std::vector<char> plain(BlockPool::kBlockBytes);
  size_t n = 0;
  EXPECT_EQ(serverLeg.read(plain.data(), plain.size(), &n), LegStatus::Failed);
  EXPECT_STREQ(std::string(serverLeg.failureText()).c_str(), "not a TLS 1.3 record");
}

TEST_P(Detached, BytesRightBehindTheClientsFinishedAreRead) {
  openDetaching();
  LegStatus c = LegStatus::WantRead, s = LegStatus::WantRead;
  // Client hello, server flight, then the client's Finished and its first
  // data in one input.
  ASSERT_EQ(clientLeg.handshake(), LegStatus::WantRead);
  ASSERT_TRUE(carry(clientLeg, serverLeg, &toServer));
  ASSERT_EQ(serverLeg.handshake(), LegStatus::WantRead);
  ASSERT_TRUE(carry(serverLeg, clientLeg, &toClient));
  c = clientLeg.handshake();
  ASSERT_EQ(c, LegStatus::Ok);
  size_t n = 0;
  ASSERT_EQ(clientLeg.write("right behind", 12, &n), LegStatus::Ok);
  ASSERT_TRUE(carry(clientLeg, serverLeg, &toServer));
  s = serverLeg.handshake();
  ASSERT_EQ(s, LegStatus::Ok);
  ASSERT_TRUE(serverLeg.detached());
  EXPECT_FALSE(serverLeg.inputConsumed()) << "the data is still the leg's to open";
  EXPECT_EQ(serverReads(), "right behind");
}

// The client holds the keys, so it can send whatever it likes under them:
// the test seals records with the client's own secret (its key log), at the
// sequence number the client is at (none sent since the handshake).
std::string clientSecretLine;

TEST_P(Detached, AuthenticRecordsNoClientMaySendFailTheLeg) {
  struct Case {
    uint8_t type;
    std::string content;
    const char* why;
  };
  const Case cases[] = {
      {21, std::string("\x02\x28", 2), "alert from the client"},
      {22, std::string("\x04\x00\x00\x01\x00", 5), "handshake message after the handshake"},
      {22, std::string("\x18\x00\x00\x01\x02", 5), "handshake message after the handshake"},
      {20, std::string("\x01", 1), "unexpected record type"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.why);
    SSL_CTX_set_keylog_callback(client.ctx, [](const SSL*, const char* line) {
      if (std::strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0) clientSecretLine = line;
    });
    handshakeAndDetach();
    std::string hex = clientSecretLine.substr(clientSecretLine.rfind(' ') + 1);
    std::vector<uint8_t> secret;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) secret.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    const SSL_CIPHER* cipher = SSL_get_current_cipher(clientLeg.ssl());
    RecordSealer forged;
    ASSERT_TRUE(forged.startTls13(static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(cipher)), secret));

    std::vector<uint8_t> wire(1024);
    size_t n = forged.seal(23, {reinterpret_cast<const uint8_t*>("ok"), 2}, wire);
    n += forged.seal(c.type, {reinterpret_cast<const uint8_t*>(c.content.data()), c.content.size()},
                     {wire.data() + n, wire.size() - n});
    toServer.assign(reinterpret_cast<const char*>(wire.data()), n);
    serverLeg.setInput(toServer.data(), toServer.size());
    std::vector<char> plain(BlockPool::kBlockBytes);
    size_t got = 0;
    ASSERT_EQ(serverLeg.read(plain.data(), plain.size(), &got), LegStatus::Ok) << "the forger has the right keys";
    EXPECT_EQ(std::string(plain.data(), got), "ok");
    EXPECT_EQ(serverLeg.read(plain.data(), plain.size(), &got), LegStatus::Failed);
    EXPECT_EQ(serverLeg.failureText(), c.why);
    serverLeg.reset();
    clientLeg.reset();
  }
}

INSTANTIATE_TEST_SUITE_P(Suites, Detached,
                         ::testing::Values("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param[4] == 'A' ? (info.param[8] == '1' ? "aes128" : "aes256")
                                                                   : "chacha");
                         });

TEST_F(LegPair, ATls12LegStaysWithOpenSsl) {
  Leg::enableDetach(server.ctx);
  SSL_CTX_set_max_proto_version(server.ctx, TLS1_2_VERSION);
  ASSERT_TRUE(serverLeg.open(server.ctx, true, &pool, false, true));
  ASSERT_TRUE(clientLeg.open(client.ctx, false, &pool));
  LegStatus s, c;
  handshake(&s, &c);
  ASSERT_EQ(s, LegStatus::Ok);
  EXPECT_FALSE(serverLeg.detached());
  EXPECT_NE(serverLeg.ssl(), nullptr);
  EXPECT_STREQ(serverLeg.facts().version, "TLSv1.2");
  EXPECT_EQ(transfer(clientLeg, serverLeg, &toServer, "up"), "up");
  EXPECT_EQ(transfer(serverLeg, clientLeg, &toClient, "down"), "down");
}

}  // namespace
}  // namespace lb::tls
