"""Shared code for ringlb's integration tests (Python 3 standard library only).

Each test starts the real ringlb binary (path in $RINGLB) with a config it
writes itself, against backends it starts itself on loopback ports it picks.
Nothing sleeps and hopes: every wait is a poll loop with a deadline that fails
the test when it passes. Timeouts are generous so that the tests also pass
against a sanitizer build; scale them with $RINGLB_TEST_TIMEOUT_SCALE.

Run as a script, this file is also a backend process (see serve_main) for the
tests that need to kill a backend.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RINGLB = os.environ.get("RINGLB") or os.path.join(REPO, "build", "lb", "ringlb")
SCALE = float(os.environ.get("RINGLB_TEST_TIMEOUT_SCALE", "1"))
WAIT = 10.0 * SCALE  # the default deadline for "this should happen soon"
LOOPBACK = "127.0.0.1"
MiB = 1 << 20

# End reasons of the access log (the contract with lb/access_log).
END_REASONS = {
    "client_closed", "member_closed", "connect_refused", "connect_timeout",
    "no_member", "idle_timeout", "limit", "shutdown", "reset", "member_down",
    "member_removed", "local_error",
    "proxy_header_invalid", "proxy_header_timeout", "denied", "source_limit", "source_rate",
}
ACCESS_LOG_FIELDS = {
    "time", "listener", "client", "member", "member_address", "bytes_in",
    "bytes_out", "connect_ms", "duration_ms", "attempts", "end",
}
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


# --------------------------------------------------------------------------
# Waiting


def wait_until(condition, timeout=None, what="condition", interval=0.01):
    """Polls condition() until it returns a true value, which is returned.
    Fails (AssertionError) when the deadline passes."""
    deadline = time.monotonic() + (WAIT if timeout is None else timeout)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout or WAIT:.1f}s waiting for {what}")
        time.sleep(interval)


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


_EPHEMERAL_LOW = _ephemeral_low()
_port_rng = random.Random()


def free_port():
    """A loopback port that was free a moment ago (a small race is accepted).
    Taken below the ephemeral range where possible, so that no outgoing
    connection (the tests' own, or ringlb's) can take it meanwhile, and a
    connect to a dead port can never connect to itself."""
    for _ in range(100):
        port = _port_rng.randrange(10000, _EPHEMERAL_LOW) if _EPHEMERAL_LOW > 12000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AssertionError("no free port found")


# --------------------------------------------------------------------------
# Deterministic data streams


class Stream:
    """A reproducible pseudo-random byte stream of a given length, produced in
    chunks without holding it all in memory: each chunk is a slice at a random
    offset of a random pool, so a lost, repeated or reordered chunk changes
    the digest."""

    POOL = 4 * MiB

    def __init__(self, total, seed, chunk=256 * 1024):
        self.total = total
        self.seed = seed
        self.chunk = chunk

    def chunks(self):
        rng = random.Random(self.seed)
        pool = memoryview(rng.randbytes(self.POOL + self.chunk))
        left = self.total
        while left > 0:
            n = min(self.chunk, left)
            offset = rng.randrange(self.POOL)
            yield pool[offset:offset + n]
            left -= n

    def sha256(self):
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        return h.hexdigest()


def reply_for(data_digest_hex, size=MiB):
    """The half-close reply a backend derives from what it received."""
    return data_digest_hex.encode() + b"\n" + random.Random(data_digest_hex).randbytes(size)


# --------------------------------------------------------------------------
# Client helpers


def connect(port, timeout=None, rcvbuf=None):
    """A connection to 127.0.0.1:port; rcvbuf (set before the handshake)
    caps the kernel's receive buffer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(WAIT if timeout is None else timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect((LOOPBACK, port))
    except BaseException:
        s.close()
        raise
    return s


def client_name(sock):
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def recv_all(sock, limit=None):
    """Reads until EOF (or until limit bytes). A reset counts as EOF and is
    reported: returns (data, reset)."""
    parts = []
    size = 0
    while limit is None or size < limit:
        try:
            b = sock.recv(MiB if limit is None else min(MiB, limit - size))
        except ConnectionResetError:
            return b"".join(parts), True
        if not b:
            break
        parts.append(b)
        size += len(b)
    return b"".join(parts), False


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(min(MiB, n - len(buf)))
        if not b:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def wait_closed_by_peer(sock, timeout=None):
    """Waits until the peer closes sock (EOF or reset); fails if data arrives
    or the deadline passes. Returns the time waited."""
    start = time.monotonic()
    sock.settimeout(WAIT if timeout is None else timeout)
    try:
        b = sock.recv(4096)
    except ConnectionResetError:
        return time.monotonic() - start
    except socket.timeout:
        raise AssertionError("the connection was not closed by the peer in time")
    if b:
        raise AssertionError(f"expected the connection to close, got data {b[:64]!r}")
    return time.monotonic() - start


def connect_refused(port):
    """True when a connection to port is refused now. A connection that is
    accepted, reset or left hanging (a listening socket nobody accepts on
    any more) counts as not refused."""
    try:
        s = socket.create_connection((LOOPBACK, port), timeout=1.0)
    except ConnectionRefusedError:
        return True
    except (ConnectionResetError, socket.timeout):
        return False
    s.close()
    return False


def hash_drain(sock, expect=None):
    """Reads sock until EOF; returns (byte count, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    buf = bytearray(MiB)
    view = memoryview(buf)
    while True:
        k = sock.recv_into(buf)
        if k == 0:
            return n, h.hexdigest()
        h.update(view[:k])
        n += k
        if expect is not None and n > expect:
            raise AssertionError(f"received more than the expected {expect} bytes")


# --------------------------------------------------------------------------
# Backends (in-process, one thread per connection)


class Backend:
    """A threaded TCP server on 127.0.0.1:<ephemeral port>. handler(conn,
    backend) serves one connection; the backend closes it afterwards. The
    listening socket is bound before the constructor returns, so its port is
    known and connects succeed at once. `port` 0 picks a free one; a fixed
    port lets a restarted backend take its predecessor's place."""

    def __init__(self, handler, name="backend", backlog=128, port=0):
        self.name = name
        self.handler = handler
        self.lock = threading.Lock()
        self.accepted = 0
        self.errors = []
        self.state = {}  # free for handlers
        self._conns = set()
        self._threads = []
        self._stopping = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, port))
        self.listener.listen(backlog)
        self.port = self.listener.getsockname()[1]
        self.address = f"{LOOPBACK}:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # listener shut down
            with self.lock:
                if self._stopping:
                    conn.close()
                    return
                self.accepted += 1
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self.lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, conn):
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(60 * SCALE)
            self.handler(conn, self)
        except Exception as e:  # noqa: BLE001 - reported through errors
            if not self._stopping:
                with self.lock:
                    self.errors.append(repr(e))
        finally:
            with self.lock:
                self._conns.discard(conn)
            conn.close()

    def close(self):
        with self.lock:
            self._stopping = True
            conns = list(self._conns)
            threads = list(self._threads)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(WAIT)
        for t in threads:
            t.join(WAIT)


def read_line(conn, limit=4096):
    """Reads up to and including the first newline (or EOF)."""
    buf = bytearray()
    while len(buf) < limit and not buf.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        buf += b
    return bytes(buf)


def name_handler(conn, backend):
    """Reads one line, answers 'NAME\\n' followed by that line, then closes."""
    line = read_line(conn)
    conn.sendall(backend.name.encode() + b"\n" + line)
    conn.shutdown(socket.SHUT_WR)
    recv_all(conn)  # wait for the client's close: no reset from unread data


def echo_until_eof(conn, size=MiB):
    """Sends back everything received until EOF: True, or False when the
    peer reset the connection first (not an error for the handlers that
    use this)."""
    buf = bytearray(size)
    view = memoryview(buf)
    while True:
        try:
            n = conn.recv_into(buf)
            if n == 0:
                return True
            conn.sendall(view[:n])
        except (BrokenPipeError, ConnectionResetError):
            return False


def echo_handler(conn, backend):
    """Echoes everything until EOF, then closes."""
    if echo_until_eof(conn):
        conn.shutdown(socket.SHUT_WR)


def sink_handler(conn, backend):
    """Hashes everything until EOF, answers '<count> <sha256>\\n', closes."""
    n, digest = hash_drain(conn)
    conn.sendall(f"{n} {digest}\n".encode())
    conn.shutdown(socket.SHUT_WR)


def half_close_handler(conn, backend):
    """Reads until EOF, then answers reply_for(sha256 of what it read)."""
    _, digest = hash_drain(conn)
    conn.sendall(reply_for(digest))
    conn.shutdown(socket.SHUT_WR)


def source_handler(stream):
    """Sends stream, counting progress in backend.state['sent'], then closes."""
    def handler(conn, backend):
        for c in stream.chunks():
            while c:
                n = conn.send(c)
                c = c[n:]
                with backend.lock:
                    backend.state["sent"] = backend.state.get("sent", 0) + n
        conn.shutdown(socket.SHUT_WR)
        recv_all(conn)
    return handler


def dead_address():
    """An address where nothing listens: connects are refused."""
    return f"{LOOPBACK}:{free_port()}"


class Blackhole:
    """An address whose SYNs go unanswered: a listener with backlog 0 that
    never accepts, its accept queue filled by our own connections. While the
    queue is full, Linux drops new SYNs, so a connect there neither succeeds
    nor is refused until the connector gives up."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.address = f"{LOOPBACK}:{self.port}"
        self.fillers = []
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            self.fillers.append(s)
            try:
                s.connect((LOOPBACK, self.port))
                continue  # connected at once: the queue had room
            except BlockingIOError:
                pass
            import select
            _, writable, _ = select.select([], [s], [], 0.5)
            if not writable:
                return  # this SYN was dropped: the queue is full
        raise AssertionError("could not fill the accept queue of the blackhole listener")

    def close(self):
        for s in self.fillers:
            s.close()
        self.listener.close()


class BackendProcess:
    """A backend in its own process (so that a test can kill it). The child
    runs `script serve ARGS...` and prints "port N" once listening; by
    default the script is this file and ARGS are MODE NAME."""

    def __init__(self, name, mode="name", script=None, serve_args=None):
        self.name = name
        script = script or os.path.abspath(__file__)
        serve_args = [mode, name] if serve_args is None else serve_args
        self.proc = subprocess.Popen(
            [sys.executable, script, "serve", *serve_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "port N" once listening
        if not line.startswith("port "):
            self.proc.kill()
            raise AssertionError(f"backend process did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])
        self.address = f"{LOOPBACK}:{self.port}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if not pipe.closed:
                pipe.close()


def serve_main(argv):
    """`harness.py serve MODE NAME`: serves until killed."""
    mode, name = argv
    handlers = {"name": name_handler, "echo": echo_handler}
    backend = Backend(handlers[mode], name=name)
    print(f"port {backend.port}", flush=True)
    threading.Event().wait()  # until killed


# --------------------------------------------------------------------------
# Config


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a TOML basic string for the values we use


def member(name, address, weight=None, backup=None):
    m = {"name": name, "address": address}
    if weight is not None:
        m["weight"] = weight
    if backup is not None:
        m["backup"] = backup
    return m


def make_config(port, members, *, workers=1, listener=None, pool=None,
                global_=None, pool_name="pool", listener_name="front"):
    """TOML text for one listener on 127.0.0.1:port in front of one pool.
    listener/pool/global_ add keys to those tables. shutdown_timeout defaults
    to 5s so that every test's final stop is quick."""
    g = {"workers": workers, "log_level": "info", "access_log": "stdout",
         "shutdown_timeout": "5s"}
    g.update(global_ or {})
    lines = ["[global]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in g.items()]
    lines += ["", "[[listener]]", f'name = "{listener_name}"',
              f'bind = "{LOOPBACK}:{port}"', f'pool = "{pool_name}"']
    lines += [f"{k} = {toml_value(v)}" for k, v in (listener or {}).items()]
    lines += ["", f"[pool.{pool_name}]"]
    p = {"balance": "round_robin"}
    p.update(pool or {})
    lines += [f"{k} = {toml_value(v)}" for k, v in p.items()]
    for m in members:
        lines += ["", f"[[pool.{pool_name}.member]]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in m.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The ringlb process


class Ringlb:
    """One ringlb process. stdout (access log JSON lines) and stderr (log
    lines) are collected by background threads."""

    def __init__(self, config_path, args=(), wrapper=()):
        """wrapper: a command that execs ringlb (e.g. prlimit ... --)."""
        self.config_path = config_path
        self.cond = threading.Condition()
        self.stdout_lines = []
        self.stderr_lines = []
        self.proc = subprocess.Popen([*wrapper, RINGLB, *args, config_path],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.stop_signalled = False  # a test sent SIGTERM/SIGINT itself
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, pipe, sink):
        for raw in iter(pipe.readline, b""):
            with self.cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        pipe.close()

    def stderr_text(self):
        with self.cond:
            return "\n".join(self.stderr_lines)

    def wait_ready(self, timeout=None):
        """Waits for the 'ready:' log line; fails if the process exits first."""
        deadline = time.monotonic() + (WAIT if timeout is None else timeout)
        with self.cond:
            while not any("ready:" in line for line in self.stderr_lines):
                if self.proc.poll() is not None:
                    self._join_readers()
                    raise AssertionError(
                        f"ringlb exited with {self.proc.returncode} before ready:\n{self.stderr_text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"ringlb not ready in time; stderr:\n{self.stderr_text()}")
                self.cond.wait(min(left, 0.05))

    def access_log(self):
        """The access log entries so far (parsed JSON)."""
        with self.cond:
            lines = list(self.stdout_lines)
        entries = []
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise AssertionError(f"access log line is not JSON: {line!r}")
            check_entry(entry)
            entries.append(entry)
        return entries

    def wait_entries(self, count, timeout=None, where=None):
        """Waits until at least count entries (matching where, if given) are
        logged; returns those entries."""
        def ready():
            entries = [e for e in self.access_log() if where is None or where(e)]
            return entries if len(entries) >= count else None
        try:
            return wait_until(ready, timeout, f"{count} access log entries")
        except AssertionError:
            raise AssertionError(
                f"waited for {count} access log entries; have:\n" + "\n".join(self.stdout_lines[-20:]))

    def entry_for(self, client, timeout=None):
        """The access log entry of the session whose client address is
        client ('127.0.0.1:port'), waiting for it to be written."""
        return self.wait_entries(1, timeout, where=lambda e: e["client"] == client)[0]

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop_signalled = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=None):
        """Waits for the process to exit; returns its exit code."""
        try:
            rc = self.proc.wait(WAIT if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ringlb did not exit in time; stderr:\n{self.stderr_text()}")
        self._join_readers()
        return rc

    def _join_readers(self):
        for t in self._readers:
            t.join(WAIT)

    def sanitizer_reports(self):
        text = self.stderr_text()
        return [m for m in SANITIZER_MARKS if m in text]

    def stop(self, timeout=None):
        """SIGTERM and wait: the clean end every test expects. Returns the
        exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            pass
        self._join_readers()


def check_entry(e):
    missing = ACCESS_LOG_FIELDS - set(e)
    if missing:
        raise AssertionError(f"access log entry lacks {sorted(missing)}: {e}")
    if e["end"] not in END_REASONS:
        raise AssertionError(f"unknown end reason {e['end']!r}: {e}")


# --------------------------------------------------------------------------
# The test base class


class RinglbTest(unittest.TestCase):
    """Starts and always cleans up ringlb processes and backends. A test that
    leaves ringlb running gets it stopped with SIGTERM at the end, and the
    stop must be clean: exit code 0 and no sanitizer report."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ringlb-test-")
        self.addCleanup(self.tmp.cleanup)

    def write_config(self, text, name="ringlb.toml"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_ringlb(self, text, wait_ready=True, check_clean_stop=True, wrapper=()):
        path = self.write_config(text)
        lb = Ringlb(path, wrapper=wrapper)
        self.addCleanup(self._finish_ringlb, lb, check_clean_stop)
        if wait_ready:
            lb.wait_ready()
        return lb

    def _finish_ringlb(self, lb, check_clean_stop):
        try:
            if lb.proc.poll() is None and not lb.stop_signalled:
                rc = lb.stop(timeout=30 * SCALE)
                if check_clean_stop:
                    self.assertEqual(rc, 0, f"ringlb's stop was not clean; stderr:\n{lb.stderr_text()}")
            # A test that stopped ringlb itself judged that stop; if it is
            # still running (the test failed), kill() below ends it.
            reports = lb.sanitizer_reports()
            self.assertFalse(reports, f"sanitizer report in ringlb's stderr:\n{lb.stderr_text()}")
        finally:
            lb.kill()

    def backend(self, handler, name="backend"):
        b = Backend(handler, name=name)
        self.addCleanup(b.close)
        return b

    def blackhole(self):
        b = Blackhole()
        self.addCleanup(b.close)
        return b

    def backend_process(self, name, mode="name"):
        b = BackendProcess(name, mode)
        self.addCleanup(b.kill)
        return b

    def connect(self, port, timeout=None, rcvbuf=None):
        s = connect(port, timeout, rcvbuf)
        self.addCleanup(s.close)
        return s

    def assertBackendsClean(self, *backends):
        for b in backends:
            self.assertFalse(b.errors, f"backend {b.name} had errors: {b.errors}")


def main():
    if not os.access(RINGLB, os.X_OK):
        print(f"ringlb binary not found at {RINGLB} (set $RINGLB)", file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
    else:
        sys.exit("usage: harness.py serve MODE NAME")
