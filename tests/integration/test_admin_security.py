"""The admin endpoint's defences (issue 11, item 7): token_file, a token
required off loopback, require_token_for_reads, Origin and Host refusals
(CSRF, DNS rebinding), the reload rate limit, slots that slow clients from
one source cannot all hold (and, from many, are evicted for a newcomer), and percent-decoded member names."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import member  # noqa: E402

TOKEN = "file-token-1"


def run(*args):
    return subprocess.run([harness.RINGLB, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=harness.WAIT)


def position(text, needle):
    at = text.index(needle)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def half_open(port, source, data=b"GET /metrics HTTP/1.1\r\nHost: x"):
    """A connection from `source` that sends part of a request head and
    then nothing (a slow client holding a slot)."""
    s = mh.connect_from(port, source)
    s.sendall(data)
    return s


def refused(metrics, reason):
    return metrics.value("ringlb_admin_refused_total", reason=reason)


class AdminSecurityTest(harness.RinglbTest):

    def start(self, admin_extra=None, members=None):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.port, self.admin = harness.free_port(), harness.free_port()
        admin = {"listen": f"127.0.0.1:{self.admin}"}
        admin.update(admin_extra or {})
        pool = {"members": members or [member("m1", self.m1.address)]}
        self.config_text = mh.build_config([("front", self.port, "p", None)], {"p": pool}, admin=admin)
        self.lb = self.start_ringlb(self.config_text)
        self.config_path = os.path.join(self.tmp.name, "ringlb.toml")
        return self.lb

    def write_token(self, text, mode=0o600, name="admin.token"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    # ----------------------------------------------------------------------
    def test_token_file_read_at_start_and_reload(self):
        self.write_token(TOKEN + "\n")
        lb = self.start({"token_file": "admin.token"})  # relative to the config file
        drain = "/pools/p/members/m1/drain"
        self.assertEqual(mh.post(self.admin, drain).status, 401)
        self.assertEqual(mh.post(self.admin, drain, token=TOKEN + "x").status, 401)
        self.assertEqual(mh.post(self.admin, drain, token=TOKEN).status, 200)
        self.assertEqual(mh.log_lines(lb, "readable by every user"), [])
        # A new token in the file takes effect at the reload; the old one stops working.
        self.write_token("file-token-2")
        r = mh.post(self.admin, "/reload", token=TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(mh.post(self.admin, drain, token=TOKEN).status, 401)
        self.assertEqual(mh.post(self.admin, drain, token="file-token-2").status, 200)
        # An empty token file fails the reload (naming the file); the running token stays.
        self.write_token("\n")
        lb.signal(__import__("signal").SIGHUP)
        line = mh.wait_log(lb, "is empty")
        self.assertIn("admin.token", line)
        self.assertIn("empty", line)
        self.assertEqual(mh.post(self.admin, drain, token="file-token-2").status, 200)

    def test_token_file_errors_and_warning(self):
        admin = harness.free_port()
        base = mh.build_config([("front", harness.free_port(), "p", None)],
                               {"p": {"members": [member("m1", "127.0.0.1:9")]}},
                               admin={"listen": f"127.0.0.1:{admin}", "token_file": "admin.token"})
        path = self.write_config(base, "c.toml")
        line, col = position(base, '"admin.token"')
        # Missing, empty: an error at token_file naming the file.
        for content in (None, "", "\n"):
            with self.subTest(content=content):
                token_path = os.path.join(self.tmp.name, "admin.token")
                if os.path.exists(token_path):
                    os.unlink(token_path)
                if content is not None:
                    self.write_token(content)
                r = run("--check", path)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"{path}:{line}:{col}: ", r.stderr)
                self.assertIn("admin.token", r.stderr)
        # World-readable: a warning, like a TLS key's.
        self.write_token(TOKEN, mode=0o644)
        r = run("--check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(path)}:{line}:{col}: warning: .*admin.token.*readable by every user")
        # token and token_file together.
        both = base.replace('token_file = "admin.token"', 'token_file = "admin.token"\ntoken = "x"')
        path = self.write_config(both, "both.toml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(path)}:{line}:{col}: .*token_file.* and .*token.* exclusive")

    def test_listen_off_loopback_needs_a_token(self):
        def config(listen, **extra):
            return mh.build_config([("front", harness.free_port(), "p", None)],
                                   {"p": {"members": [member("m1", "127.0.0.1:9")]}},
                                   admin={"listen": listen, **extra})
        port = harness.free_port()
        for listen in (f"0.0.0.0:{port}", f"[::]:{port}", f"10.1.2.3:{port}"):
            with self.subTest(listen=listen):
                text = config(listen)
                path = self.write_config(text, "open.toml")
                line, col = position(text, f'"{listen}"')
                r = run("--check", path)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertRegex(r.stderr, rf"{re.escape(path)}:{line}:{col}: .*loopback.*token")
                r = run("--check", self.write_config(config(listen, token=""), "empty.toml"))
                self.assertEqual(r.returncode, 1, r.stderr)
                r = run("--check", self.write_config(config(listen, token="t"), "ok.toml"))
                self.assertEqual(r.returncode, 0, r.stderr)
        for listen in (f"127.0.0.1:{port}", f"127.9.9.9:{port}", f"[::1]:{port}"):
            with self.subTest(listen=listen):
                r = run("--check", self.write_config(config(listen), "lo.toml"))
                self.assertEqual(r.returncode, 0, r.stderr)
        text = config(f"127.0.0.1:{port}", require_token_for_reads=True)
        path = self.write_config(text, "reads.toml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("require_token_for_reads", r.stderr)

    def test_require_token_for_reads(self):
        self.start({"token": TOKEN, "require_token_for_reads": True})
        for path in ("/", "/status", "/metrics"):
            with self.subTest(path=path):
                r = mh.get(self.admin, path)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
                r = mh.request(self.admin, "GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
                self.assertEqual(r.status, 200, r)

    def test_origin_and_host_refused(self):
        self.start({"token": TOKEN})
        auth = {"Authorization": f"Bearer {TOKEN}"}
        drain = "/pools/p/members/m1/drain"
        # What scrapers and tools send passes.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=harness.WAIT) as r:
            self.assertEqual(r.status, 200)
        for host in (f"127.0.0.1:{self.admin}", f"localhost:{self.admin}", "localhost", "LOCALHOST"):
            raw, _ = mh.raw_exchange(self.admin, f"GET /status HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            self.assertEqual(mh.parse_response(raw).status, 200, host)
        # A page on another site that posts here (CSRF), or a name that
        # rebinds to 127.0.0.1: refused, with the reason, even with the token.
        # Another port, scheme or name of this host is another origin too.
        cases = [("Origin", {"Origin": "http://evil.example"}, "GET", "/metrics"),
                 ("Origin null", {"Origin": "null", **auth}, "POST", drain),
                 ("Origin of another port", {"Origin": f"http://127.0.0.1:{self.admin + 1}", **auth}, "POST", drain),
                 ("Origin https", {"Origin": f"https://127.0.0.1:{self.admin}", **auth}, "POST", drain),
                 ("Origin of another name", {"Origin": f"http://localhost:{self.admin}", **auth}, "POST", drain)]
        for what, headers, method, path in cases:
            with self.subTest(what):
                r = mh.request(self.admin, method, path, headers=headers)
                self.assertEqual(r.status, 403, r)
                self.assertIn(b"Origin", r.body)
        for host in (f"evil.example:{self.admin}", "evil.example", f"127.0.0.1:{self.admin + 1}",
                     f"127.0.0.2:{self.admin}", f"localhost.evil.example:{self.admin}"):
            with self.subTest(host=host):
                data = f"POST {drain} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n" \
                       "Content-Length: 0\r\n\r\n"
                r = mh.parse_response(mh.raw_exchange(self.admin, data.encode())[0])
                self.assertEqual(r.status, 403, r)
                self.assertIn(b"Host", r.body)
        # The same origin as a rebinding name: the Host check still refuses it.
        host = f"evil.example:{self.admin}"
        data = f"POST {drain} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n" \
               f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
        r = mh.parse_response(mh.raw_exchange(self.admin, data.encode())[0])
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"Host", r.body)
        self.assertEqual(mh.member_status(self.admin, "p", "m1")["state"], "up")

    def test_same_origin_requests_pass(self):
        """The status page's own fetch: Origin http:// + the Host it was
        loaded from (a Host that passes). It still needs the token."""
        self.start({"token": TOKEN})
        drain = "/pools/p/members/m1/drain"
        for host in (f"127.0.0.1:{self.admin}", f"localhost:{self.admin}"):
            with self.subTest(host=host):
                head = f"POST {drain} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
                r = mh.parse_response(mh.raw_exchange(self.admin, f"{head}Content-Length: 0\r\n\r\n".encode())[0])
                self.assertEqual(r.status, 401, r)
                self.assertEqual(mh.member_status(self.admin, "p", "m1")["state"], "up")
                data = f"{head}Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
                r = mh.parse_response(mh.raw_exchange(self.admin, data.encode())[0])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(mh.member_status(self.admin, "p", "m1")["state"], "draining")
                self.assertEqual(mh.post(self.admin, "/pools/p/members/m1/undrain", token=TOKEN).status, 200)

    def test_reload_rate_limited(self):
        lb = self.start({"token": TOKEN, "reload_min_interval": "1h"})
        self.assertEqual(mh.post(self.admin, "/reload", token=TOKEN).status, 200)
        r = mh.post(self.admin, "/reload", token=TOKEN)
        self.assertEqual(r.status, 429, r)
        retry = int(r.headers["retry-after"])
        self.assertTrue(3500 <= retry <= 3600, retry)
        mh.wait_log(lb, "admin: reload refused")
        self.assertEqual(len(mh.log_lines(lb, "reloaded ")), 1)
        # Without the token: 401 first, whatever the rate.
        self.assertEqual(mh.post(self.admin, "/reload").status, 401)

    def test_slow_clients_from_one_source_cannot_starve_scrapers(self):
        self.start()
        # One attacker (two addresses) opens far more half-sent requests than
        # the endpoint has slots, and keeps them open.
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for source in ("127.0.0.2", "127.0.0.3"):
            for _ in range(40):
                held.append(half_open(self.admin, source))
        # A scraper on 127.0.0.1 gets its answer at once.
        start = time.monotonic()
        with mh.connect_from(self.admin, "127.0.0.1", timeout=harness.WAIT) as s:
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{self.admin}\r\n\r\n".encode())
            raw, _ = harness.recv_all(s)
        elapsed = time.monotonic() - start
        self.assertTrue(raw, "the scrape was closed without an answer")
        r = mh.parse_response(raw)
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, 1.5 * harness.SCALE, "the scrape waited for a slot")
        # Past each source's share the attacker was refused at once, counted and logged.
        mh.wait_log(self.lb, "admin: refused")
        m = mh.parse_metrics(r.body.decode())
        self.assertGreaterEqual(refused(m, "source_share"), 2 * (40 - 8))
        # The slots it holds are freed by the head deadline, before the request deadline.
        for s in held:
            harness.wait_closed_by_peer(s)
        m = mh.scrape(self.admin)
        self.assertEqual(m.value("ringlb_admin_dropped_total", reason="head_timeout"), 2 * 8)
        self.assertEqual(m.value("ringlb_admin_dropped_total", reason="deadline"), 0)

    def test_many_sources_filling_every_slot_cannot_starve_scrapers(self):
        lb = self.start()
        # The oldest connection, of the source that will hold the most slots,
        # has sent its whole head (its body is still to come): it is being
        # answered, and is never evicted. The scrape after it is a barrier:
        # its head is read only after this one's.
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        answered = half_open(self.admin, "127.0.0.2",
                             f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{self.admin}\r\n"
                             "Content-Length: 4\r\n\r\n".encode())
        held.append(answered)
        mh.scrape(self.admin)
        # Twelve attacker addresses, each within its share (6 or 7 of 8),
        # hold more half-sent requests than the endpoint has slots.
        sources = [f"127.0.0.{i}" for i in range(2, 14)]
        for _ in range(6):
            for source in sources:
                held.append(half_open(self.admin, source))
        self.assertGreater(len(held), 64)
        # A scraper on 127.0.0.1 takes the slot of one of them at once,
        # without waiting for a head deadline to free one.
        start = time.monotonic()
        with mh.connect_from(self.admin, "127.0.0.1", timeout=harness.WAIT) as s:
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{self.admin}\r\n\r\n".encode())
            raw, _ = harness.recv_all(s)
        elapsed = time.monotonic() - start
        self.assertTrue(raw, "the scrape was closed without an answer")
        r = mh.parse_response(raw)
        self.assertEqual(r.status, 200, r)
        self.assertLess(elapsed, 1.5 * harness.SCALE, "the scrape waited for a slot")
        m = mh.parse_metrics(r.body.decode())
        self.assertGreater(m.value("ringlb_admin_dropped_total", reason="evicted"), 0)
        line = mh.wait_log(lb, "evicted to make room")
        self.assertRegex(line, r"admin: closed the connection from 127\.0\.0\.(\d+):\d+: evicted")
        # The connection being answered kept its slot and gets its answer.
        answered.sendall(b"body")
        r = mh.parse_response(harness.recv_all(answered)[0])
        self.assertEqual(r.status, 200, r)

    def test_percent_encoded_member_names(self):
        odd = 'm 1"q/x%'
        self.start({"token": TOKEN}, members=[member(odd, "127.0.0.1:9")])
        r = mh.post(self.admin, "/pools/p/members/m%201%22q%2Fx%25/drain", token=TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["member"], odd)
        self.assertEqual(mh.member_status(self.admin, "p", odd)["state"], "draining")
        for bad in ("m%2", "m%zz1", "m%", "%G0"):
            with self.subTest(path=bad):
                r = mh.post(self.admin, f"/pools/p/members/{bad}/drain", token=TOKEN)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(mh.post(self.admin, "/pools/p/members/m 1/drain", token=TOKEN).status, 400)


if __name__ == "__main__":
    harness.main()
