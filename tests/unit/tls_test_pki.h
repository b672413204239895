#pragma once
// Keys and certificates made for a test with OpenSSL's API, in memory and
// as PEM files in a temporary directory (no key is ever committed), and a
// TLS handshake between two SSL objects over a memory BIO pair (no sockets).

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace testpki {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Cert = std::unique_ptr<X509, X509Free>;
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using Ssl = std::unique_ptr<SSL, SslFree>;

enum class KeyKind { Rsa2048, EcP256 };
Pkey makeKey(KeyKind kind);

struct CertSpec {
  std::string commonName{};
  std::vector<std::string> dnsNames{};  // subjectAltNames; none: no SAN extension
  int64_t notBeforeSeconds = -3600;   // relative to now
  int64_t notAfterSeconds = 30 * 86400;
  bool ca = false;
  long serial = 1;
};
// Signed by `issuerKey` with `issuer` as issuer name (null: self-signed).
Cert makeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuerKey);

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// PEM files: certificates in order (leaf, then chain); a key with `mode`.
std::string writeCerts(const std::string& path, const std::vector<X509*>& certs);
std::string writeKey(const std::string& path, EVP_PKEY* key, unsigned mode = 0600);
void writeText(const std::string& path, const std::string& text);

// Drives both ends' handshakes over a BIO pair until both finish or one
// fails; true when both finished. Then lets the client read what the
// server sent after its end (TLS 1.3 session tickets).
bool handshake(SSL* client, SSL* server);

// The CN of the certificate the client got from the server ("" if none).
std::string peerCommonName(SSL* ssl);

}  // namespace testpki
