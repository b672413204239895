#include "lb/tls/certificates.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "config/file_error.h"
#include "config/server_name.h"

namespace lb::tls {
namespace {

// A CA bundle of a whole trust store is a few hundred KiB.
constexpr size_t kMaxPemBytes = size_t{4} << 20;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

struct PemFile {
  std::string bytes;
  mode_t mode = 0;
};

void addError(BuildReport* report, const config::FilePath& file, std::string message) {
  report->errors.push_back({file.position, std::move(message)});
}

// Never blocks (a FIFO is refused, not waited on) and never reads more
// than kMaxPemBytes.
std::optional<PemFile> readPem(const config::FilePath& file, std::string_view what, BuildReport* report) {
  std::string name = config::printable(file.path, 200);
  int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    addError(report, file, fmt::format("cannot read {} {}: {}", what, name, config::fileErrorText(errno)));
    return std::nullopt;
  }
  PemFile pem;
  struct stat st {};
  std::string problem;
  if (fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "not a regular file";
  } else if (static_cast<uint64_t>(st.st_size) > kMaxPemBytes) {
    problem = fmt::format("larger than {} bytes", kMaxPemBytes);
  } else {
    pem.mode = st.st_mode;
    pem.bytes.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < pem.bytes.size()) {
      ssize_t n = ::read(fd, pem.bytes.data() + done, pem.bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = std::strerror(errno);
        break;
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    pem.bytes.resize(done);
  }
  ::close(fd);
  if (!problem.empty()) {
    addError(report, file, fmt::format("cannot read {} {}: {}", what, name, problem));
    return std::nullopt;
  }
  return pem;
}

BioPtr memoryBio(const std::string& bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// Encrypted keys are refused rather than prompted for.
int noPassphrase(char*, int, int, void*) { return -1; }

// Reads every PEM certificate of `bytes`. nullopt when one of them does not
// parse; an empty vector when there is none.
std::optional<std::vector<X509Ptr>> readCertificates(const std::string& bytes) {
  std::vector<X509Ptr> out;
  BioPtr bio = memoryBio(bytes);
  while (true) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr);
    if (cert) {
      out.emplace_back(cert);
      continue;
    }
    unsigned long error = ERR_peek_last_error();
    ERR_clear_error();
    // The end of the input reads as "no start line".
    if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE) return out;
    return std::nullopt;
  }
}

int64_t unixTime(const ASN1_TIME* time) {
  tm parts{};
  if (!ASN1_TIME_to_tm(time, &parts)) return 0;
  return static_cast<int64_t>(timegm(&parts));
}

std::string utcDate(int64_t unix) {
  time_t t = static_cast<time_t>(unix);
  tm parts{};
  gmtime_r(&t, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

std::string subjectText(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length > 0 ? length : 0));
}

std::string serialHex(X509* cert) {
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (!serial) return "";
  char* hex = BN_bn2hex(serial);
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(serial);
  return out;
}

// The DNS subjectAltNames as written, else the CN.
std::vector<std::string> certificateNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_STRING* dns = name->d.dNSName;
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       static_cast<size_t>(ASN1_STRING_length(dns)));
  }
  GENERAL_NAMES_free(sans);
  if (!names.empty()) return names;
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                       static_cast<size_t>(ASN1_STRING_length(cn)));
  }
  return names;
}

// Validity now: an error when expired or not yet valid, a warning when it
// expires within kExpiryWarningSeconds.
void checkValidity(const LoadedCertificate& loaded, const config::FilePath& file, int64_t nowUnix,
                   BuildReport* report) {
  std::string name = config::printable(file.path, 200);
  int64_t notBefore = unixTime(X509_get0_notBefore(loaded.cert.get()));
  int64_t notAfter = loaded.info.notAfterUnix;
  if (notAfter <= nowUnix) {
    addError(report, file, fmt::format("certificate {} ({}) expired on {}", name,
                                       config::printable(loaded.info.subject), utcDate(notAfter)));
  } else if (notBefore > nowUnix) {
    addError(report, file, fmt::format("certificate {} ({}) is not valid before {}", name,
                                       config::printable(loaded.info.subject), utcDate(notBefore)));
  } else if (notAfter - nowUnix <= kExpiryWarningSeconds) {
    int64_t left = notAfter - nowUnix;
    report->warnings.push_back(
        {file.position, fmt::format("certificate {} ({}) expires in {} days {} hours, on {}", name,
                                    config::printable(loaded.info.subject), left / 86400,
                                    left % 86400 / 3600, utcDate(notAfter))});
  }
}

std::optional<PkeyPtr> loadKey(const config::FilePath& file, BuildReport* report) {
  auto pem = readPem(file, "private key file", report);
  if (!pem) return std::nullopt;
  std::string name = config::printable(file.path, 200);
  // Group-readable keys are the usual arrangement with a group of its own
  // (Debian's ssl-cert, mode 0640), so only a key every user can read warns.
  if (pem->mode & S_IROTH)
    report->warnings.push_back(
        {file.position, fmt::format("private key file {} is readable by every user of this host (mode {:04o}); "
                                    "chmod o-r it",
                                    name, pem->mode & 07777)});
  BioPtr bio = memoryBio(pem->bytes);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr);
  ERR_clear_error();
  if (!key) {
    bool encrypted = pem->bytes.find("ENCRYPTED") != std::string::npos;
    addError(report, file,
             fmt::format("private key file {} holds no {}PEM private key", name,
                         encrypted ? "unencrypted (ringlb asks for no passphrase) " : ""));
    return std::nullopt;
  }
  PkeyPtr owned(key);
  int type = EVP_PKEY_get_base_id(key);
  if (type != EVP_PKEY_RSA && type != EVP_PKEY_EC && type != EVP_PKEY_ED25519) {
    addError(report, file, fmt::format("private key file {}: a {} key; ringlb takes RSA, ECDSA or Ed25519 keys",
                                       name, OBJ_nid2sn(type)));
    return std::nullopt;
  }
  return owned;
}

}  // namespace

CertificateInfo describeCertificate(X509* cert, std::string_view owner, std::string_view file) {
  CertificateInfo info;
  info.listener = owner;
  info.file = file;
  info.subject = subjectText(cert);
  info.names = certificateNames(cert);
  info.serial = serialHex(cert);
  info.notAfterUnix = unixTime(X509_get0_notAfter(cert));
  return info;
}

std::optional<LoadedCertificate> loadCertificate(const config::CertificateFiles& files,
                                                 std::string_view owner, int64_t nowUnix,
                                                 BuildReport* report) {
  size_t errorsBefore = report->errors.size();
  std::string certName = config::printable(files.cert.path, 200);
  LoadedCertificate loaded;
  if (auto pem = readPem(files.cert, "certificate file", report)) {
    auto certificates = readCertificates(pem->bytes);
    if (!certificates) {
      addError(report, files.cert, fmt::format("certificate file {}: a PEM certificate does not parse", certName));
    } else if (certificates->empty()) {
      addError(report, files.cert, fmt::format("certificate file {} holds no PEM certificate", certName));
    } else {
      loaded.cert = std::move(certificates->front());
      loaded.chain.reset(sk_X509_new_null());
      for (size_t i = 1; i < certificates->size(); ++i) sk_X509_push(loaded.chain.get(), (*certificates)[i].release());
      loaded.info = describeCertificate(loaded.cert.get(), owner, files.cert.path);
      for (const std::string& name : loaded.info.names)
        if (auto normalized = config::normalizeServerName(name)) loaded.names.push_back(*normalized);
      checkValidity(loaded, files.cert, nowUnix, report);
    }
  }
  if (auto key = loadKey(files.key, report)) loaded.key = std::move(*key);
  if (loaded.cert && loaded.key) {
    if (X509_check_private_key(loaded.cert.get(), loaded.key.get()) != 1)
      addError(report, files.key,
               fmt::format("private key file {} does not match certificate {}",
                           config::printable(files.key.path, 200), certName));
    ERR_clear_error();
  }
  if (report->errors.size() != errorsBefore) return std::nullopt;
  return loaded;
}

std::optional<std::vector<X509Ptr>> loadCaFile(const config::FilePath& file, std::string_view key,
                                               BuildReport* report) {
  auto pem = readPem(file, fmt::format("{} file", key), report);
  if (!pem) return std::nullopt;
  auto certificates = readCertificates(pem->bytes);
  std::string name = config::printable(file.path, 200);
  if (!certificates) {
    addError(report, file, fmt::format("{} file {}: a PEM certificate does not parse", key, name));
    return std::nullopt;
  }
  if (certificates->empty()) {
    addError(report, file, fmt::format("{} file {} holds no PEM certificate", key, name));
    return std::nullopt;
  }
  return certificates;
}

X509_STORE* newStore(const std::vector<X509Ptr>& certificates, OSSL_LIB_CTX* library) {
  X509_STORE* store = X509_STORE_new();
  for (const X509Ptr& cert : certificates) {
    if (!library) {
      X509_STORE_add_cert(store, cert.get());
      continue;
    }
    X509Ptr copy = copyInto(library, cert.get());
    if (copy) X509_STORE_add_cert(store, copy.get());  // takes its own reference
  }
  ERR_clear_error();  // duplicates in a bundle are not an error
  return store;
}

X509Ptr copyInto(OSSL_LIB_CTX* library, X509* cert) {
  BioPtr pem(BIO_new(BIO_s_mem()));
  if (!pem || PEM_write_bio_X509(pem.get(), cert) != 1) return nullptr;
  X509* copy = X509_new_ex(library, nullptr);
  if (copy && !PEM_read_bio_X509(pem.get(), &copy, nullptr, nullptr)) {
    X509_free(copy);
    copy = nullptr;
  }
  return X509Ptr(copy);
}

bool copyInto(OSSL_LIB_CTX* library, const LoadedCertificate& from, CertificateCopy* to) {
  to->cert = copyInto(library, from.cert.get());
  to->chain.reset(sk_X509_new_null());
  bool ok = to->cert && to->chain;
  for (int i = 0; ok && from.chain && i < sk_X509_num(from.chain.get()); ++i) {
    X509Ptr link = copyInto(library, sk_X509_value(from.chain.get(), i));
    ok = link && sk_X509_push(to->chain.get(), link.get()) > 0;
    if (ok) (void)link.release();
  }
  BioPtr pem(BIO_new(BIO_s_secmem()));  // the key's PEM text is wiped when freed
  ok = ok && pem && PEM_write_bio_PrivateKey(pem.get(), from.key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (ok) to->key.reset(PEM_read_bio_PrivateKey_ex(pem.get(), nullptr, nullptr, nullptr, library, nullptr));
  ERR_clear_error();
  return ok && to->key;
}

}  // namespace lb::tls
