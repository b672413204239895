"""Round robin: which member each connection reaches, and the access log
line written for it."""

import collections
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import member  # noqa: E402


class BalanceTest(harness.RinglbTest):

    def start(self, weights, workers=1):
        """Three identifying backends m1..m3 behind ringlb with these weights."""
        self.backends = [self.backend(harness.name_handler, name=f"m{i + 1}") for i in range(3)]
        self.port = harness.free_port()
        members = [member(b.name, b.address, weight=w) for b, w in zip(self.backends, weights)]
        self.lb = self.start_ringlb(harness.make_config(self.port, members, workers=workers))

    def ask(self, i):
        """One connection: sends a line, returns (member name, client address,
        bytes sent, bytes received)."""
        with harness.connect(self.port) as s:
            client = harness.client_name(s)
            line = f"request {i}\n".encode()
            s.sendall(line)
            data, reset = harness.recv_all(s)
        self.assertFalse(reset, f"connection {i} was reset")
        name, _, echoed = data.partition(b"\n")
        self.assertEqual(echoed, line, f"connection {i}: the member did not get the request intact")
        return name.decode(), client, len(line), len(data)

    def run_connections(self, n):
        return [self.ask(i) for i in range(n)]

    def check_access_log(self, results):
        """One access log entry per connection, naming the member the client
        saw, with the bytes it moved."""
        entries = self.lb.wait_entries(len(results))
        self.assertEqual(len(entries), len(results), "one access log entry per connection")
        by_client = {e["client"]: e for e in entries}
        self.assertEqual(len(by_client), len(results), "client addresses in the access log are distinct")
        addresses = {b.name: b.address for b in self.backends}
        for name, client, sent, received in results:
            e = by_client.get(client)
            self.assertIsNotNone(e, f"no access log entry for client {client}")
            self.assertEqual(e["listener"], "front")
            self.assertEqual(e["member"], name, e)
            self.assertEqual(e["member_address"], addresses[name], e)
            self.assertEqual(e["bytes_in"], sent, e)
            self.assertEqual(e["bytes_out"], received, e)
            self.assertEqual(e["attempts"], 1, e)
            self.assertIn(e["end"], ("member_closed", "client_closed"), e)
            self.assertGreaterEqual(e["duration_ms"], e["connect_ms"], e)
            self.assertGreaterEqual(e["connect_ms"], 0, e)

    def test_equal_weights_exact_order(self):
        self.start([1, 1, 1])
        results = self.run_connections(30)
        self.assertEqual([r[0] for r in results], ["m1", "m2", "m3"] * 10)
        self.check_access_log(results)
        self.assertBackendsClean(*self.backends)

    def test_smooth_weighted_order(self):
        # Smooth weighted round robin spreads the heavy member out: a a b a c a a.
        self.start([5, 1, 1])
        results = self.run_connections(21)
        self.assertEqual([r[0] for r in results], ["m1", "m1", "m2", "m1", "m3", "m1", "m1"] * 3)
        self.check_access_log(results)

    def test_weights_exact_share(self):
        self.start([3, 2, 1])
        results = self.run_connections(60)
        names = [r[0] for r in results]
        self.assertEqual(collections.Counter(names), {"m1": 30, "m2": 20, "m3": 10})
        # Every period of 6 (the sum of the weights) holds each member exactly
        # its weight times.
        for start in range(0, 60, 6):
            self.assertEqual(collections.Counter(names[start:start + 6]), {"m1": 3, "m2": 2, "m3": 1},
                             f"period starting at connection {start}: {names[start:start + 6]}")
        self.check_access_log(results)

    def test_two_workers_even_share(self):
        # State is per worker: each member's count is within +-workers of its share.
        self.start([1, 1, 1], workers=2)
        results = self.run_connections(300)
        counts = collections.Counter(r[0] for r in results)
        self.assertEqual(set(counts), {"m1", "m2", "m3"})
        for name, count in counts.items():
            self.assertLessEqual(abs(count - 100), 2, f"{name} got {count} of 300: {counts}")
        self.check_access_log(results)
        self.assertBackendsClean(*self.backends)

    def test_ipv6_listener_and_members(self):
        # Two echo members on [::1] behind a listener on [::1]: bytes intact,
        # both members used, addresses logged in [v6]:port form.
        members = []
        for name in ("v6a", "v6b"):
            server = socket.socket(socket.AF_INET6)
            server.bind(("::1", 0))
            server.listen(16)
            self.addCleanup(server.close)
            threading.Thread(target=self.echo_forever, args=(server,), daemon=True).start()
            members.append((name, f"[::1]:{server.getsockname()[1]}"))
        port = harness.free_port()
        text = harness.make_config(port, [member(n, a) for n, a in members]).replace(
            f'bind = "127.0.0.1:{port}"', f'bind = "[::1]:{port}"')
        lb = self.start_ringlb(text)
        for i in range(4):
            with socket.create_connection(("::1", port), timeout=harness.WAIT) as s:
                line = f"six {i}\n".encode()
                s.sendall(line)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(harness.recv_all(s)[0], line)
        entries = lb.wait_entries(4)
        self.assertEqual({e["member"] for e in entries}, {"v6a", "v6b"})
        for e in entries:
            self.assertTrue(e["client"].startswith("[::1]:"), e)
            self.assertEqual(e["member_address"], dict(members)[e["member"]], e)

    @staticmethod
    def echo_forever(server):
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)


if __name__ == "__main__":
    harness.main()
