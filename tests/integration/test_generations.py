"""Config generations across reloads: a refused reload leaves the running
generation exactly as it was; a member's state follows its name (also when
its address changes); a pool that loses its health checks has its members up."""

import collections
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import LOOPBACK, member  # noqa: E402


class Restartable(mh.PortSwitch):
    """mh.session_handler on a port of its own that a test can stop (connects
    are then refused) and start again on the same port."""

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.state = {}
        super().__init__()
        self.address = f"{LOOPBACK}:{self.port}"

    def handle(self, conn):
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(harness.WAIT)
            try:
                mh.session_handler(conn, self)
            except OSError:
                pass  # a probe or client that left early


def reload(admin):
    r = mh.post(admin, "/reload")
    return r.status, r.body.decode()


class GenerationsTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.admin = harness.free_port()

    def config(self, members, pool=None, health=None, extra_listeners=(), global_=None):
        spec = dict(pool or {"balance": "round_robin"})
        spec["members"] = members
        if health is not None:
            spec["health"] = health
        listeners = [("front", self.port, "p", None), *extra_listeners]
        return mh.build_config(listeners, {"p": spec}, global_=global_,
                               admin={"listen": f"{LOOPBACK}:{self.admin}"})

    def rewrite(self, lb, text):
        with open(lb.config_path, "w") as f:
            f.write(text)

    # ----------------------------------------------------------------------
    def test_refused_reload_changes_nothing(self):
        """Bug: building the refused generation wrote the new weight and
        backup flag into the running members; a later weight change then
        rebuilt the hash table with more members than the picker's group
        (a heap overflow under ASan)."""
        backends = {n: self.backend(harness.name_handler, name=n) for n in ("m1", "m2", "m3")}
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind((LOOPBACK, 0))
        busy.listen(1)
        busy_port = busy.getsockname()[1]
        pool = {"balance": "consistent_hash", "retries": 2}
        lb = self.start_ringlb(self.config(
            [member("m1", backends["m1"].address), member("m2", backends["m2"].address),
             member("m3", backends["m3"].address, backup=True)], pool=pool, global_={"workers": 2}))
        # What the config decides, without what is sampled as time passes.
        def running(status):
            status.pop("history")
            for x in status["listeners"] + [m for p in status["pools"] for m in p["members"]]:
                for sampled in ("rates", "state_since", "state_seconds", "last_probe_ms"):
                    x.pop(sampled, None)
            return status
        before = running(mh.status_json(self.admin))

        # m3 becomes primary, m1 heavier, and a listener on a taken port.
        self.rewrite(lb, self.config(
            [member("m1", backends["m1"].address, weight=3), member("m2", backends["m2"].address),
             member("m3", backends["m3"].address, backup=False)],
            pool=pool, extra_listeners=[("taken", busy_port, "p", None)], global_={"workers": 2}))
        status, body = reload(self.admin)
        self.assertEqual(status, 400, body)
        self.assertIn("cannot listen", body)

        self.assertEqual(running(mh.status_json(self.admin)), before, "the refused reload changed the running config")
        metrics = mh.scrape(self.admin)
        self.assertEqual(metrics.value("ringlb_member_weight", member="m1"), 1)
        self.assertEqual(mh.member_status(self.admin, "p", "m3")["backup"], True)

        # A weight change after it: no crash, the backup stays out of the way.
        r = mh.post(self.admin, "/pools/p/members/m2/weight", b"5")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["weight"], 5)
        names = collections.Counter(mh.ask(self.port, source=f"127.0.{i}.{i + 1}")[0] for i in range(40))
        self.assertEqual(set(names) - {"m1", "m2"}, set(), names)
        self.assertGreater(names["m2"], names["m1"], f"m2 weighs 5, m1 1: {names}")

    # ----------------------------------------------------------------------
    def test_member_is_up_once_its_pool_loses_health_checks(self):
        """Bug: a member down when a reload removed its pool's health table
        stayed down forever (no prober left to bring it back)."""
        m1 = self.backend(mh.session_handler, name="m1")
        m2 = Restartable("m2")
        self.addCleanup(m2.close)
        members = [member("m1", m1.address), member("m2", m2.address)]
        health = {"kind": "tcp", "interval": "100ms", "timeout": "500ms", "fall": 1, "rise": 1}
        lb = self.start_ringlb(self.config(members, health=health))

        m2.close()
        mh.wait_log(lb, mh.transition("p", "m2"))
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["state"], "down")

        self.rewrite(lb, self.config(members))
        status, body = reload(self.admin)
        self.assertEqual(status, 200, body)
        m2_status = mh.member_status(self.admin, "p", "m2")
        self.assertEqual((m2_status["state"], m2_status["health"]), ("up", None), m2_status)

        # Without checks a stopped member costs a retry, and once it runs
        # again it gets its share.
        m2.open()
        harness.wait_until(lambda: mh.ask(self.port)[0] == "m2", what="a connection to reach m2 again")
        names = collections.Counter(mh.ask(self.port)[0] for _ in range(10))
        self.assertEqual(names, {"m1": 5, "m2": 5})

    # ----------------------------------------------------------------------
    def test_member_keeps_its_state_when_its_address_changes(self):
        """Bug: a member that kept its name but changed its address came back
        undrained with zeroed counters."""
        m1 = self.backend(mh.session_handler, name="m1")
        old = self.backend(mh.session_handler, name="m2-old")
        new = self.backend(mh.session_handler, name="m2-new")
        lb = self.start_ringlb(self.config([member("m1", m1.address), member("m2", old.address)]))
        held = [mh.Session(self.port) for _ in range(2)]  # round robin: m1, then m2
        for s in held:
            self.addCleanup(s.close)
        on_old = held[1]
        self.assertEqual(on_old.member, "m2-old")
        r = mh.post(self.admin, "/pools/p/members/m2/drain")
        self.assertEqual(r.status, 200, r)

        self.rewrite(lb, self.config([member("m1", m1.address), member("m2", new.address)]))
        status, body = reload(self.admin)
        self.assertEqual(status, 200, body)
        m2 = mh.member_status(self.admin, "p", "m2")
        self.assertEqual((m2["address"], m2["state"], m2["connections"], m2["active"]),
                         (new.address, "draining", 1, 1), m2)
        metrics = mh.scrape(self.admin)
        self.assertEqual(metrics.value("ringlb_member_connections_total", member="m2"), 1)
        self.assertIn("member m2 of pool p moved", lb.stderr_text())

        # Still drained; the session on the old address flows on.
        self.assertEqual({mh.ask(self.port)[0] for _ in range(4)}, {"m1"})
        on_old.echo(b"the old address still carries this session\n")

        # Undrained, m2 takes new connections at its new address only.
        r = mh.post(self.admin, "/pools/p/members/m2/undrain")
        self.assertEqual(r.status, 200, r)
        names = collections.Counter(mh.ask(self.port)[0] for _ in range(6))
        self.assertEqual(names, {"m1": 3, "m2-new": 3})
        self.assertEqual(mh.sessions(old), 1)
        on_old.echo()
        client = on_old.client
        on_old.close()
        e = lb.entry_for(client)
        self.assertEqual((e["member"], e["member_address"], e["end"]), ("m2", old.address, "client_closed"), e)
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["connections"], 4)

    def test_sessions_at_a_members_old_address_end_like_a_removed_members(self):
        m1 = self.backend(mh.session_handler, name="m1")
        old = self.backend(mh.session_handler, name="m2-old")
        new = self.backend(mh.session_handler, name="m2-new")
        timeout = {"removed_member_timeout": "300ms"}
        lb = self.start_ringlb(self.config([member("m2", old.address), member("m1", m1.address)],
                                           global_=timeout))
        on_old = mh.Session(self.port)  # round robin: m2 first
        self.addCleanup(on_old.close)
        self.assertEqual(on_old.member, "m2-old")

        self.rewrite(lb, self.config([member("m2", new.address), member("m1", m1.address)], global_=timeout))
        status, body = reload(self.admin)
        self.assertEqual(status, 200, body)
        on_new = mh.Session(self.port)
        self.addCleanup(on_new.close)
        self.assertEqual(on_new.member, "m2-new")
        harness.wait_closed_by_peer(on_old.sock, timeout=5 * harness.SCALE)
        e = lb.entry_for(on_old.client)
        self.assertEqual((e["member"], e["member_address"], e["end"]), ("m2", old.address, "member_removed"), e)
        on_new.echo(b"the new address is not removed\n")


if __name__ == "__main__":
    harness.main()
