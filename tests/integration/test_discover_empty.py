"""Pools whose members come only from DNS ([[pool.NAME.discover]], issue 12)
while the DNS server never answers: such a pool has no members. `--check`
accepts the file without asking DNS anything; ringlb starts; a client of
such a pool is closed (no_member), under every balance, while a session of
another pool keeps flowing; /status, /metrics and the status page render the
empty pools; a reload keeps all of this; the stop is clean.

The DNS server is a UDP socket the test binds and never reads from, so the
test holds whether or not this build resolves names: either way the pools
stay empty."""

import os
import signal
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import LOOPBACK, SCALE, member, wait_until  # noqa: E402

BALANCES = ("round_robin", "least_conn", "consistent_hash", "random_two")
CLIENTS_PER_POOL = 3
# Generous: a build that resolves may wait (bounded) for a first answer
# before it says ready.
READY_WAIT = 60 * SCALE


def silent_dns_server(test):
    """A bound UDP socket nobody reads: queries to it are never answered."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LOOPBACK, 0))
    test.addCleanup(s.close)
    return s.getsockname()[1]


def closed_without_data(port):
    """Connects, sends a little, and waits for ringlb to close (EOF or
    reset) without sending anything back."""
    with harness.connect(port) as s:
        try:
            s.sendall(b"hello\n")
        except (BrokenPipeError, ConnectionResetError):
            return  # closed before the bytes went out: closed all the same
        harness.wait_closed_by_peer(s)


class EmptyDiscoveredPoolTest(harness.RinglbTest):

    def config(self):
        self.dns_port = silent_dns_server(self)
        self.admin_port = harness.free_port()
        self.ports = {balance: harness.free_port() for balance in BALANCES}
        self.static_port = harness.free_port()
        self.echo = self.backend(harness.echo_handler, "echo")
        listeners = [(f"l_{b}", port, f"d_{b}", {}) for b, port in self.ports.items()]
        listeners.append(("l_static", self.static_port, "static", {}))
        pools = {f"d_{b}": {"balance": b, "members": [],
                            "health": {"kind": "tcp", "interval": "100ms", "timeout": "300ms"}}
                 for b in BALANCES}
        pools["static"] = {"balance": "round_robin", "members": [member("echo", f"{LOOPBACK}:{self.echo.port}")]}
        text = mh.build_config(listeners, pools, workers=2, admin={"listen": f"{LOOPBACK}:{self.admin_port}"})
        text += (f'\n[global.dns]\nservers = ["{LOOPBACK}:{self.dns_port}"]\n'
                 'timeout = "300ms"\nattempts = 1\nmin_interval = "100ms"\n')
        for b in BALANCES:
            text += f'\n[[pool.d_{b}.discover]]\nname = "api.discover-test.invalid"\nport = 9\ninterval = "1s"\n'
        return text

    def test_empty_pools_refuse_clients_and_report(self):
        text = self.config()
        path = self.write_config(text, "check.toml")
        # Checking resolves nothing: it is done in time whatever DNS does.
        r = subprocess.run([harness.RINGLB, "--check", path], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=harness.WAIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok: 5 listeners, 5 pools, 1 member, 4 discoveries\n")

        lb = self.start_ringlb(text, wait_ready=False)
        lb.wait_ready(timeout=READY_WAIT)
        # A session of the pool with a member, open across everything below.
        kept = self.connect(self.static_port)
        kept.sendall(b"before\n")
        self.assertEqual(harness.recv_exact(kept, 7), b"before\n")

        for balance, port in self.ports.items():
            with self.subTest(balance=balance):
                for _ in range(CLIENTS_PER_POOL):
                    closed_without_data(port)
                entries = lb.wait_entries(CLIENTS_PER_POOL, where=lambda e, b=balance: e["listener"] == f"l_{b}")
                self.assertEqual({e["end"] for e in entries}, {"no_member"}, entries)
                self.assertTrue(all(e["member"] is None and e["attempts"] == 0 for e in entries), entries)

        kept.sendall(b"after\n")
        self.assertEqual(harness.recv_exact(kept, 6), b"after\n")

        status = mh.status_json(self.admin_port)
        pools = {p["name"]: p for p in status["pools"]}
        for b in BALANCES:
            self.assertEqual(pools[f"d_{b}"]["members"], [], pools[f"d_{b}"])
            self.assertEqual(pools[f"d_{b}"]["balance"], b)
        self.assertEqual([m["name"] for m in pools["static"]["members"]], ["echo"])

        metrics = mh.get(self.admin_port, "/metrics")
        self.assertEqual(metrics.status, 200)
        body = metrics.body.decode()
        for b in BALANCES:
            self.assertIn(f'ringlb_pool_no_member_total{{pool="d_{b}"}} {CLIENTS_PER_POOL}\n', body)
            self.assertNotIn(f'pool="d_{b}",member=', body)

        page = mh.get(self.admin_port, "/")
        self.assertEqual(page.status, 200)
        self.assertIn("<h2>pool d_round_robin", page.body.decode())
        self.assertIn("no members", page.body.decode())

        # A reload builds the empty pools again; they still refuse, the
        # session of the other pool still flows.
        lb.signal(signal.SIGHUP)
        wait_until(lambda: any("reloaded" in line and "4 discoveries" in line
                               for line in lb.stderr_text().splitlines()),
                   what="the reload")
        closed_without_data(self.ports["consistent_hash"])
        lb.wait_entries(CLIENTS_PER_POOL + 1, where=lambda e: e["listener"] == "l_consistent_hash")
        kept.sendall(b"reloaded\n")
        self.assertEqual(harness.recv_exact(kept, 9), b"reloaded\n")
        self.assertIsNone(lb.proc.poll(), "ringlb exited")
        self.assertBackendsClean(self.echo)


if __name__ == "__main__":
    harness.main()
