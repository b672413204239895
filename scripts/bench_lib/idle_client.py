"""Holds idle TCP connections open, in a process of its own (so that its
descriptors do not count against the bench's or the proxy's limit).

    python3 idle_client.py HOST PORT [--tls]

Commands on standard input, one a line, each answered on standard output:
    open N    open connections until N are held      -> "open N" or "error ..."
    close     close them all and exit                -> "closed"
The connections never send a byte (with --tls: none after the TLS
handshake, which each completes before it counts; certificates are not
verified)."""

import resource
import socket
import ssl
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    tls = None
    if "--tls" in sys.argv[3:]:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "open":
            want = int(words[1])
            try:
                while len(held) < want:
                    s = socket.create_connection((host, port), timeout=10)
                    if tls:
                        s = tls.wrap_socket(s)  # blocking: the handshake completes here
                    held.append(s)
                print(f"open {len(held)}", flush=True)
            except OSError as e:
                print(f"error after {len(held)} connections: {e}", flush=True)
        elif words[0] == "close":
            break
    for s in held:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
