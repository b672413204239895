"""What the workers and the control thread share, changed all at once: two
workers pick members while the control thread reloads (new balance, weights,
health checks on and off, a second listener), takes weight and drain changes from the
admin endpoint, runs health probes and serves /status and /metrics. Every
echo must come back whole. Its real value is in the ThreadSanitizer build
(scripts/test runs it there): any unordered access fails the test, since
ringlb's stop must be clean and free of sanitizer reports."""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402

RELOADS = 20
ADMIN_ROUNDS = 60
BALANCES = ["consistent_hash", "least_conn", "round_robin", "random_two"]


class ThreadsTest(harness.RinglbTest):
    def config(self, round_, port, extra_port, admin_port, backends):
        members = []
        for i, b in enumerate(backends):
            m = {"name": f"m{i}", "address": b.address, "weight": 1 + (i + round_) % 3}
            if i == len(backends) - 1:
                m["backup"] = True
            members.append(m)
        pool = {"balance": BALANCES[round_ % len(BALANCES)], "members": members}
        if round_ % 2 == 0:
            pool["health"] = {"kind": "tcp", "interval": "50ms", "timeout": "1s", "rise": 1, "fall": 2}
        listeners = [("front", port, "p", None)]
        if round_ % 2 == 1:
            listeners.append(("extra", extra_port, "p", None))
        return mh.build_config(listeners, {"p": pool}, workers=2,
                               global_={"access_log": "off"},
                               admin={"listen": f"{harness.LOOPBACK}:{admin_port}"})

    def test_reloads_admin_changes_and_probes_while_workers_pick(self):
        backends = [self.backend(harness.echo_handler, f"b{i}") for i in range(3)]
        port, extra_port, admin_port = harness.free_port(), harness.free_port(), harness.free_port()
        lb = self.start_ringlb(self.config(0, port, extra_port, admin_port, backends))

        done = threading.Event()
        failures, exchanges = [], [0]
        lock = threading.Lock()

        def client(seed):
            n = 0
            while not done.is_set():
                payload = f"{seed}:{n}:".encode() * (1 + n % 50)
                n += 1
                try:
                    with harness.connect(port) as s:
                        s.sendall(payload)
                        s.shutdown(socket.SHUT_WR)
                        echoed, reset = harness.recv_all(s)
                    if echoed != payload or reset:
                        raise AssertionError(f"echo of {len(payload)} bytes came back as {len(echoed)}"
                                             f"{' and a reset' if reset else ''}")
                    with lock:
                        exchanges[0] += 1
                except Exception as e:  # noqa: BLE001 - collected, asserted below
                    with lock:
                        failures.append(repr(e))

        def admin():
            for i in range(ADMIN_ROUNDS):
                mh.post(admin_port, f"/pools/p/members/m{i % 2}/weight", str(1 + i % 5))
                # m0 is never drained: a primary member is always there.
                mh.post(admin_port, f"/pools/p/members/m1/{'drain' if (i // 2) % 2 else 'undrain'}")
                mh.get(admin_port, "/metrics")
                mh.get(admin_port, "/status")

        clients = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        admin_thread = threading.Thread(target=admin, daemon=True)
        for t in clients:
            t.start()
        admin_thread.start()
        try:
            for r in range(1, RELOADS + 1):
                self.write_config(self.config(r, port, extra_port, admin_port, backends))
                lb.signal(harness.signal.SIGHUP)
                mh.wait_log(lb, "reloaded", count=r)
            admin_thread.join(120 * harness.SCALE)
            self.assertFalse(admin_thread.is_alive(), "admin requests did not finish")
        finally:
            done.set()
            for t in clients:
                t.join(60 * harness.SCALE)
        self.assertEqual(failures[:5], [], f"{len(failures)} of {len(failures) + exchanges[0]} exchanges failed")
        self.assertGreater(exchanges[0], RELOADS)


if __name__ == "__main__":
    harness.main()
