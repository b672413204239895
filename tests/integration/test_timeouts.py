"""Idle timeout, connection limit and stopping (SIGTERM with sessions in
flight, shutdown_timeout)."""

import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, member  # noqa: E402


def echo_once(sock, payload=b"x"):
    sock.sendall(payload)
    got = harness.recv_exact(sock, len(payload))
    if got != payload:
        raise AssertionError(f"echo returned {got!r}, sent {payload!r}")


class TimeoutsTest(harness.RinglbTest):

    def start(self, handler, workers=1, **config):
        self.member_backend = self.backend(handler, name="m1")
        self.port = harness.free_port()
        self.lb = self.start_ringlb(harness.make_config(
            self.port, [member("m1", self.member_backend.address)], workers=workers, **config))

    def test_idle_connection_is_closed(self):
        self.start(harness.echo_handler, listener={"idle_timeout": "500ms"})
        s = self.connect(self.port)
        client = harness.client_name(s)
        echo_once(s)  # the session is up; the idle clock starts now
        waited = harness.wait_closed_by_peer(s, timeout=5 * harness.SCALE)
        self.assertGreaterEqual(waited, 0.4, "closed before the idle timeout")
        e = self.lb.entry_for(client)
        self.assertEqual(e["end"], "idle_timeout", e)
        self.assertEqual((e["bytes_in"], e["bytes_out"]), (1, 1), e)

    def test_active_connection_is_kept(self):
        self.start(harness.echo_handler, listener={"idle_timeout": "500ms"})
        s = self.connect(self.port)
        client = harness.client_name(s)
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 1.5:
            echo_once(s, bytes([65 + count % 26]))
            count += 1
            time.sleep(0.1)
        echo_once(s, b"still here")
        s.close()
        e = self.lb.entry_for(client)
        self.assertEqual(e["end"], "client_closed", e)
        self.assertEqual(e["bytes_in"], count + len(b"still here"), e)

    def test_connection_limit(self):
        self.start(harness.echo_handler, listener={"max_connections": 2})
        first, second = self.connect(self.port), self.connect(self.port)
        echo_once(first)
        echo_once(second)
        third = self.connect(self.port)  # accepted, then closed at once
        client = harness.client_name(third)
        harness.wait_closed_by_peer(third, timeout=5 * harness.SCALE)
        e = self.lb.entry_for(client)
        self.assertEqual(e["end"], "limit", e)
        self.assertEqual((e["bytes_in"], e["bytes_out"]), (0, 0), e)
        self.assertIsNone(e["member"], e)
        echo_once(first)  # the others were not disturbed
        echo_once(second)

        # Once a session ends, there is room again.
        gone = harness.client_name(first)
        first.close()
        self.lb.entry_for(gone)
        def room():
            s = self.connect(self.port)
            try:
                echo_once(s, b"room again")
                return True
            except (AssertionError, ConnectionError):
                return False  # closed: the ended session's slot is not free yet
        harness.wait_until(room, what="a connection to be accepted after one ended")

    def test_sigterm_lets_transfers_finish(self):
        stream = harness.Stream(64 * MiB, seed=32)
        self.start(harness.source_handler(stream), workers=2,
                   global_={"shutdown_timeout": "60s"})
        # A small receive buffer keeps most of the stream out of the kernel's
        # buffers, so the session is surely still in flight at the SIGTERM.
        s = self.connect(self.port, timeout=60 * harness.SCALE, rcvbuf=256 * 1024)
        client = harness.client_name(s)
        head = harness.recv_exact(s, 2 * MiB)

        self.lb.signal(signal.SIGTERM)
        # New connections are refused soon (every worker stops accepting).
        harness.wait_until(lambda: harness.connect_refused(self.port),
                           what="the listener to refuse connections after SIGTERM")
        self.assertIsNone(self.lb.proc.poll(), "ringlb exited with a transfer in flight")

        # The transfer in flight still completes, byte for byte.
        h = hashlib.sha256(head)
        n = len(head)
        while True:
            b = s.recv(256 * 1024)
            if not b:
                break
            h.update(b)
            n += len(b)
            time.sleep(0.0005)  # slowly-ish
        s.close()
        self.assertEqual(n, stream.total)
        self.assertEqual(h.hexdigest(), stream.sha256())
        self.assertEqual(self.lb.wait_exit(timeout=20 * harness.SCALE), 0,
                         f"exit code after SIGTERM; stderr:\n{self.lb.stderr_text()}")
        e = self.lb.entry_for(client, timeout=1)
        self.assertEqual(e["bytes_out"], stream.total, e)

    def test_shutdown_timeout_ends_idle_sessions(self):
        self.start(harness.echo_handler, global_={"shutdown_timeout": "1s"})
        s = self.connect(self.port)
        client = harness.client_name(s)
        echo_once(s)
        started = time.monotonic()
        self.lb.signal(signal.SIGTERM)
        rc = self.lb.wait_exit(timeout=10 * harness.SCALE)
        took = time.monotonic() - started
        self.assertEqual(rc, 0, f"stderr:\n{self.lb.stderr_text()}")
        self.assertGreaterEqual(took, 0.9, "ringlb did not wait for the session")
        self.assertLess(took, 1 + 3 * harness.SCALE, "ringlb waited far longer than shutdown_timeout")
        harness.wait_closed_by_peer(s, timeout=1)
        e = self.lb.entry_for(client, timeout=1)
        self.assertEqual(e["end"], "shutdown", e)

    def test_sigint_stops_when_idle(self):
        self.start(harness.echo_handler, global_={"shutdown_timeout": "30s"})
        s = self.connect(self.port)
        echo_once(s)
        s.close()
        self.lb.wait_entries(1)
        started = time.monotonic()
        self.lb.signal(signal.SIGINT)
        self.assertEqual(self.lb.wait_exit(), 0)
        self.assertLess(time.monotonic() - started, 5 * harness.SCALE,
                        "with no sessions left, a stop should not wait for shutdown_timeout")
        harness.wait_until(lambda: harness.connect_refused(self.port),
                           what="the port to refuse connections after the exit")


if __name__ == "__main__":
    harness.main()
