"""History and events: GET /events lists health transitions with the
probe's reason, admin drains with the client's address, reloads refused
and accepted; /status carries the sampled rates. Real ringlb, real
backends on loopback; samples come every 2 s, so waits are on conditions
with generous deadlines."""

import os
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import LOOPBACK, MiB, member  # noqa: E402
from test_tls_certificates import Pki, tls_config  # noqa: E402

TOKEN = "events-token"
HEALTH = {"kind": "tcp", "interval": "100ms", "timeout": "500ms", "rise": 1, "fall": 1}
SAMPLE_WAIT = 60 * harness.SCALE  # several 2 s samples, on a loaded machine


def authorized(port, path, method="GET", body=b""):
    return mh.request(port, method, path, body, {"Authorization": f"Bearer {TOKEN}"})


def events(port, query=""):
    r = authorized(port, "/events" + (f"?{query}" if query else ""))
    if r.status != 200:
        raise AssertionError(f"/events answered {r}")
    return r.json()


def status(port):
    r = authorized(port, "/status")
    if r.status != 200:
        raise AssertionError(f"/status answered {r}")
    return r.json()


def post_from(port, path, body=b""):
    """A POST with the token from a socket whose address we know: returns
    (Response, 'IP:PORT' the endpoint saw)."""
    with socket.create_connection((LOOPBACK, port), timeout=harness.WAIT) as s:
        client = "%s:%d" % s.getsockname()[:2]
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        raw, _ = harness.recv_all(s)
    return mh.parse_response(raw), client


class EventsTest(harness.RinglbTest):

    def config(self, members_extra="", bad=False):
        pool = {"balance": "round_robin", "health": HEALTH,
                "members": [member("m1", self.m1_address), member("m2", self.m2.address)]}
        text = mh.build_config([("front", self.port, "p", None)], {"p": pool},
                               admin={"listen": f"{LOOPBACK}:{self.admin}", "token": TOKEN,
                                      "require_token_for_reads": True})
        if bad:
            text += "\n[pool.p.nonsense]\n"
        return text + members_extra

    def find(self, port, what, **fields):
        """Waits for an event with these fields (message: a substring)."""
        def match():
            for e in events(port)["events"]:
                if all((v in e[k]) if k == "message" else e[k] == v for k, v in fields.items()):
                    return e
            return None
        try:
            return harness.wait_until(match, SAMPLE_WAIT, what)
        except AssertionError:
            raise AssertionError(f"no event {fields}; events: {events(port)}")

    # ----------------------------------------------------------------------
    def test_events_and_rates(self):
        m1_port = harness.free_port()
        self.m1_address = f"{LOOPBACK}:{m1_port}"
        m1 = harness.Backend(harness.echo_handler, name="m1", port=m1_port)
        self.addCleanup(m1.close)
        self.m2 = self.backend(harness.echo_handler, name="m2")
        self.port, self.admin = harness.free_port(), harness.free_port()
        lb = self.start_ringlb(self.config())

        # Reads need the token here, /events as /status.
        self.assertEqual(mh.get(self.admin, "/events").status, 401)
        start = self.find(self.admin, "the start event", kind="start")
        self.assertIn("1 listener, 1 pool", start["message"])
        self.assertIsNone(start["pool"])

        # m1 dies: the health event carries the probe's reason.
        m1.close()
        down = self.find(self.admin, "m1's down event", kind="health", pool="p", member="m1",
                         message="up -> down")
        self.assertIn("connect refused", down["message"])
        text = authorized(self.admin, "/events?format=text")
        self.assertEqual(text.headers["content-type"], "text/plain; charset=utf-8")
        self.assertIn(b"up -> down (", text.body)
        self.assertIn(b"connect refused", text.body)
        self.assertIn(b"p/m1", text.body)
        self.assertEqual(self.member_status("m1")["state"], "down")
        # The transition was noted when it happened: state_since is its time.
        harness.wait_until(lambda: self.member_status("m1")["state_since"] is not None, SAMPLE_WAIT,
                           "m1's state_since")
        self.assertEqual(self.member_status("m1")["state_since"], down["time"])
        self.assertGreaterEqual(self.member_status("m1")["state_seconds"], 0)

        # Back: the up event, newer than the down one.
        m1 = harness.Backend(harness.echo_handler, name="m1", port=m1_port)
        self.addCleanup(m1.close)
        up = self.find(self.admin, "m1's up event", kind="health", member="m1", message="down -> up")
        self.assertGreater(up["id"], down["id"])

        # since= gives only what came after.
        newer = events(self.admin, f"since={down['id']}")["events"]
        self.assertTrue(newer)
        self.assertTrue(all(e["id"] > down["id"] for e in newer), newer)
        self.assertIn(up["id"], [e["id"] for e in newer])
        self.assertEqual(events(self.admin, "since=1&limit=1")["events"][-1]["id"],
                         events(self.admin)["last_id"])
        self.assertEqual(authorized(self.admin, "/events?limit=0").status, 400)
        self.assertIn(b"limit must be", authorized(self.admin, "/events?limit=0").body)
        self.assertEqual(authorized(self.admin, "/events?since=x").status, 400)

        # A drain through the admin endpoint names the client.
        r, client = post_from(self.admin, "/pools/p/members/m2/drain")
        self.assertEqual(r.status, 200, r)
        drain = self.find(self.admin, "the drain event", kind="admin", member="m2", message="drain")
        self.assertEqual((drain["pool"], drain["who"]), ("p", client))
        harness.wait_until(lambda: self.member_status("m2")["state_since"] is not None, SAMPLE_WAIT,
                           "m2's draining state_since")
        self.assertEqual(self.member_status("m2")["state"], "draining")
        r, _ = post_from(self.admin, "/pools/p/members/m2/undrain")
        self.assertEqual(r.status, 200, r)

        # A refused reload (SIGHUP) says why; an accepted one (admin) says ok.
        with open(lb.config_path, "w") as f:
            f.write(self.config(bad=True))
        lb.signal(signal.SIGHUP)
        refused = self.find(self.admin, "the refused reload", kind="reload", message="refused")
        self.assertEqual(refused["who"], "SIGHUP")
        self.assertIn("ringlb.toml:", refused["message"])
        self.assertIn("nonsense", refused["message"])
        with open(lb.config_path, "w") as f:
            f.write(self.config())
        r, client = post_from(self.admin, "/reload")
        self.assertEqual(r.status, 200, r)
        ok = self.find(self.admin, "the accepted reload", kind="reload", message="ok")
        self.assertEqual(ok["who"], f"admin {client}")
        self.assertGreater(ok["id"], refused["id"])

        # Traffic: a few MiB each way, then the rates show it.
        total = 4 * MiB
        for _ in range(2):
            s = self.connect(self.port)
            stream = harness.Stream(total, seed=7, chunk=64 * 1024)
            received = 0
            for chunk in stream.chunks():
                s.sendall(chunk)
                received += len(harness.recv_exact(s, len(chunk)))
            s.close()
            self.assertEqual(received, total)

        def busy_listener():
            for listener in status(self.admin)["listeners"]:
                rates = listener["rates"]
                if rates["bytes_in_per_second"] and rates["bytes_in_per_second"] > 0:
                    return listener
            return None
        listener = harness.wait_until(busy_listener, SAMPLE_WAIT, "a listener sample with bytes in")
        rates = listener["rates"]
        # Both sessions' bytes, over at least one 2 s interval: at most all of them per second.
        self.assertLessEqual(rates["bytes_in_per_second"], 2 * total)
        self.assertLessEqual(rates["bytes_out_per_second"], 2 * total)
        self.assertEqual(rates["failures_per_second"], 0)

        now = status(self.admin)
        history = now["history"]
        self.assertEqual(history["interval_seconds"], 2)
        self.assertGreaterEqual(history["samples"], 2)
        self.assertEqual((history["series"], history["untracked"]), (3, 0))  # front, p/m1, p/m2
        for m in now["pools"][0]["members"]:
            self.assertIsNotNone(m["last_probe_ms"], m)
            self.assertGreaterEqual(m["last_probe_ms"], 0)
            self.assertEqual(set(m["rates"]), {"new_per_second", "bytes_in_per_second", "bytes_out_per_second",
                                               "failures_per_second"})

    def member_status(self, name):
        for m in status(self.admin)["pools"][0]["members"]:
            if m["name"] == name:
                return m
        raise AssertionError(f"no member {name} in /status")


class CertificateEventsTest(harness.RinglbTest):

    def test_certificates_loaded_at_start_and_by_a_reload(self):
        pki = Pki(self.tmp.name)
        cert, key = pki.leaf("edge", "edge.example.com", serial=0x1001)
        port, admin = harness.free_port(), harness.free_port()
        lb = self.start_ringlb(tls_config(port, admin, harness.dead_address(), cert, key))

        def certificate_events():
            r = mh.get(admin, "/events")
            self.assertEqual(r.status, 200, r)
            return [e for e in r.json()["events"] if e["kind"] == "certificate"]
        first = harness.wait_until(certificate_events, what="a certificate event")
        self.assertEqual(len(first), 1, first)
        message = first[0]["message"]
        for part in (f"listener edge: {cert} loaded at start", "serial 1001", "edge.example.com", "expires 20"):
            self.assertIn(part.lower(), message.lower())
        self.assertIsNone(first[0]["pool"])  # a listener's

        # A new certificate in the same file: the reload's event has its serial.
        pki.leaf("edge", "edge.example.com", serial=0x2002)
        lb.signal(signal.SIGHUP)
        events = harness.wait_until(lambda: len(certificate_events()) == 2 and certificate_events(),
                                    what="the reload's certificate event")
        self.assertIn("loaded by the reload", events[1]["message"])
        self.assertIn("serial 2002", events[1]["message"].lower())


if __name__ == "__main__":
    harness.main()
