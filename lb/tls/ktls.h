#pragma once
// Whether the kernel offers kTLS (the "tls" TCP upper-layer protocol), so
// that records of an established TLS connection can be handed to it.
// Detected once per process; absence is normal (no tls module) and means
// TLS records are handled in user space.

#include <string>

namespace lb::tls {

struct KtlsSupport {
  bool available = false;
  std::string why;  // when not available: what the probe saw
};

// Tries the ULP on a connected loopback TCP socket (which also lets the
// kernel load the module on demand). Opens and closes three sockets.
KtlsSupport probeKtls();

// probeKtls() run once per process (the first call probes; later calls,
// from any thread, return the same answer).
const KtlsSupport& detectKtls();

// Whether client legs offer OpenSSL to hand over their transmit keys: when
// the kernel has kTLS, or when the environment says RINGLB_KTLS_OFFER=always
// (for tests on hosts without it: the kernel then refuses each hand-over
// and the legs seal records in user space, ringlb_tls_kernel_tx_total
// {result="refused"}, which exercises everything but the kernel's part).
bool offerKernelTx();

// The one line the process logs at start when any listener or pool uses TLS.
std::string describe(const KtlsSupport& support);

}  // namespace lb::tls
