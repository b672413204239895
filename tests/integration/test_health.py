"""Active health checks (HTTP and TCP probes, rise/fall), passive failure
accounting and on_down: which members are taken out, how fast, why (the
log line), and that no other member's established session is touched."""

import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import member  # noqa: E402

SLACK = 0.5 * harness.SCALE  # scheduling, the 20ms control tick, +-10% probe jitter


class HealthTest(harness.RinglbTest):

    def assertTakesBetween(self, line, since, low, high, what):
        took = mh.log_time(line) - since
        # The log's clock has millisecond resolution: allow for rounding.
        self.assertGreaterEqual(took, low - 0.01, f"{what} after {took:.3f}s, before {low:.3f}s: {line}")
        self.assertLessEqual(took, high, f"{what} after {took:.3f}s, over {high:.3f}s: {line}")
        return took

    # ----------------------------------------------------------------------
    def test_http_probes(self):
        interval, timeout, fall, rise = 0.2, 0.3, 2, 2
        good = self.backend(mh.session_handler, name="good")
        flaky = self.backend(mh.session_handler, name="flaky")
        hang = self.backend(mh.session_handler, name="hang")
        killed = mh.ProcBackend("killed")
        self.addCleanup(killed.kill)
        mh.set_state(good, status=204)  # expect_status is a list
        port, admin = harness.free_port(), harness.free_port()
        pool = {"balance": "round_robin", "retries": 2,
                "health": {"kind": "http", "interval": "200ms", "timeout": "300ms", "fall": fall,
                           "rise": rise, "path": "/healthz?full=1", "host": "health.test",
                           "expect_status": [200, 204]},
                "members": [member("good", good.address), member("flaky", flaky.address),
                            member("killed", killed.address), member("hang", hang.address)]}
        lb = self.start_ringlb(mh.build_config([("front", port, "web", None)], {"web": pool},
                                               admin={"listen": f"127.0.0.1:{admin}"}))

        # The probe: GET path HTTP/1.1 with Host and Connection: close.
        harness.wait_until(lambda: all(b.state.get("probes") for b in (good, flaky, hang)),
                           what="a probe at every in-process member")
        for b in (good, flaky, hang):
            with b.lock:
                head = b.state["probes"][0]
            lines = head.split("\r\n")
            self.assertEqual(lines[0], "GET /healthz?full=1 HTTP/1.1", head)
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            self.assertEqual(headers.get("host"), "health.test", head)
            self.assertEqual(headers.get("connection"), "close", head)
            self.assertTrue(head.endswith("\r\n\r\n"), head)

        # Round robin, one worker: sessions go good, flaky, killed, hang.
        opened = [mh.Session(port) for _ in range(4)]
        for s in opened:
            self.addCleanup(s.close)
        self.assertEqual([s.member for s in opened], ["good", "flaky", "killed", "hang"])
        on_good, on_flaky = opened[0], opened[1]
        opened[2].close()
        opened[3].close()
        self.assertEqual(lb.stderr_text().count("up -> down"), 0, lb.stderr_text())

        # Now flaky answers 503, killed is killed, hang stops answering.
        t0 = time.time()
        mh.set_state(flaky, status=503)
        killed.kill()
        mh.set_state(hang, hang=True)
        lines = {name: mh.wait_log(lb, mh.transition("web", name)) for name in ("flaky", "killed", "hang")}
        self.assertIn("status 503", lines["flaky"])
        self.assertIn("connect refused", lines["killed"])
        self.assertIn("timeout after 300ms", lines["hang"])
        self.assertIn(" warn ", lines["flaky"])
        earliest = (fall - 1) * interval * 0.9  # fall consecutive failures are needed
        for name in ("flaky", "killed"):
            self.assertTakesBetween(lines[name], t0, earliest, fall * interval + timeout + SLACK,
                                    f"{name} removed")
        self.assertTakesBetween(lines["hang"], t0, fall * timeout + earliest, fall * (interval + timeout) + SLACK,
                                "hang removed")
        self.assertEqual(mh.log_lines(lb, "member good:"), [], "good should have no transition")
        self.assertEqual(len(mh.transition_lines(lb)), 3, lb.stderr_text())

        flaky_health = mh.member_status(admin, "web", "flaky")
        self.assertEqual(flaky_health["state"], "down")
        self.assertEqual(flaky_health["health"]["state"], "down")
        self.assertEqual(flaky_health["health"]["last_result"], "failed")
        self.assertEqual(flaky_health["health"]["last_reason"], "status 503")
        self.assertEqual(flaky_health["health"]["transitions"], 1)
        self.assertEqual(mh.member_status(admin, "web", "good")["health"]["state"], "up")

        # No new connections for the three.
        before = {b.name: mh.sessions(b) for b in (flaky, hang)}
        results = [mh.ask(port) for _ in range(20)]
        self.assertEqual({n for n, _ in results}, {"good"})
        for _, client in results:
            self.assertEqual(lb.entry_for(client)["attempts"], 1)
        self.assertEqual({b.name: mh.sessions(b) for b in (flaky, hang)}, before)
        # on_down = "keep" (the default): flaky's own session goes on.
        on_flaky.echo(b"flaky is down but this session stays\n")

        # flaky answers 200 again: back after `rise` passing probes.
        t1 = time.time()
        mh.set_state(flaky, status=200)
        line = mh.wait_log(lb, mh.transition("web", "flaky", down=False))
        self.assertIn("status 200", line)
        self.assertTakesBetween(line, t1, (rise - 1) * interval * 0.9, rise * interval + timeout + SLACK,
                                "flaky restored")
        names = collections.Counter(mh.ask(port)[0] for _ in range(20))
        self.assertEqual(names, {"good": 10, "flaky": 10})

        # good's session was never disturbed.
        on_good.echo(b"the session on good survived all of it\n")
        on_flaky.echo()
        client = on_good.client
        on_good.close()
        e = lb.entry_for(client)
        self.assertEqual((e["member"], e["end"]), ("good", "client_closed"), e)
        self.assertBackendsClean(good, flaky)

    # ----------------------------------------------------------------------
    def test_tcp_probes_and_on_down_close(self):
        a = self.backend(mh.session_handler, name="a")
        b = self.backend(mh.session_handler, name="b")
        c = self.backend(mh.session_handler, name="c")
        switch = mh.PortSwitch()  # a's health port
        self.addCleanup(switch.close)
        closed = harness.free_port()  # c's health port: nothing listens there
        port = harness.free_port()
        pool = {"balance": "round_robin",
                "health": {"kind": "tcp", "interval": "100ms", "timeout": "300ms", "fall": 1, "rise": 1,
                           "on_down": "close"},
                "members": [dict(member("a", a.address), health_port=switch.port),
                            member("b", b.address),
                            dict(member("c", c.address), health_address="127.0.0.1", health_port=closed)]}
        lb = self.start_ringlb(mh.build_config([("front", port, "p", None)], {"p": pool}))

        # A TCP probe to a closed port fails: c is taken out although its
        # traffic port works.
        line = mh.wait_log(lb, mh.transition("p", "c"))
        self.assertIn("connect refused", line)
        names = [mh.ask(port)[0] for _ in range(10)]
        self.assertEqual(collections.Counter(names), {"a": 5, "b": 5})

        on_a = mh.Session(port)
        self.addCleanup(on_a.close)
        on_b = mh.Session(port)
        self.addCleanup(on_b.close)
        self.assertEqual({on_a.member, on_b.member}, {"a", "b"})
        if on_a.member != "a":
            on_a, on_b = on_b, on_a

        # a's probes start failing: on_down = "close" ends its session.
        switch.close()
        line = mh.wait_log(lb, mh.transition("p", "a"))
        self.assertIn("connect refused", line)
        harness.wait_closed_by_peer(on_a.sock)
        e = lb.entry_for(on_a.client)
        self.assertEqual((e["member"], e["end"]), ("a", "member_down"), e)
        harness.wait_until(lambda: mh.live(a) == 0, what="a's backend to see the session end")
        on_b.echo(b"b's session is not touched\n")
        self.assertEqual({mh.ask(port)[0] for _ in range(6)}, {"b"})

        # a's health port answers again: back after one probe (rise = 1).
        switch.open()
        mh.wait_log(lb, mh.transition("p", "a", down=False))
        self.assertEqual(collections.Counter(mh.ask(port)[0] for _ in range(10)), {"a": 5, "b": 5})
        on_b.echo()
        self.assertEqual(len(mh.transition_lines(lb)), 3, lb.stderr_text())
        self.assertBackendsClean(b)

    # ----------------------------------------------------------------------
    def test_passive_fall(self):
        live = self.backend(mh.session_handler, name="live")
        port = harness.free_port()
        # Probes an hour apart (the first at a random point in that hour), so
        # only traffic can take the dead member out within this test.
        pool = {"balance": "round_robin", "retries": 1,
                "health": {"kind": "tcp", "interval": "1h", "fall": 3, "passive_fall": 1},
                "members": [member("dead", harness.dead_address()), member("live", live.address)]}
        lb = self.start_ringlb(mh.build_config([("front", port, "p", None)], {"p": pool}))
        t0 = time.time()
        name, client = mh.ask(port)  # round robin: dead first (refused), then live
        self.assertEqual(name, "live")
        self.assertEqual(lb.entry_for(client)["attempts"], 2)
        line = mh.wait_log(lb, mh.transition("p", "dead"))
        self.assertIn("connect failed in traffic", line)
        self.assertLess(mh.log_time(line) - t0, SLACK, "the passive failure was not acted on quickly")
        self.assertNotIn("probe", line)
        held = mh.Session(port)
        self.addCleanup(held.close)
        self.assertEqual(held.member, "live")
        results = [mh.ask(port) for _ in range(10)]
        self.assertEqual({n for n, _ in results}, {"live"})
        for _, client in results:
            self.assertEqual(lb.entry_for(client)["attempts"], 1, "the down member was still tried")
        held.echo()
        self.assertBackendsClean(live)


if __name__ == "__main__":
    harness.main()
