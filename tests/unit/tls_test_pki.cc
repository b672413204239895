#include "tests/unit/tls_test_pki.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace testpki {

Pkey makeKey(KeyKind kind) {
  EVP_PKEY* key = kind == KeyKind::Rsa2048 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                           : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!key) throw std::runtime_error("key generation failed");
  return Pkey(key);
}

namespace {

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (!extension) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
}

}  // namespace

Cert makeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuerKey) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.notBeforeSeconds);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.notAfterSeconds);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("ringlb tests"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.commonName.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (spec.ca) {
    addExtension(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
    addExtension(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    addExtension(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
  }
  addExtension(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (issuer) addExtension(cert.get(), issuer, NID_authority_key_identifier, "keyid");
  if (!spec.dnsNames.empty()) {
    std::string sans;
    for (const std::string& dns : spec.dnsNames) sans += (sans.empty() ? "DNS:" : ",DNS:") + dns;
    addExtension(cert.get(), issuer, NID_subject_alt_name, sans);
  }
  if (!X509_sign(cert.get(), issuerKey ? issuerKey : key, EVP_sha256()))
    throw std::runtime_error("signing failed");
  return cert;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ringlb-tls-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

FILE* openFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (!file) throw std::runtime_error("cannot write " + path);
  return file;
}

}  // namespace

std::string writeCerts(const std::string& path, const std::vector<X509*>& certs) {
  FILE* file = openFile(path);
  for (X509* cert : certs) PEM_write_X509(file, cert);
  std::fclose(file);
  return path;
}

std::string writeKey(const std::string& path, EVP_PKEY* key, unsigned mode) {
  FILE* file = openFile(path);
  PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(file);
  chmod(path.c_str(), mode);
  return path;
}

void writeText(const std::string& path, const std::string& text) {
  FILE* file = openFile(path);
  std::fputs(text.c_str(), file);
  std::fclose(file);
}

namespace {

// 1: done; 0: wants to go on; -1: failed.
int step(SSL* ssl) {
  if (SSL_is_init_finished(ssl)) return 1;
  int result = SSL_do_handshake(ssl);
  if (result == 1) return 1;
  int error = SSL_get_error(ssl, result);
  return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

}  // namespace

bool handshake(SSL* client, SSL* server) {
  BIO* clientEnd = nullptr;
  BIO* serverEnd = nullptr;
  BIO_new_bio_pair(&clientEnd, 0, &serverEnd, 0);
  SSL_set_bio(client, clientEnd, clientEnd);
  SSL_set_bio(server, serverEnd, serverEnd);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  // Each round moves at least one flight; a handshake has a handful.
  for (int round = 0; round < 50; ++round) {
    int c = step(client);
    int s = step(server);
    if (c < 0 || s < 0) {
      // Let the failing side's alert reach the other end.
      step(client);
      step(server);
      ERR_clear_error();
      return false;
    }
    if (c == 1 && s == 1) {
      char byte;
      SSL_read(client, &byte, 1);  // takes the session tickets; no data is waiting
      ERR_clear_error();
      return true;
    }
  }
  return false;
}

std::string peerCommonName(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return "";
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
  return name;
}

}  // namespace testpki
