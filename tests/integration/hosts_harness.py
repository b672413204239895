"""Shared code for the several-hosts tests (test_hosts_agree.py,
test_hosts_netns.py), Python 3 standard library only: members that say their
name on chosen addresses, clients from chosen source addresses, and the
comparison of which member each client reached through each ringlb.

Run as a script it is also the helper those tests start inside network
namespaces (`ip netns exec NS python3 hosts_harness.py ...`):

    hosts_harness.py serve ADDRESS:PORT=NAME ...   members; prints "ready"
    hosts_harness.py ask HOST PORT SOURCE ...      prints {source: member} as JSON
"""

import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WAIT  # noqa: E402

# The test's client addresses: 40 sources on loopback (all of 127.0.0.0/8
# is local on Linux, so a socket may bind any of them).
LOOPBACK_SOURCES = [f"127.1.0.{i}" for i in range(1, 41)]


class NamedMembers:
    """One listening socket per (address, port), each answering like
    harness.name_handler: 'NAME\\n' and then the client's first line."""

    def __init__(self, endpoints):
        """endpoints: [(address, port, name)]; port 0 is not allowed (the
        tests need one known port per address)."""
        self._sockets = []
        self._stopping = threading.Event()
        self.errors = []
        try:
            for address, port, name in endpoints:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, port))
                s.listen(128)
                threading.Thread(target=self._accept, args=(s, name), daemon=True).start()
        except BaseException:
            self.close()
            raise

    def _accept(self, listener, name):
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, name), daemon=True).start()

    def _serve(self, conn, name):
        try:
            conn.settimeout(WAIT)
            line = harness.read_line(conn)
            conn.sendall(name.encode() + b"\n" + line)
            conn.shutdown(socket.SHUT_WR)
            harness.recv_all(conn)
        except OSError as e:
            if not self._stopping.is_set():
                self.errors.append(f"{name}: {e!r}")
        finally:
            conn.close()

    def close(self):
        self._stopping.set()
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def free_port_on(addresses):
    """A port free for TCP on every one of the addresses (a moment ago)."""
    for _ in range(100):
        port = harness.free_port()
        held = []
        try:
            for address in addresses:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(s)
                s.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError(f"no port free on all of {addresses}")


def ask(host, port, source, timeout=None):
    """One short session to host:port from source: the member's name."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT if timeout is None else timeout)
        s.bind((source, 0))
        s.connect((host, port))
        s.sendall(b"hi\n")
        data = bytearray()
        while data.count(b"\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError(f"from {source} through {host}:{port}: EOF after {bytes(data)!r}")
            data += chunk
    name, _, rest = bytes(data).partition(b"\n")
    if rest != b"hi\n":
        raise AssertionError(f"from {source} through {host}:{port}: no echo: {bytes(data)!r}")
    return name.decode()


def ask_all(host, port, sources):
    """{source: member name} for one session from each source."""
    return {source: ask(host, port, source) for source in sources}


def differences(expected, got):
    """The clients whose member differs, as readable lines."""
    return [f"{source}: {expected.get(source)} then {got.get(source)}"
            for source in sorted(set(expected) | set(got)) if expected.get(source) != got.get(source)]


def _serve_main(args):
    endpoints = []
    for arg in args:
        where, _, name = arg.partition("=")
        address, _, port = where.rpartition(":")
        endpoints.append((address, int(port), name))
    members = NamedMembers(endpoints)
    print("ready", flush=True)
    try:
        threading.Event().wait()  # until killed
    finally:
        members.close()


def _ask_main(args):
    host, port, sources = args[0], int(args[1]), args[2:]
    answers = {}
    for source in sources:
        try:
            answers[source] = ask(host, port, source)
        except (OSError, AssertionError) as e:
            answers[source] = f"error: {e!r}"
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        _serve_main(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "ask":
        _ask_main(sys.argv[2:])
    else:
        sys.exit(__doc__)
