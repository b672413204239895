"""Connect failures: retries on another member, refused and timed-out
connects, a member that dies while traffic flows."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import member  # noqa: E402


def ask(port):
    """One connection through ringlb to a name backend: returns (member name
    or None when the connection failed, client address)."""
    try:
        with harness.connect(port) as s:
            client = harness.client_name(s)
            s.sendall(b"hi\n")
            data, reset = harness.recv_all(s)
    except OSError:
        return None, None
    name, sep, rest = data.partition(b"\n")
    if reset or not sep or rest != b"hi\n":
        return None, client
    return name.decode(), client


class FailoverTest(harness.RinglbTest):

    def test_dead_member_is_retried(self):
        live = [self.backend(harness.name_handler, name=f"live{i}") for i in (1, 2)]
        dead = harness.dead_address()
        port = harness.free_port()
        members = [member("dead", dead), member(live[0].name, live[0].address),
                   member(live[1].name, live[1].address)]
        lb = self.start_ringlb(harness.make_config(port, members, pool={"retries": 2}))

        results = [ask(port) for _ in range(100)]
        failures = [i for i, (name, _) in enumerate(results) if name is None]
        self.assertEqual(failures, [], "connections failed although two members are up")
        self.assertEqual({name for name, _ in results}, {"live1", "live2"})

        entries = lb.wait_entries(100)
        by_client = {e["client"]: e for e in entries}
        for name, client in results:
            e = by_client[client]
            self.assertEqual(e["member"], name, e)
            self.assertIn(e["attempts"], (1, 2), e)
        # workers=1 and round robin: the very first pick is the dead member.
        # (Later turns may be fewer if ringlb learns that it is down.)
        first = by_client[results[0][1]]
        self.assertEqual(first["attempts"], 2, first)
        self.assertBackendsClean(*live)

    def test_member_killed_mid_run(self):
        a = self.backend(harness.name_handler, name="a")
        b = self.backend_process("b")
        c = self.backend(harness.name_handler, name="c")
        port = harness.free_port()
        members = [member("a", a.address), member("b", b.address), member("c", c.address)]
        self.start_ringlb(harness.make_config(port, members, pool={"retries": 2}))

        results = []  # (start time, member name or None)
        stop = threading.Event()

        def client_loop():
            while not stop.is_set():
                started = time.monotonic()
                name, _ = ask(port)
                results.append((started, name))

        t = threading.Thread(target=client_loop, daemon=True)
        t.start()
        try:
            harness.wait_until(lambda: sum(1 for _, n in results if n == "b") >= 5,
                               what="b to serve some connections")
            b.kill()  # SIGKILL and wait: its port now refuses connects
            killed = time.monotonic()
            harness.wait_until(lambda: sum(1 for s, _ in results if s > killed) >= 60,
                               what="60 connections after the kill")
        finally:
            stop.set()
            t.join(harness.WAIT)
        after = [n for s, n in results if s > killed]
        self.assertNotIn(None, after, "a connection started after the kill failed")
        self.assertEqual(set(after), {"a", "c"})

    def test_all_members_dead_without_retries(self):
        port = harness.free_port()
        members = [member("d1", harness.dead_address()), member("d2", harness.dead_address())]
        lb = self.start_ringlb(harness.make_config(port, members, pool={"retries": 0}))
        for i in range(2):
            s = self.connect(port)
            client = harness.client_name(s)
            harness.wait_closed_by_peer(s)
            e = lb.entry_for(client)
            if i == 0:
                self.assertEqual(e["end"], "connect_refused", e)
                self.assertEqual(e["attempts"], 1, e)
            else:  # ringlb may have learnt by now that both are down
                self.assertIn(e["end"], ("connect_refused", "no_member"), e)
                self.assertLessEqual(e["attempts"], 1, e)
            self.assertEqual(e["bytes_in"], 0, e)
            self.assertEqual(e["bytes_out"], 0, e)

    def test_all_members_dead_with_retries(self):
        port = harness.free_port()
        members = [member(f"d{i}", harness.dead_address()) for i in range(3)]
        lb = self.start_ringlb(harness.make_config(port, members, pool={"retries": 2}))
        s = self.connect(port)
        client = harness.client_name(s)
        harness.wait_closed_by_peer(s)
        e = lb.entry_for(client)
        self.assertEqual(e["end"], "connect_refused", e)
        self.assertEqual(e["attempts"], 3, e)

    def test_connect_timeout_moves_on(self):
        hole = self.blackhole()
        live = self.backend(harness.name_handler, name="live")
        port = harness.free_port()
        # workers=1 and round robin: the first connection goes to the hole.
        members = [member("hole", hole.address), member("live", live.address)]
        lb = self.start_ringlb(harness.make_config(
            port, members, pool={"retries": 1, "connect_timeout": "300ms"}))
        for i in range(4):
            started = time.monotonic()
            name, client = ask(port)
            elapsed = time.monotonic() - started
            self.assertEqual(name, "live", f"connection {i}")
            e = lb.entry_for(client)
            self.assertEqual(e["member"], "live", e)
            if i == 0:
                self.assertEqual(e["attempts"], 2, e)  # the hole's turn
            self.assertIn(e["attempts"], (1, 2), e)
            if e["attempts"] == 2:  # the hole was tried first and timed out
                self.assertGreaterEqual(elapsed, 0.25, f"connection {i} did not wait for the timeout")

    def test_connect_timeout_without_retries(self):
        hole = self.blackhole()
        port = harness.free_port()
        lb = self.start_ringlb(harness.make_config(
            port, [member("hole", hole.address)], pool={"retries": 0, "connect_timeout": "300ms"}))
        s = self.connect(port)
        client = harness.client_name(s)
        waited = harness.wait_closed_by_peer(s)
        self.assertGreaterEqual(waited, 0.25, "closed before the connect timeout")
        self.assertLess(waited, 5 * harness.SCALE, "the connect timeout of 300ms was not applied")
        e = lb.entry_for(client)
        self.assertEqual(e["end"], "connect_timeout", e)
        self.assertEqual(e["attempts"], 1, e)


if __name__ == "__main__":
    harness.main()
