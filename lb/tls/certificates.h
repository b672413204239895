#pragma once
// Certificates, chains and private keys read from PEM files, once per
// config generation, and checked: the file is there and readable, holds a
// certificate (or key), the key matches the certificate, the certificate is
// valid now. Problems go to a BuildReport at the config key's position,
// naming the file. The loaded objects are immutable and shared (by
// reference count) by every worker's SSL_CTX.

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "lb/tls/context.h"

namespace lb::tls {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct X509StackFree {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_pop_free(stack, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

// A certificate warns when it expires within this long.
inline constexpr int64_t kExpiryWarningSeconds = 14 * 24 * 3600;

// One certificate file (leaf, then chain) and its key.
struct LoadedCertificate {
  X509Ptr cert;
  X509StackPtr chain;  // the certificates after the leaf, in file order (maybe empty)
  PkeyPtr key;
  // The names SNI is matched against (config::normalizeServerName form):
  // the DNS subjectAltNames, else the subject's CN; unusable names skipped.
  std::vector<std::string> names;
  CertificateInfo info;
};

// `owner` names what uses the certificate in messages and CertificateInfo
// ("edge", "pool api"). `nowUnix` is the time validity is checked against.
std::optional<LoadedCertificate> loadCertificate(const config::CertificateFiles& files,
                                                 std::string_view owner, int64_t nowUnix,
                                                 BuildReport* report);

// Every certificate of a CA file (client_ca, ca); an error when the file is
// unreadable or holds none. `key` names the config key in messages.
std::optional<std::vector<X509Ptr>> loadCaFile(const config::FilePath& file, std::string_view key,
                                               BuildReport* report);

// The certificate as /status shows it.
CertificateInfo describeCertificate(X509* cert, std::string_view owner, std::string_view file);

// A store of the CA certificates (each worker's context gets its own: an
// X509_STORE has a lock that verification takes).
X509_STORE* newStore(const std::vector<X509Ptr>& certificates, OSSL_LIB_CTX* library = nullptr);

// Copies of a loaded certificate, its chain and key made in `library`
// (lb/tls/context.h, LibraryPtr), through PEM. False when OpenSSL failed.
struct CertificateCopy {
  X509Ptr cert;
  X509StackPtr chain;
  PkeyPtr key;
};
bool copyInto(OSSL_LIB_CTX* library, const LoadedCertificate& from, CertificateCopy* to);
X509Ptr copyInto(OSSL_LIB_CTX* library, X509* cert);

}  // namespace lb::tls
