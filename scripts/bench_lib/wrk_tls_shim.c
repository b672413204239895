// LD_PRELOAD shim for wrk's TLS handshakes (scripts/bench, TLS section).
//
// wrk keeps one SSL object per connection slot and, between connections,
// calls SSL_shutdown and SSL_clear, which keep the session: with
// `Connection: close` every new connection after the first offers the last
// session ticket, so wrk measures resumed handshakes, not full ones. This
// shim wraps SSL_connect:
//   WRK_TLS_SHIM_MODE=full    drops the session before each handshake
//                             starts, so every handshake is a full one;
//   WRK_TLS_SHIM_MODE=resume  leaves wrk as it is (resumes when it can).
// Either way it counts completed handshakes and how many of them the
// server resumed, and writes "handshakes N resumed M version V cipher C"
// to the file named by WRK_TLS_SHIM_OUT when wrk exits, so the bench can
// check that each contender did what the row claims.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong handshakes;
static atomic_ulong resumed;
static char version[32];
static char cipher[64];

int SSL_connect(SSL *ssl) {
  static int (*real)(SSL *);
  if (real == NULL) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
  const char *mode = getenv("WRK_TLS_SHIM_MODE");
  // SSL_in_before: no handshake message sent yet on this connection. wrk
  // calls SSL_connect again while a non-blocking handshake is under way.
  if (mode != NULL && strcmp(mode, "full") == 0 && SSL_in_before(ssl))
    SSL_set_session(ssl, NULL);
  int r = real(ssl);
  if (r == 1) {
    atomic_fetch_add(&handshakes, 1);
    if (SSL_session_reused(ssl)) atomic_fetch_add(&resumed, 1);
    if (version[0] == '\0') {
      snprintf(version, sizeof version, "%s", SSL_get_version(ssl));
      snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(ssl));
    }
  }
  return r;
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("WRK_TLS_SHIM_OUT");
  if (path == NULL) return;
  FILE *f = fopen(path, "w");
  if (f == NULL) return;
  fprintf(f, "handshakes %lu resumed %lu version %s cipher %s\n",
          atomic_load(&handshakes), atomic_load(&resumed),
          version[0] ? version : "-", cipher[0] ? cipher : "-");
  fclose(f);
}
