"""Reload (SIGHUP and POST /reload) under continuous load: no failed
connection, no cut or corrupted transfer, state kept by member name, and an
invalid file keeps the running config."""

import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB, member  # noqa: E402


def admin_post(port, path, body=b""):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_status(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
        return json.load(r)


class ShortConnections(threading.Thread):
    """Opens connection after connection, each echoing one line; counts
    every failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.done = 0
        self.failures = []

    def run(self):
        i = 0
        while not self.stop.is_set():
            line = f"ping {i}\n".encode()
            try:
                with harness.connect(self.port) as s:
                    s.sendall(line)
                    s.shutdown(socket.SHUT_WR)
                    data, reset = harness.recv_all(s)
                if reset or data != line:
                    self.failures.append((i, data, reset))
            except OSError as e:
                self.failures.append((i, repr(e)))
            self.done += 1
            i += 1


class Transfer(threading.Thread):
    """One long echo transfer, paced so that it spans the reloads; checks
    that every byte came back in order."""

    def __init__(self, port, total, seed):
        super().__init__(daemon=True)
        self.port = port
        self.total = total
        self.seed = seed
        self.error = None
        self.sent_digest = None
        self.received_digest = None

    def run(self):
        try:
            s = harness.connect(self.port, timeout=60 * harness.SCALE)
            rng = random.Random(self.seed)
            sent = hashlib.sha256()

            def send():
                left = self.total
                while left:
                    chunk = rng.randbytes(min(256 * 1024, left))
                    sent.update(chunk)
                    s.sendall(chunk)
                    left -= len(chunk)
                    time.sleep(0.02)
                s.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            n, digest = harness.hash_drain(s)
            sender.join()
            s.close()
            self.sent_digest, self.received_digest = sent.hexdigest(), digest
            if n != self.total:
                self.error = f"received {n} of {self.total} bytes"
        except Exception as e:  # reported by the test
            self.error = repr(e)


class ReloadTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.backends = [self.backend(harness.echo_handler, name=f"m{i}") for i in range(1, 4)]
        self.port = harness.free_port()
        self.admin = harness.free_port()

    def config(self, names, extra=""):
        by_name = {b.name: b for b in self.backends}
        members = [member(n, by_name[n].address) for n in names]
        text = harness.make_config(self.port, members, workers=2,
                                   global_={"access_log": "off"}, pool={"balance": "least_conn"})
        # POST /reload here comes faster than the default reload_min_interval (1s).
        return text + f'\n[admin]\nlisten = "127.0.0.1:{self.admin}"\nreload_min_interval = "1ms"\n' + extra

    def reloads(self, lb):
        return sum("info reloaded" in line for line in lb.stderr_text().splitlines())

    def test_ten_reloads_under_load_lose_nothing(self):
        lb = self.start_ringlb(self.config(["m1", "m2"]))
        path = lb.config_path
        short = ShortConnections(self.port)
        transfers = [Transfer(self.port, 24 * MiB, seed) for seed in range(4)]
        short.start()
        for t in transfers:
            t.start()
        configs = [["m2", "m3"], ["m1", "m2", "m3"], ["m3"], ["m1"], ["m1", "m2"]]
        for i in range(10):
            with open(path, "w") as f:
                f.write(self.config(configs[i % len(configs)]))
            if i % 2:
                status, body = admin_post(self.admin, "/reload")
                self.assertEqual(status, 200, body)
            else:
                lb.signal(signal.SIGHUP)
            harness.wait_until(lambda: self.reloads(lb) == i + 1, what=f"reload {i + 1}")
            time.sleep(0.05)  # let some connections run on this generation
        short.stop.set()
        short.join(30)
        for t in transfers:
            t.join(120)
            self.assertFalse(t.is_alive(), "a transfer did not finish")
            self.assertIsNone(t.error, t.error)
            self.assertEqual(t.received_digest, t.sent_digest, "a transfer came back corrupted")
        self.assertGreater(short.done, 50, "too few short connections to mean anything")
        self.assertEqual(short.failures, [], f"{len(short.failures)} of {short.done} failed")
        # The last config (m1, m2) is what new connections use now.
        names = [m["name"] for m in admin_status(self.admin)["pools"][0]["members"]]
        self.assertEqual(names, ["m1", "m2"])

    def test_invalid_file_keeps_the_running_config(self):
        lb = self.start_ringlb(self.config(["m1"]))
        with open(lb.config_path, "a") as f:
            f.write("\n[pool.pool.health]\nkind = \"smoke-signals\"\n")
        lb.signal(signal.SIGHUP)
        harness.wait_until(lambda: "reload of" in lb.stderr_text(), what="the refused reload's log line")
        self.assertIn("smoke-signals", lb.stderr_text())
        status, body = admin_post(self.admin, "/reload")
        self.assertEqual(status, 400)
        self.assertIn("smoke-signals", body)
        with harness.connect(self.port) as s:  # still serving the old config
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(harness.recv_all(s)[0], b"hello\n")

    def test_state_and_listeners_follow_names(self):
        lb = self.start_ringlb(self.config(["m1", "m2"]))
        status, body = admin_post(self.admin, "/pools/pool/members/m2/drain")
        self.assertEqual(status, 200, body)
        # Keep m2 (still draining), add m3 and a second listener.
        second = harness.free_port()
        extra = (f'\n[[listener]]\nname = "second"\nbind = "127.0.0.1:{second}"\npool = "pool"\n')
        with open(lb.config_path, "w") as f:
            f.write(self.config(["m1", "m2", "m3"], extra))
        lb.signal(signal.SIGHUP)
        harness.wait_until(lambda: self.reloads(lb) == 1, what="the reload")
        states = {m["name"]: m["state"] for m in admin_status(self.admin)["pools"][0]["members"]}
        self.assertEqual(states, {"m1": "up", "m2": "draining", "m3": "up"})
        with harness.connect(second) as s:
            s.sendall(b"via the new listener\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(harness.recv_all(s)[0], b"via the new listener\n")
        # Remove the second listener again: it stops accepting.
        with open(lb.config_path, "w") as f:
            f.write(self.config(["m1", "m2", "m3"]))
        lb.signal(signal.SIGHUP)
        harness.wait_until(lambda: self.reloads(lb) == 2, what="the second reload")
        harness.wait_until(lambda: harness.connect_refused(second), what="the removed listener to refuse")

    def test_removed_member_timeout_closes_its_sessions(self):
        by_name = {b.name: b for b in self.backends}

        def config(names):
            members = [member(n, by_name[n].address) for n in names]
            return harness.make_config(self.port, members, workers=2,
                                       global_={"removed_member_timeout": "300ms"})
        lb = self.start_ringlb(config(["m1"]))
        held = harness.connect(self.port)
        client = harness.client_name(held)
        held.sendall(b"before\n")
        self.assertEqual(harness.recv_exact(held, 7), b"before\n")
        with open(lb.config_path, "w") as f:
            f.write(config(["m2"]))
        lb.signal(signal.SIGHUP)
        harness.wait_until(lambda: self.reloads(lb) == 1, what="the reload")
        # New connections go to m2 at once; the session on m1 is closed
        # once removed_member_timeout has passed.
        with harness.connect(self.port) as s:
            s.sendall(b"new\n")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(harness.recv_all(s)[0], b"new\n")
        harness.wait_closed_by_peer(held, timeout=5 * harness.SCALE)
        e = lb.entry_for(client)
        self.assertEqual(e["end"], "member_removed", e)
        self.assertEqual(e["member"], "m1", e)
        held.close()

    def test_check_against_previews_the_move(self):
        old = self.write_config(self.config(["m1", "m2", "m3"]).replace("least_conn", "consistent_hash"), "old.toml")
        new = self.write_config(self.config(["m1", "m2"]).replace("least_conn", "consistent_hash"), "new.toml")
        import subprocess
        out = subprocess.run([harness.RINGLB, "--check", new, "--against", old],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("- member m3", out.stdout)
        share = float(out.stdout.split("keys that would move:")[1].split("%")[0])
        self.assertAlmostEqual(share, 100 / 3, delta=3)  # m3's third of the keys, nothing else


if __name__ == "__main__":
    harness.main()
