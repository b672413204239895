"""Checked load generators shared by test_faults.py and scripts/soak (Python 3
standard library only): short request/response connections, long echoed
transfers compared byte by byte, and idle connections. Each connection's
outcome is recorded with its start and end time and, when the member greets
(`greeting_echo_handler`), the member's name, so that a failure can be set
against the faults that were injected while it was open.

A received byte that differs from the one sent is *corrupted*; a transfer
that ends without error but short is *lost* bytes. Neither is ever
acceptable; a reset or early end is a *failure*, which a fault may explain.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB  # noqa: E402


def greeting_echo_handler(conn, backend):
    """Answers 'NAME\\n', then echoes everything until EOF, then closes. A
    client that resets is not an error."""
    conn.sendall(backend.name.encode() + b"\n")
    if harness.echo_until_eof(conn, 256 * 1024):
        conn.shutdown(socket.SHUT_WR)


class Outcome:
    """One connection's result. error is None for a success; corrupt_at is the
    stream offset of the first wrong byte, or None."""

    __slots__ = ("kind", "started", "ended", "member", "error", "expected", "received", "corrupt_at")

    def __init__(self, kind, started):
        self.kind = kind
        self.started = started
        self.ended = None
        self.member = None
        self.error = None
        self.expected = 0
        self.received = 0
        self.corrupt_at = None

    @property
    def ok(self):
        return self.error is None and self.corrupt_at is None and self.received == self.expected

    def __repr__(self):
        return (f"<{self.kind} member={self.member} error={self.error} received={self.received}"
                f"/{self.expected} corrupt_at={self.corrupt_at} t={self.started:.3f}..{self.ended}>")


def _read_greeting(sock):
    line = harness.read_line(sock, limit=256)
    if not line.endswith(b"\n"):
        raise ConnectionError(f"no greeting from the member (got {line!r})")
    return line[:-1].decode("utf-8", "replace")


class Recorder:
    """Thread-safe list of outcomes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = []

    def add(self, outcome):
        with self.lock:
            self.outcomes.append(outcome)

    def snapshot(self):
        with self.lock:
            return list(self.outcomes)


def short_exchange(port, i, greeting, timeout):
    """One short connection: a line out, half-close, the same line back and
    EOF (after 'NAME\\n' when the member greets). Returns an Outcome."""
    line = f"request {i}\n".encode()
    o = Outcome("short", time.monotonic())
    o.expected = len(line)
    try:
        with harness.connect(port, timeout=timeout) as s:
            if greeting:
                o.member = _read_greeting(s)
            s.sendall(line)
            s.shutdown(socket.SHUT_WR)
            data, reset = harness.recv_all(s)
        o.received = len(data)
        common = min(len(data), len(line))
        if data[:common] != line[:common]:
            o.corrupt_at = next(k for k in range(common) if data[k] != line[k])
        elif len(data) > len(line):
            o.corrupt_at = len(line)  # more bytes than were sent
        if reset:
            o.error = "reset"
        elif len(data) < len(line):
            o.error = "early EOF"
    except (OSError, ConnectionError) as e:
        o.error = repr(e)
    o.ended = time.monotonic()
    return o


class ShortClients(threading.Thread):
    """Opens short connections one after another until stop is set."""

    def __init__(self, port, recorder, greeting=False, timeout=None, pause=0.0):
        super().__init__(daemon=True)
        self.port = port
        self.recorder = recorder
        self.greeting = greeting
        self.timeout = harness.WAIT if timeout is None else timeout
        self.pause = pause
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.recorder.add(short_exchange(self.port, i, self.greeting, self.timeout))
            i += 1
            if self.pause:
                self.stop.wait(self.pause)


class EchoTransfer(threading.Thread):
    """Sends `total` bytes of harness.Stream(total, seed) while reading the
    echo, both at once, and compares every byte that comes back with the one
    sent at that offset. `pace` seconds between 256 KiB chunks spreads a
    transfer over time."""

    def __init__(self, port, total, seed, recorder=None, greeting=False, pace=0.0, timeout=None):
        super().__init__(daemon=True)
        self.port = port
        self.stream = harness.Stream(total, seed)
        self.recorder = recorder
        self.greeting = greeting
        self.pace = pace
        self.timeout = 60 * harness.SCALE if timeout is None else timeout
        self.outcome = Outcome("transfer", time.monotonic())
        self.outcome.expected = total
        self.client = None

    def run(self):
        o = self.outcome
        o.started = time.monotonic()
        try:
            s = harness.connect(self.port, timeout=self.timeout)
        except OSError as e:
            o.error = repr(e)
            o.ended = time.monotonic()
            self._record()
            return
        with s:
            self.client = harness.client_name(s)
            try:
                if self.greeting:
                    o.member = _read_greeting(s)
                sender = threading.Thread(target=self._send, args=(s,), daemon=True)
                sender.start()
                self._receive(s)
                sender.join(self.timeout)
            except (OSError, ConnectionError) as e:
                o.error = o.error or repr(e)
        if o.error is None and o.corrupt_at is None and o.received < o.expected:
            o.error = "early EOF"
        o.ended = time.monotonic()
        self._record()

    def _record(self):
        if self.recorder is not None:
            self.recorder.add(self.outcome)

    def _send(self, s):
        try:
            for chunk in self.stream.chunks():
                s.sendall(chunk)
                if self.pace:
                    time.sleep(self.pace)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the receiving side sees the same end and records it

    def _receive(self, s):
        o = self.outcome
        expected = self.stream.chunks()
        pending = memoryview(b"")
        buf = bytearray(MiB)
        view = memoryview(buf)
        while True:
            try:
                n = s.recv_into(buf)
            except ConnectionResetError:
                o.error = "reset"
                return
            if n == 0:
                return
            got = view[:n]
            while got:
                if not pending:
                    pending = next(expected, None)
                    if pending is None:
                        o.corrupt_at = o.received  # more bytes than were sent
                        return
                m = min(len(got), len(pending))
                if got[:m] != pending[:m]:
                    a, b = bytes(got[:m]), bytes(pending[:m])
                    o.corrupt_at = o.received + next(k for k in range(m) if a[k] != b[k])
                    return
                o.received += m
                got, pending = got[m:], pending[m:]


class IdleConnections:
    """Connections held open without traffic; check() sends each a line and
    expects it back. A connection that fails is recorded and replaced."""

    def __init__(self, port, count, recorder, greeting=False, timeout=None):
        self.port = port
        self.count = count
        self.recorder = recorder
        self.greeting = greeting
        self.timeout = harness.WAIT if timeout is None else timeout
        self.held = []  # (socket, Outcome)

    def fill(self):
        while len(self.held) < self.count:
            o = Outcome("idle", time.monotonic())
            try:
                s = harness.connect(self.port, timeout=self.timeout)
                if self.greeting:
                    o.member = _read_greeting(s)
            except (OSError, ConnectionError) as e:
                o.error = repr(e)
                o.ended = time.monotonic()
                self.recorder.add(o)
                continue
            self.held.append((s, o))

    def check(self):
        """Pings every held connection; failed ones are recorded and replaced."""
        kept = []
        for s, o in self.held:
            ping = f"ping {o.received}\n".encode()
            o.expected += len(ping)
            try:
                s.sendall(ping)
                back = harness.recv_exact(s, len(ping))
                if back != ping:
                    o.corrupt_at = o.received
                else:
                    o.received += len(ping)
            except (OSError, AssertionError) as e:
                o.error = repr(e)
            if o.ok:
                kept.append((s, o))
            else:
                s.close()
                o.ended = time.monotonic()
                self.recorder.add(o)
        self.held = kept
        self.fill()

    def close(self):
        """Closes every held connection, recording each as a success (or the
        failure its last check found)."""
        for s, o in self.held:
            s.close()
            o.ended = time.monotonic()
            self.recorder.add(o)
        self.held = []
