#pragma once
// The TLS leg of a flow: one SSL object driven through memory, never
// through its socket. The worker receives and sends with io_uring; this
// class only turns ciphertext into plaintext and back. (API: the datapath
// work defines it.)

namespace lb::tls {}  // namespace lb::tls
