"""The admin endpoint: /metrics (parsed and checked against the traffic
sent), /status, drain/undrain/weight with a bearer token, malformed
requests, and the HTML status page as a browser renders it."""

import collections
import html.parser
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import member  # noqa: E402

TOKEN = "s3cret-token"
FAST_TCP_HEALTH = {"kind": "tcp", "interval": "100ms", "timeout": "300ms", "rise": 1, "fall": 1}

FAMILIES = {
    "ringlb_listener_connections_active": "gauge",
    "ringlb_listener_connections_total": "counter",
    "ringlb_listener_rejected_total": "counter",
    "ringlb_listener_received_bytes_total": "counter",
    "ringlb_listener_sent_bytes_total": "counter",
    "ringlb_member_connections_active": "gauge",
    "ringlb_member_connections_total": "counter",
    "ringlb_member_received_bytes_total": "counter",
    "ringlb_member_sent_bytes_total": "counter",
    "ringlb_member_connect_failures_total": "counter",
    "ringlb_member_up": "gauge",
    "ringlb_member_draining": "gauge",
    "ringlb_member_weight": "gauge",
    "ringlb_member_health_transitions_total": "counter",
    "ringlb_member_probe_duration_seconds": "histogram",
    "ringlb_pool_retries_total": "counter",
    "ringlb_pool_no_member_total": "counter",
    "ringlb_pool_session_duration_seconds": "histogram",
    "ringlb_tls_handshakes_total": "counter",
    "ringlb_tls_resumed_handshakes_total": "counter",
    "ringlb_tls_handshake_duration_seconds": "histogram",
    "ringlb_listener_routed_total": "counter",
    "ringlb_member_tls_failures_total": "counter",
    "ringlb_tls_certificate_expiry_seconds": "gauge",
    "ringlb_worker_completions_total": "counter",
    "ringlb_worker_stale_completions_total": "counter",
    "ringlb_worker_dropped_completion_events_total": "counter",
    "ringlb_worker_pipes": "gauge",
    "ringlb_access_log_dropped_lines_total": "counter",
    "ringlb_log_dropped_lines_total": "counter",
    "ringlb_local_errors_total": "counter",
}


class AdminTest(harness.RinglbTest):

    def start(self, *, token=None, workers=1, health=None, extra_members=(), extra_pools=None,
              extra_listeners=()):
        """Listener "front" -> pool "p" with members m1, m2 (session backends)
        and whatever else is asked for, with the admin endpoint on."""
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.m2 = self.backend(mh.session_handler, name="m2")
        self.port, self.admin = harness.free_port(), harness.free_port()
        pool = {"balance": "round_robin",
                "members": [member("m1", self.m1.address), member("m2", self.m2.address), *extra_members]}
        if health:
            pool["health"] = health
        admin = {"listen": f"127.0.0.1:{self.admin}"}
        if token:
            admin["token"] = token
        pools = {"p": pool}
        pools.update(extra_pools or {})
        self.lb = self.start_ringlb(mh.build_config(
            [("front", self.port, "p", None), *extra_listeners], pools, workers=workers, admin=admin))
        return self.lb

    # ----------------------------------------------------------------------
    def test_metrics_match_traffic(self):
        dead_port = harness.free_port()
        lb = self.start(health=FAST_TCP_HEALTH, workers=2,
                        extra_pools={"q": {"retries": 0, "members": [member("dead", harness.dead_address())]}},
                        extra_listeners=[("back", dead_port, "q", None)])
        m = mh.scrape(self.admin)
        for name, kind in FAMILIES.items():
            self.assertIn(name, m.families, f"no family {name}")
            self.assertEqual(m.families[name]["type"], kind, name)
        harness.wait_until(lambda: all(
            mh.scrape(self.admin).value("ringlb_member_probe_duration_seconds_count", pool="p", member=x) >= 1
            for x in ("m1", "m2")), what="a probe of each member")

        sent = received = 0
        per_member = collections.defaultdict(lambda: [0, 0, 0])  # connections, bytes in, bytes out
        n = 24
        for i in range(n):
            line = b"x" * (i * 37) + b"\n"
            name, _ = mh.ask(self.port, line=line)
            out = len(name) + 1 + len(line)
            sent += len(line)
            received += out
            per_member[name][0] += 1
            per_member[name][1] += len(line)
            per_member[name][2] += out
        lb.wait_entries(n)  # every short session has ended inside ringlb too
        # A bigger session: 256 KiB each way through the echo.
        big = mh.Session(self.port)
        self.addCleanup(big.close)
        chunk = bytes(range(256)) * 256
        for _ in range(4):
            big.echo(chunk)
        greeting = len(b"hello\n")
        per_member[big.member][0] += 1
        per_member[big.member][1] += greeting + 4 * len(chunk)
        per_member[big.member][2] += len(big.member) + 1 + greeting + 4 * len(chunk)
        n += 1

        # While it is open, the gauges count it.
        m = mh.scrape(self.admin)
        self.assertEqual(m.value("ringlb_listener_connections_active", listener="front"), 1)
        self.assertEqual(m.value("ringlb_member_connections_active", pool="p", member=big.member), 1)
        self.assertEqual(m.total("ringlb_member_connections_active", pool="p"), 1)
        big.close()
        # A refused connect on the other listener (retries = 0).
        s = self.connect(dead_port)
        harness.wait_closed_by_peer(s)

        lb.wait_entries(n + 1)
        def all_counted():
            x = mh.scrape(self.admin)
            return x if x.value("ringlb_pool_session_duration_seconds_count", pool="p") == n else None

        m = harness.wait_until(all_counted, what="every session to be counted")
        self.assertEqual(m.value("ringlb_listener_connections_total", listener="front"), n)
        self.assertEqual(m.value("ringlb_listener_connections_total", listener="back"), 1)
        self.assertEqual(m.value("ringlb_listener_connections_active", listener="front"), 0)
        self.assertEqual(m.value("ringlb_listener_rejected_total", listener="front", reason="limit"), 0)
        self.assertEqual(m.total("ringlb_member_connections_total", pool="p"), n)
        for name, (conns, bytes_in, bytes_out) in per_member.items():
            labels = {"pool": "p", "member": name}
            self.assertEqual(m.value("ringlb_member_connections_total", **labels), conns, name)
            self.assertEqual(m.value("ringlb_member_received_bytes_total", **labels), bytes_in, name)
            self.assertEqual(m.value("ringlb_member_sent_bytes_total", **labels), bytes_out, name)
            self.assertEqual(m.value("ringlb_member_connections_active", **labels), 0, name)
            self.assertEqual(m.value("ringlb_member_up", **labels), 1)
            self.assertEqual(m.value("ringlb_member_draining", **labels), 0)
            self.assertEqual(m.value("ringlb_member_weight", **labels), 1)
            self.assertEqual(m.value("ringlb_member_health_transitions_total", **labels), 0)
            self.assertEqual(m.total("ringlb_member_connect_failures_total", **labels), 0)
        self.assertEqual(m.total("ringlb_member_received_bytes_total", pool="p"),
                         sent + greeting + 4 * len(chunk))
        self.assertEqual(m.total("ringlb_member_sent_bytes_total", pool="p"),
                         received + len(big.member) + 1 + greeting + 4 * len(chunk))
        # The listener's byte counters are the sums over its pool's members.
        self.assertEqual(m.value("ringlb_listener_received_bytes_total", listener="front"),
                         m.total("ringlb_member_received_bytes_total", pool="p"))
        self.assertEqual(m.value("ringlb_listener_sent_bytes_total", listener="front"),
                         m.total("ringlb_member_sent_bytes_total", pool="p"))
        self.assertEqual(m.value("ringlb_member_connect_failures_total", pool="q", member="dead",
                                 reason="refused"), 1)
        self.assertEqual(m.value("ringlb_member_connect_failures_total", pool="q", member="dead",
                                 reason="timeout"), 0)
        self.assertEqual(m.value("ringlb_member_connections_total", pool="q", member="dead"), 0)
        self.assertEqual(m.value("ringlb_pool_session_duration_seconds_count", pool="q"), 1)
        self.assertEqual(m.value("ringlb_pool_retries_total", pool="p"), 0)
        self.assertEqual(m.value("ringlb_pool_no_member_total", pool="p"), 0)
        self.assertEqual(m.value('ringlb_pool_session_duration_seconds_bucket', pool="p", le="+Inf"), n)
        self.assertEqual(len(m.samples("ringlb_worker_completions_total")), 2)
        self.assertGreater(m.total("ringlb_worker_completions_total"), 0)
        self.assertEqual({ls["state"] for ls, _ in m.samples("ringlb_worker_pipes")}, {"in_use", "spare"})
        self.assertEqual(m.total("ringlb_worker_pipes", state="in_use"), 0)
        # Members without health checks have no probe histogram.
        self.assertEqual(m.samples("ringlb_member_probe_duration_seconds_count", pool="q"), [])

        # /status says the same.
        status = mh.status_json(self.admin)
        for listener in status["listeners"]:  # sampled every 2 s: test_events checks the values
            self.assertEqual(set(listener.pop("rates")), {"new_per_second", "bytes_in_per_second",
                                                          "bytes_out_per_second", "failures_per_second"})
        self.assertEqual(status["listeners"], [
            {"name": "front", "bind": f"127.0.0.1:{self.port}", "pool": "p", "active": 0, "accepted": n},
            {"name": "back", "bind": f"127.0.0.1:{dead_port}", "pool": "q", "active": 0, "accepted": 1}])
        p, q = status["pools"]
        self.assertEqual((p["name"], p["balance"], p["health_checks"]), ("p", "round_robin", True))
        self.assertEqual((q["name"], q["balance"], q["health_checks"]), ("q", "round_robin", False))
        self.assertEqual([x["name"] for x in p["members"]], ["m1", "m2"])
        for x, backend in zip(p["members"], (self.m1, self.m2)):
            self.assertEqual(x["address"], backend.address)
            self.assertEqual((x["state"], x["weight"], x["backup"], x["active"]), ("up", 1, False, 0), x)
            self.assertEqual(x["connections"], per_member[x["name"]][0], x)
            h = x["health"]
            self.assertEqual((h["state"], h["last_result"], h["last_reason"], h["transitions"]),
                             ("up", "passed", "connected", 0), x)
        self.assertEqual(q["members"][0]["health"], None)
        self.assertEqual(q["members"][0]["connections"], 0)
        self.assertBackendsClean(self.m1, self.m2)

    # ----------------------------------------------------------------------
    def test_drain_undrain_weight_token(self):
        lb = self.start(token=TOKEN)
        drain = "/pools/p/members/m1/drain"
        # Reads need no token; changes do.
        self.assertEqual(mh.get(self.admin, "/status").status, 200)
        for auth in (None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
            r = mh.request(self.admin, "POST", drain, headers={"Authorization": auth} if auth else None)
            self.assertEqual(r.status, 401, f"Authorization {auth!r}: {r}")
            self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        self.assertEqual(mh.member_status(self.admin, "p", "m1")["state"], "up")

        held = mh.Session(self.port)  # round robin, one worker: m1 first
        self.addCleanup(held.close)
        self.assertEqual(held.member, "m1")

        r = mh.post(self.admin, drain, token=TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(r.json(), {"pool": "p", "member": "m1", "state": "draining", "weight": 1})
        names = [mh.ask(self.port)[0] for _ in range(10)]
        self.assertEqual(names, ["m2"] * 10)
        held.echo(b"the drained member's session goes on\n")
        m1 = mh.member_status(self.admin, "p", "m1")
        self.assertEqual((m1["state"], m1["active"]), ("draining", 1))
        self.assertEqual(mh.scrape(self.admin).value("ringlb_member_draining", pool="p", member="m1"), 1)
        page = mh.get(self.admin, "/")  # the status page, without a browser
        self.assertEqual(page.status, 200)
        self.assertTrue(page.headers["content-type"].startswith("text/html"), page)
        text = page.body.decode()
        self.assertIn('<meta http-equiv="refresh"', text)
        self.assertIn('<tr data-member="m1" data-state="draining">', text)
        self.assertIn('<tr data-member="m2" data-state="up">', text)

        r = mh.post(self.admin, "/pools/p/members/m1/undrain", token=TOKEN)
        self.assertEqual(r.json(), {"pool": "p", "member": "m1", "state": "up", "weight": 1})
        names = collections.Counter(mh.ask(self.port)[0] for _ in range(10))
        self.assertEqual(names, {"m1": 5, "m2": 5})

        # Weight 3 for m1: three of every four new connections go to it.
        r = mh.post(self.admin, "/pools/p/members/m1/weight", "3\n", token=TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"pool": "p", "member": "m1", "state": "up", "weight": 3})
        names = [mh.ask(self.port)[0] for _ in range(40)]
        self.assertEqual(collections.Counter(names), {"m1": 30, "m2": 10})
        for i in range(0, 40, 4):
            self.assertEqual(collections.Counter(names[i:i + 4]), {"m1": 3, "m2": 1}, names)
        self.assertEqual(mh.member_status(self.admin, "p", "m1")["weight"], 3)
        self.assertEqual(mh.scrape(self.admin).value("ringlb_member_weight", pool="p", member="m1"), 3)

        held.echo()
        client = held.client
        held.close()
        e = lb.entry_for(client)
        self.assertEqual((e["member"], e["end"]), ("m1", "client_closed"), e)
        self.assertBackendsClean(self.m1, self.m2)

    # ----------------------------------------------------------------------
    def test_bad_requests(self):
        self.start(token=TOKEN)
        failures, done = [], []
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    done.append(mh.ask(self.port)[0])
                except (OSError, AssertionError) as e:
                    failures.append(repr(e))

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        self.addCleanup(t.join, harness.WAIT)
        self.addCleanup(stop.set)

        def head(*lines):
            return ("\r\n".join(lines) + "\r\n\r\n").encode()

        weight = "/pools/p/members/m1/weight"
        auth = f"Authorization: Bearer {TOKEN}"
        big = "X-Big: " + "a" * (10 * 1024)
        corpus = [
            # (what, bytes, expected status or None for "closed without an answer", allow)
            ("garbage", b"\x00\xff\xfe garbage \x01\r\n\r\n", 400, None),
            ("no method", b"/metrics HTTP/1.1\r\n\r\n", 400, None),
            ("relative target", head("GET metrics HTTP/1.1"), 400, None),
            ("HTTP/2.0", head("GET /metrics HTTP/2.0"), 400, None),
            ("HTTP/1.1 with more", head("GET /metrics HTTP/1.1 x"), 400, None),
            ("header without colon", head("GET /metrics HTTP/1.1", "Host x"), 400, None),
            ("transfer-encoding", head("POST /reload HTTP/1.1", "Transfer-Encoding: chunked"), 400, None),
            ("bad content-length", head("POST /reload HTTP/1.1", "Content-Length: 12x"), 400, None),
            ("10 KiB header", head("GET /metrics HTTP/1.1", big), 413, None),
            ("10 KiB head, unfinished", ("GET /metrics HTTP/1.1\r\n" + big).encode(), 413, None),
            ("Content-Length 100000", head(f"POST {weight} HTTP/1.1", auth, "Content-Length: 100000"), 413, None),
            ("DELETE /metrics", head("DELETE /metrics HTTP/1.1"), 405, "GET, HEAD"),
            ("POST /status", head("POST /status HTTP/1.1", "Content-Length: 0"), 405, "GET, HEAD"),
            ("GET drain", head("GET /pools/p/members/m1/drain HTTP/1.1"), 405, "POST"),
            ("unknown path", head("GET /nope HTTP/1.1"), 404, None),
            ("unknown pool", head("POST /pools/nope/members/m1/drain HTTP/1.1", auth), 404, None),
            ("unknown member", head("POST /pools/p/members/nope/drain HTTP/1.1", auth), 404, None),
            ("unknown action", head("POST /pools/p/members/m1/explode HTTP/1.1", auth), 404, None),
            ("no member part", head("POST /pools/p HTTP/1.1", auth), 404, None),
        ]
        for body in ("0", "257", "abc", "", "-1", "3.5", "1 2", "99999999999999999999"):
            corpus.append((f"weight {body!r}", head(f"POST {weight} HTTP/1.1", auth,
                                                    f"Content-Length: {len(body)}") + body.encode(), 400, None))
        for what, data, expected, allow in corpus:
            with self.subTest(what):
                raw, reset = mh.raw_exchange(self.admin, data)
                self.assertTrue(raw, f"{what}: no answer (reset={reset})")
                r = mh.parse_response(raw)
                self.assertEqual(r.status, expected, f"{what}: {r}")
                self.assertEqual(r.headers.get("connection"), "close")
                if allow:
                    self.assertEqual(r.headers.get("allow"), allow, f"{what}: {r}")

        # Truncated requests: the client gives up half way; ringlb closes
        # without an answer.
        for what, data in (("head without CRLFCRLF", b"GET /metrics HTTP/1.1\r\nHost: x"),
                           ("partial request line", b"GE"),
                           ("body shorter than Content-Length",
                            head(f"POST {weight} HTTP/1.1", auth, "Content-Length: 2") + b"3")):
            with self.subTest(what):
                raw, _ = mh.raw_exchange(self.admin, data, shut_write=True)
                self.assertEqual(raw, b"", f"{what}: answered {raw[:200]!r}")

        # Nothing changed, the endpoint still serves, traffic kept flowing.
        for x in mh.status_json(self.admin)["pools"][0]["members"]:
            self.assertEqual((x["state"], x["weight"]), ("up", 1), x)
        mh.scrape(self.admin)
        harness.wait_until(lambda: len(done) >= 20, what="traffic during the bad requests")
        stop.set()
        t.join(harness.WAIT)
        self.assertEqual(failures, [], "connections through the listener failed meanwhile")
        self.assertEqual(set(done), {"m1", "m2"})

    # ----------------------------------------------------------------------
    @unittest.skipUnless(shutil.which("chromium"), "chromium is not installed")
    def test_status_page_in_chromium(self):
        self.start(health=FAST_TCP_HEALTH, extra_members=[member("gone", harness.dead_address())])
        harness.wait_until(lambda: mh.member_status(self.admin, "p", "gone")["state"] == "down",
                           what="the dead member to be marked down")
        self.assertEqual(mh.post(self.admin, "/pools/p/members/m2/drain").status, 200)
        expected = {"m1": "up", "m2": "draining", "gone": "down"}
        self.assertEqual({x["name"]: x["state"] for x in mh.status_json(self.admin)["pools"][0]["members"]},
                         expected)

        profile = tempfile.mkdtemp(prefix="ringlb-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        env = dict(os.environ, HOME=profile)
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--dump-dom", f"http://127.0.0.1:{self.admin}/"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60 * harness.SCALE)
        except subprocess.TimeoutExpired:
            self.fail("chromium did not finish loading the status page in time")
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        page = StatusPage()
        page.feed(done.stdout)
        self.assertEqual(page.title.strip(), "ringlb status", done.stdout[:500])
        self.assertEqual({name: row["state"] for name, row in page.rows.items()}, expected, done.stdout)
        for name, state in expected.items():
            row = page.rows[name]
            # The state badge shows the state in words, styled by a class of
            # the same name; the row names the member and its address.
            self.assertEqual(row["badges"], [(state, state)], row)
            self.assertEqual(row["cells"][0].split()[0], name, row)
        addresses = {x["name"]: x["address"] for x in mh.status_json(self.admin)["pools"][0]["members"]}
        for name, address in addresses.items():
            self.assertEqual(page.rows[name]["cells"][1], address)


class StatusPage(html.parser.HTMLParser):
    """Collects <title> and every <tr data-member> row: its data-state, the
    text of each cell and the (class, text) of each state badge."""

    def __init__(self):
        super().__init__()
        self.title = ""
        self.rows = {}
        self._in_title = False
        self._in_svg = False
        self._row = None
        self._cell = None
        self._badge = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self._in_svg = True  # a chart's <title> is not the page's
        elif tag == "title" and not self._in_svg:
            self._in_title = True
        elif tag == "tr" and "data-member" in a:
            self._row = {"state": a.get("data-state"), "cells": [], "badges": []}
            self.rows[a["data-member"]] = self._row
        elif tag == "td" and self._row is not None:
            self._cell = ""
        elif tag == "span" and self._row is not None and "state" in (a.get("class") or "").split():
            classes = [c for c in a["class"].split() if c != "state"]
            self._badge = [" ".join(classes), ""]

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_svg = False
        elif tag == "title":
            self._in_title = False
        elif tag == "tr":
            self._row = None
        elif tag == "td" and self._cell is not None:
            self._row["cells"].append(self._cell.strip())
            self._cell = None
        elif tag == "span" and self._badge is not None:
            self._row["badges"].append(tuple(self._badge))
            self._badge = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell += data
        if self._badge is not None:
            self._badge[1] += data

if __name__ == "__main__":
    harness.main()
