"""Bytes through ringlb arrive complete, in order and unchanged, both ways at
once, with half-closes, and without ringlb buffering for a slow reader."""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness  # noqa: E402
from harness import LOOPBACK, MiB, member, wait_until  # noqa: E402


class TransferTest(harness.RinglbTest):

    def start(self, handler, workers=2, admin=False, **config):
        self.member_backend = self.backend(handler, name="m1")
        self.port = harness.free_port()
        text = harness.make_config(self.port, [member("m1", self.member_backend.address)], workers=workers, **config)
        if admin:
            self.admin_port = harness.free_port()
            text += f'\n[admin]\nlisten = "{LOOPBACK}:{self.admin_port}"\n'
        self.lb = self.start_ringlb(text)

    def receives_stopped(self):
        return more_harness.scrape(self.admin_port).value("ringlb_worker_receives_stopped_total", worker="0")

    def test_concurrent_echo(self):
        """4 clients x 64 MiB, each sending and receiving at the same time."""
        self.start(harness.echo_handler)
        clients, size = 4, 64 * MiB
        outcome = {}  # client index -> (sent digest, received count, received digest, address)

        def one_client(i):
            stream = harness.Stream(size, seed=1000 + i)
            s = harness.connect(self.port, timeout=120 * harness.SCALE)
            sent = hashlib.sha256()

            def sender():
                for c in stream.chunks():
                    s.sendall(c)
                    sent.update(c)
                s.shutdown(socket.SHUT_WR)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            try:
                n, digest = harness.hash_drain(s, expect=size)
                t.join(120 * harness.SCALE)
                outcome[i] = (sent.hexdigest(), n, digest, harness.client_name(s))
            finally:
                s.close()

        threads = [threading.Thread(target=one_client, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240 * harness.SCALE)
        self.assertEqual(sorted(outcome), list(range(clients)), "a client did not finish")
        for i, (sent, n, digest, client) in outcome.items():
            self.assertEqual(n, size, f"client {i} received {n} of {size} bytes")
            self.assertEqual(digest, sent, f"client {i}: the echo differs from what was sent")
            e = self.lb.entry_for(client)
            self.assertEqual((e["bytes_in"], e["bytes_out"]), (size, size), e)
            self.assertEqual(e["member"], "m1", e)
        self.assertBackendsClean(self.member_backend)

    def test_download(self):
        stream = harness.Stream(64 * MiB, seed=7)
        self.start(harness.source_handler(stream))
        with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
            client = harness.client_name(s)
            n, digest = harness.hash_drain(s, expect=stream.total)
        self.assertEqual(n, stream.total)
        self.assertEqual(digest, stream.sha256())
        e = self.lb.entry_for(client)
        self.assertEqual((e["bytes_in"], e["bytes_out"]), (0, stream.total), e)

    def test_upload(self):
        stream = harness.Stream(64 * MiB + 12345, seed=8)
        self.start(harness.sink_handler)
        with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
            client = harness.client_name(s)
            for c in stream.chunks():
                s.sendall(c)
            s.shutdown(socket.SHUT_WR)
            reply, reset = harness.recv_all(s)
        self.assertFalse(reset)
        self.assertEqual(reply.decode(), f"{stream.total} {stream.sha256()}\n")
        e = self.lb.entry_for(client)
        self.assertEqual((e["bytes_in"], e["bytes_out"]), (stream.total, len(reply)), e)

    def test_half_close(self):
        """The client ends its direction first; the member's answer, which
        depends on all it received, still reaches the client whole."""
        self.start(harness.half_close_handler)
        for size in (0, 1, 3 * MiB + 17):
            stream = harness.Stream(size, seed=size)
            with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
                client = harness.client_name(s)
                for c in stream.chunks():
                    s.sendall(c)
                s.shutdown(socket.SHUT_WR)
                reply, reset = harness.recv_all(s)
            self.assertFalse(reset, f"size {size}: reset")
            expected = harness.reply_for(stream.sha256())
            self.assertEqual(len(reply), len(expected), f"size {size}: reply length")
            self.assertTrue(reply == expected, f"size {size}: the reply differs")
            e = self.lb.entry_for(client)
            self.assertEqual((e["bytes_in"], e["bytes_out"]), (size, len(expected)), e)

    def test_burst_then_silence_arrives_whole(self):
        """A member writes bursts of small messages back to back, then waits
        with the connection open. ringlb sends with MSG_MORE while its
        receive finds more behind (so that a FIN can share the last
        segment): whatever it holds back must leave as soon as the burst
        has been read. A held tail is not lost, it is late: the kernel lets
        corked bytes go after about 200 ms, which makes these 40 bursts
        take 16 s instead of a tenth of one. The last burst ends with the
        member's close, which must arrive after all bytes."""
        rounds, messages, size = 40, 30, 97

        def handler(conn, backend):
            for r in range(rounds):
                if harness.recv_exact(conn, 1) != b"n":
                    raise AssertionError("the client's turn byte is wrong")
                for m in range(messages):
                    conn.sendall(bytes([65 + (r + m) % 26]) * size)
            conn.sendall(b"bye")

        self.start(handler, workers=1)
        with harness.connect(self.port, timeout=5 * harness.SCALE) as s:
            started = time.monotonic()
            for r in range(rounds):
                s.sendall(b"n")
                got = harness.recv_exact(s, messages * size)
                expected = b"".join(bytes([65 + (r + m) % 26]) * size for m in range(messages))
                self.assertTrue(got == expected, f"round {r}: the burst differs")
            elapsed = time.monotonic() - started
            # 100 ms a burst: half of what one held tail costs.
            self.assertLess(elapsed, rounds * 0.1 * harness.SCALE,
                            "bursts were held back (a tail kept with MSG_MORE)")
            tail, reset = harness.recv_all(s)
        self.assertFalse(reset)
        self.assertEqual(tail, b"bye")
        self.assertEqual(self.member_backend.errors, [])

    def test_message_sizes_change_on_one_connection(self):
        """Small messages (a flow that carried them receives with one
        multishot receive), then a bulk burst both ways (the receive is
        stopped and splice takes over after what it had read), then small
        messages again (single-shot receives): every byte comes back in
        order."""
        self.start(harness.echo_handler, workers=1, admin=True)

        def round_trips(s, count, salt):
            for i in range(count):
                message = bytes([(i + salt) % 251]) * (1 + (i * 37) % 300)
                s.sendall(message)
                self.assertEqual(harness.recv_exact(s, len(message)), message, f"round trip {i}")
            return sum(1 + (i * 37) % 300 for i in range(count))

        with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
            client = harness.client_name(s)
            total = round_trips(s, 300, 0)
            burst = harness.Stream(16 * MiB, seed=11)
            sender = threading.Thread(target=lambda: [s.sendall(c) for c in burst.chunks()], daemon=True)
            sender.start()
            echoed = harness.recv_exact(s, burst.total)
            sender.join(60 * harness.SCALE)
            self.assertEqual(hashlib.sha256(echoed).hexdigest(), burst.sha256(), "the burst came back changed")
            total += burst.total
            total += round_trips(s, 300, 7)
            s.shutdown(socket.SHUT_WR)
            rest, reset = harness.recv_all(s)
        self.assertEqual((rest, reset), (b"", False))
        self.assertGreaterEqual(self.receives_stopped(), 1, "the burst never stopped a multishot receive")
        e = self.lb.entry_for(client)
        self.assertEqual((e["bytes_in"], e["bytes_out"], e["end"]), (total, total, "client_closed"), e)
        self.assertBackendsClean(self.member_backend)

    def test_member_falling_behind_small_messages(self):
        """A member stops reading while the client goes on sending small
        messages: ringlb's multishot receive from the client is stopped
        once two buffers wait (it must not read the client's socket dry into
        ring buffers), and started again when the member reads on; every
        byte arrives, in order."""
        release = threading.Event()

        def handler(conn, backend):
            for _ in range(20):
                conn.sendall(harness.recv_exact(conn, 50))
            release.wait(60 * harness.SCALE)
            if harness.echo_until_eof(conn):
                conn.shutdown(socket.SHUT_WR)

        self.start(handler, workers=1, admin=True)
        data = b"".join(bytes([i % 256]) * 100 for i in range(20000))
        with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
            client = harness.client_name(s)
            for i in range(20):
                s.sendall(bytes([i]) * 50)
                self.assertEqual(harness.recv_exact(s, 50), bytes([i]) * 50)

            def sender():
                for offset in range(0, len(data), 100):
                    s.sendall(data[offset:offset + 100])
                s.shutdown(socket.SHUT_WR)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            wait_until(lambda: self.receives_stopped() >= 1,
                       what="ringlb stopping its receive from the client while the member reads nothing")
            release.set()
            n, digest = harness.hash_drain(s, expect=len(data))
            t.join(60 * harness.SCALE)
        self.assertEqual(n, len(data))
        self.assertEqual(digest, hashlib.sha256(data).hexdigest(), "the echo differs from what was sent")
        e = self.lb.entry_for(client)
        self.assertEqual((e["bytes_in"], e["bytes_out"]), (1000 + len(data), 1000 + len(data)), e)
        self.assertBackendsClean(self.member_backend)

    def test_slow_reader_backpressure(self):
        """A member pushes far more than the kernel buffers hold to a client
        that reads nothing: the member must block and ringlb's memory must
        not grow; then everything arrives intact."""
        total = 256 * MiB
        warmup = harness.Stream(4 * MiB, seed=1)
        stream = harness.Stream(total, seed=2)
        push = harness.source_handler(stream)
        warm = harness.source_handler(warmup)

        def handler(conn, backend):
            with backend.lock:
                first = backend.accepted == 1
            (warm if first else push)(conn, backend)

        self.start(handler, workers=1)
        # Touch ringlb's data path once so that its buffers exist.
        with harness.connect(self.port, timeout=60 * harness.SCALE) as s:
            self.assertEqual(harness.hash_drain(s), (warmup.total, warmup.sha256()))
        self.member_backend.state["sent"] = 0
        baseline = self.lb.rss_kib()
        limit = baseline + 32 * 1024

        s = self.connect(self.port, timeout=60 * harness.SCALE, rcvbuf=256 * 1024)

        def sent():
            with self.member_backend.lock:
                return self.member_backend.state.get("sent", 0)

        # Wait until the member is stuck: no progress for a whole second.
        last = {"value": -1, "since": time.monotonic()}
        peak = [baseline]

        def stuck():
            peak[0] = max(peak[0], self.lb.rss_kib())
            now, value = time.monotonic(), sent()
            if value != last["value"]:
                last["value"], last["since"] = value, now
                return False
            if value >= total // 2 or peak[0] >= limit:
                return True  # no need to wait any longer: this fails below
            return value > 0 and now - last["since"] >= 1.0

        harness.wait_until(stuck, timeout=30 * harness.SCALE, what="the member to block", interval=0.05)
        blocked_at = sent()
        self.assertLess(blocked_at, total // 2,
                        f"the member pushed {blocked_at >> 20} MiB to a client that read nothing")
        self.assertLess(peak[0], limit,
                        f"ringlb's RSS grew from {baseline} KiB to {peak[0]} KiB while the client did not read")

        # Read slowly for a while, then at full speed; watch memory throughout.
        h = hashlib.sha256()
        n = 0
        buf = bytearray(MiB)
        view = memoryview(buf)
        while n < total:
            k = s.recv_into(buf, 64 * 1024 if n < 8 * MiB else MiB)
            if k == 0:
                break
            h.update(view[:k])
            n += k
            if n < 8 * MiB:
                time.sleep(0.001)
            if n % (16 * MiB) < k:
                peak[0] = max(peak[0], self.lb.rss_kib())
        print(f"\nslow reader: the member blocked after {blocked_at / MiB:.1f} MiB; "
              f"ringlb RSS {baseline} KiB at the start, {peak[0]} KiB at most", file=sys.stderr)
        self.assertEqual(s.recv(1), b"", "data after the end")
        self.assertEqual(n, total)
        self.assertEqual(h.hexdigest(), stream.sha256())
        self.assertLess(peak[0], limit, f"ringlb's RSS grew from {baseline} KiB to {peak[0]} KiB")
        self.assertBackendsClean(self.member_backend)


if __name__ == "__main__":
    harness.main()
