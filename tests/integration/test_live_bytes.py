"""Byte counters move while a session is open (each direction adds its
bytes every 64 KiB, lb/stats.h kLiveBytesFlush), and are exact once it
ends: /metrics during a long transfer and after it, against what the
client sent and received and what the access log says."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
import test_tls  # noqa: E402
from harness import LOOPBACK, WAIT, MiB, member  # noqa: E402

FLUSH = 64 * 1024  # kLiveBytesFlush: the most a direction of an open session holds back


class LiveBytesTest(harness.RinglbTest):

    def start(self, workers):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.port, self.admin = harness.free_port(), harness.free_port()
        pools = {"p": {"balance": "round_robin", "members": [member("m1", self.m1.address)]}}
        self.lb = self.start_ringlb(mh.build_config(
            [("front", self.port, "p", None)], pools, workers=workers,
            admin={"listen": f"127.0.0.1:{self.admin}"}))

    def counters(self):
        m = mh.scrape(self.admin)
        return {
            "member_in": m.value("ringlb_member_received_bytes_total", pool="p", member="m1"),
            "member_out": m.value("ringlb_member_sent_bytes_total", pool="p", member="m1"),
            "listener_in": m.value("ringlb_listener_received_bytes_total", listener="front"),
            "listener_out": m.value("ringlb_listener_sent_bytes_total", listener="front"),
        }

    def check_open_session(self, sent, received):
        """While the session is open the counters are within FLUSH of the
        bytes that went each way, never above them."""
        def close_enough():
            c = self.counters()
            ok = all(sent - FLUSH < c[k] <= sent for k in ("member_in", "listener_in")) and \
                all(received - FLUSH < c[k] <= received for k in ("member_out", "listener_out"))
            return c if ok else None
        try:
            return harness.wait_until(close_enough, what="byte counters of an open session")
        except AssertionError:
            raise AssertionError(f"sent {sent}, received {received}; /metrics has {self.counters()}")

    def run_transfer(self, workers):
        self.start(workers)
        session = mh.Session(self.port)  # "hello\n" out, "m1\nhello\n" back
        self.addCleanup(session.close)
        sent, received = 6, 9
        block = os.urandom(MiB)
        for step in range(4):
            session.echo(block)  # 1 MiB each way, through the buffer ring and splice
            sent += len(block)
            received += len(block)
            c = self.check_open_session(sent, received)
            self.assertGreater(c["member_in"], step * MiB, c)
        session.close()
        entry = self.lb.wait_entries(1)[0]
        self.assertEqual((entry["bytes_in"], entry["bytes_out"]), (sent, received), entry)
        # Ended: exact, the access log's numbers.
        self.assertEqual(harness.wait_until(
            lambda: (c := self.counters())["member_out"] == received and c,
            what="exact counters after the end"),
            {"member_in": sent, "member_out": received, "listener_in": sent, "listener_out": received})

    def test_counters_move_during_a_long_session(self):
        self.run_transfer(workers=1)

    def test_counters_move_with_two_workers(self):
        self.run_transfer(workers=2)

    def test_many_small_sessions_add_up_exactly(self):
        """Sessions that each move less than FLUSH are counted when they end."""
        self.start(workers=2)
        total_in = total_out = 0
        for i in range(20):
            s = mh.Session(self.port)
            s.echo(b"x" * (100 * i + 1))
            total_in += 6 + 100 * i + 1
            total_out += 9 + 100 * i + 1
            s.close()
        self.lb.wait_entries(20)
        self.assertEqual(harness.wait_until(
            lambda: (c := self.counters())["listener_out"] == total_out and c, what="exact totals"),
            {"member_in": total_in, "member_out": total_out, "listener_in": total_in, "listener_out": total_out})


    def test_counters_move_through_a_tls_leg(self):
        """Terminated TLS: the flows count plaintext, through tlsPump."""
        pki = test_tls.Pki(self.tmp.name, "live")
        cert = pki.issue("live.test", ["live.test"])
        self.echo = self.backend(harness.echo_handler, name="echo")
        self.port, self.admin = harness.free_port(), harness.free_port()
        self.lb = self.start_ringlb(test_tls.config(
            self.port, {"web": {"members": [self.echo.address]}}, tls={"certificates": [cert]},
            admin_port=self.admin))
        names = {"member_in": ("ringlb_member_received_bytes_total", {"pool": "web", "member": "web-1"}),
                 "member_out": ("ringlb_member_sent_bytes_total", {"pool": "web", "member": "web-1"}),
                 "listener_in": ("ringlb_listener_received_bytes_total", {"listener": "front"}),
                 "listener_out": ("ringlb_listener_sent_bytes_total", {"listener": "front"})}
        def counters():
            m = mh.scrape(self.admin)
            return {k: m.value(name, **labels) for k, (name, labels) in names.items()}
        ctx = test_tls.client_context(pki.ca)
        moved = 0
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT * 3) as raw:
            with ctx.wrap_socket(raw, server_hostname="live.test") as tls:
                client = "%s:%d" % tls.getsockname()
                for _ in range(3):
                    block = os.urandom(MiB)
                    tls.sendall(block)
                    self.assertEqual(harness.recv_exact(tls, len(block)), block)
                    moved += len(block)
                    harness.wait_until(
                        lambda: all(moved - FLUSH < v <= moved for v in counters().values()),
                        what=f"counters within {FLUSH} of {moved}")
                tls.unwrap()
        entry = self.lb.entry_for(client)
        self.assertEqual((entry["bytes_in"], entry["bytes_out"]), (moved, moved), entry)
        harness.wait_until(lambda: all(v == moved for v in counters().values()),
                           what=f"exact counters ({moved})")


if __name__ == "__main__":
    harness.main()
