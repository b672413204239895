"""`ringlb ctl` against a running ringlb: the admin address and token come
from the config file; status (text and --json) matches /status; drain,
undrain and weight change it and say so; a wrong token, a refused reload,
no admin endpoint and an endpoint that is down each give their exit
status and reason."""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import RINGLB, WAIT, member  # noqa: E402

TOKEN = "ctl-test-token-1"
SAMPLED = ("rates", "state_since", "state_seconds", "last_probe_ms")  # move as time passes


def without_sampled(pools):
    for p in pools:
        for m in p["members"]:
            for key in SAMPLED:
                m.pop(key, None)
    return pools
FAST_TCP_HEALTH = {"kind": "tcp", "interval": "100ms", "timeout": "500ms", "rise": 1, "fall": 1}


class CtlTest(harness.RinglbTest):

    def config_text(self, token_file="admin.token", admin_port=None, extra_member=True):
        members = [member("m1", self.m1.address), member("m2", self.m2.address)]
        if extra_member:
            members.append(member("dns.example/10.0.0.1:80", harness.dead_address()))
        pools = {"p": {"balance": "round_robin", "members": members, "health": FAST_TCP_HEALTH}}
        admin = {"listen": f"127.0.0.1:{admin_port or self.admin}", "reload_min_interval": "1ms"}
        if token_file:
            admin["token_file"] = token_file
        return mh.build_config([("front", self.port, "p", None)], pools, admin=admin)

    def write_token(self, token, name="admin.token"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)

    def start(self):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.m2 = self.backend(mh.session_handler, name="m2")
        self.port, self.admin = harness.free_port(), harness.free_port()
        self.write_token(TOKEN)
        self.lb = self.start_ringlb(self.config_text())
        self.config = self.lb.config_path
        # Probes have run: m1 and m2 up, the dead address down.
        harness.wait_until(lambda: self.states() == {"m1": "up", "m2": "up", "dns.example/10.0.0.1:80": "down"},
                           what="health checks settled")

    def states(self):
        return {m["name"]: m["state"] for m in mh.status_json(self.admin)["pools"][0]["members"]}

    def settings(self):
        """What an admin call could change: each member's state and weight."""
        return {m["name"]: (m["state"], m["weight"]) for m in mh.status_json(self.admin)["pools"][0]["members"]}

    def ctl(self, *args, config=None):
        return subprocess.run([RINGLB, "ctl", "-c", config or self.config, *args], capture_output=True,
                              text=True, timeout=3 * WAIT)

    def reload(self, config=None):
        """ctl reload, again while reload_min_interval (1ms) says 429."""
        result = None
        def answered():
            nonlocal result
            result = self.ctl("reload", config=config)
            return "429" not in result.stderr
        harness.wait_until(answered, what="a reload not refused for its rate")
        return result

    def assertCtl(self, result, code):
        self.assertEqual(result.returncode, code, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")

    # ----------------------------------------------------------------------

    def test_status_shows_every_member_in_its_state(self):
        self.start()
        self.assertCtl(self.ctl("drain", "p", "m2"), 0)
        result = self.ctl("status")
        self.assertCtl(result, 0)
        expected = self.states()
        self.assertEqual(expected["m2"], "draining")
        lines = result.stdout.splitlines()
        self.assertTrue(lines[0].split()[:3] == ["LISTENER", "BIND", "POOL"], result.stdout)
        self.assertTrue(any(line.split()[:3] == ["front", f"127.0.0.1:{self.port}", "p"] for line in lines),
                        result.stdout)
        for name, state in expected.items():
            rows = [line.split() for line in lines if line.split()[:1] == [name]]
            self.assertEqual(len(rows), 1, f"{name} in:\n{result.stdout}")
            self.assertEqual(rows[0][2], state, f"{name} in:\n{result.stdout}")
        self.assertIn("failed: ", result.stdout)  # the dead member's last probe, with its reason

    def test_status_shows_rates_and_time_in_state(self):
        """After traffic, the member's row has its sampled rates and how long
        it has been up (samples come every 2 s: a generous deadline)."""
        self.start()
        session = mh.Session(self.port)
        self.addCleanup(session.close)
        block = os.urandom(256 * 1024)
        def rates_shown():
            session.echo(block)
            result = self.ctl("status")
            self.assertCtl(result, 0)
            row = next(line.split() for line in result.stdout.splitlines() if line.split()[:1] == [session.member])
            # MEMBER ADDRESS STATE FOR WEIGHT ACTIVE CONNECTIONS NEW/S IN(2) OUT(2) LAST PROBE...
            ok = row[3] != "-" and row[5] == "1" and row[8] != "-" and row[9].endswith("B/s") and \
                row[8] != "0" and row[11].endswith("B/s") and row[12].startswith("passed")
            return row if ok else None
        row = harness.wait_until(rates_shown, timeout=60 * harness.SCALE, what="rates in ctl status")
        self.assertRegex(row[3], r"^\d+(s|m\d\ds)$", row)

    def test_events(self):
        self.start()
        self.assertCtl(self.ctl("drain", "p", "m1"), 0)
        result = self.ctl("events")
        self.assertCtl(result, 0)
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split()[:3], ["ID", "TIME", "KIND"], result.stdout)
        drains = [line for line in lines if "p/m1" in line and "admin" in line.split()]
        self.assertEqual(len(drains), 1, result.stdout)
        self.assertTrue(any("health" in line.split() and "dns.example/10.0.0.1:80" in line for line in lines),
                        result.stdout)
        result = self.ctl("--json", "events")
        self.assertCtl(result, 0)
        answer = json.loads(result.stdout)
        last = answer["last_id"]
        self.assertEqual(answer["events"][-1]["member"], "m1")
        self.assertEqual(answer["events"][-1]["kind"], "admin")
        # Only what came after --since.
        self.assertCtl(self.ctl("undrain", "p", "m1"), 0)
        result = self.ctl("--json", "events", "--since", str(last))
        self.assertCtl(result, 0)
        newer = json.loads(result.stdout)["events"]
        self.assertEqual([(e["kind"], e["member"]) for e in newer], [("admin", "m1")], newer)
        result = self.ctl("events", "--since", str(last + 1))
        self.assertCtl(result, 0)
        self.assertEqual(len(result.stdout.splitlines()), 1, result.stdout)  # the header alone

    def test_status_lists_discovery_and_certificates(self):
        """A pool fed by DNS that never answers (no members yet) and a TLS
        listener: their tables in the text status."""
        import test_discover_empty
        import test_tls
        pki = test_tls.Pki(self.tmp.name, "ctl")
        cert, key = pki.issue("ctl.test", ["ctl.test"])
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.port, self.admin = harness.free_port(), harness.free_port()
        dns = test_discover_empty.silent_dns_server(self)
        pools = {"p": {"members": [member("m1", self.m1.address)]}, "d": {"members": []}}
        text = mh.build_config([("front", self.port, "p", None), ("dfront", harness.free_port(), "d", None)],
                               pools, admin={"listen": f"127.0.0.1:{self.admin}"})
        text += (f'\n[listener.tls]\ncertificates = [{{ cert = "{cert}", key = "{key}" }}]\n'
                 f'\n[global.dns]\nservers = ["127.0.0.1:{dns}"]\ntimeout = "300ms"\nattempts = 1\n'
                 '\n[[pool.d.discover]]\nname = "api.ctl-test.invalid"\nport = 9\ninterval = "1s"\n')
        self.lb = self.start_ringlb(text, wait_ready=False)
        self.config = self.lb.config_path
        harness.wait_until(lambda: self.ctl("status").returncode == 0, timeout=60 * harness.SCALE,
                           what="the admin endpoint")
        out = self.ctl("status").stdout
        self.assertIn("\npool d (round_robin, no health checks)\nno members\n", out)
        discovery = [line.split() for line in out.splitlines() if line.startswith("api.ctl-test.invalid")]
        self.assertEqual(len(discovery), 1, out)
        self.assertEqual(discovery[0][1:3], ["d", "A"], out)
        certificates = [line.split() for line in out.splitlines() if line.startswith(cert)]
        self.assertEqual(len(certificates), 1, out)
        self.assertEqual(certificates[0][1:4], ["listener", "dfront", "ctl.test"], out)
        self.assertRegex(certificates[0][5], r"^\d+d\d\dh$", out)  # issued for 2 days

    def test_json_status_is_the_servers(self):
        self.start()
        def same():
            result = self.ctl("--json", "status")
            self.assertCtl(result, 0)
            return without_sampled(json.loads(result.stdout)["pools"]) == \
                without_sampled(mh.status_json(self.admin)["pools"])
        harness.wait_until(same, what="ctl --json status equal to /status")

    def test_drain_undrain_weight(self):
        self.start()
        result = self.ctl("drain", "p", "m1")
        self.assertCtl(result, 0)
        self.assertEqual(result.stdout, "pool p member m1: draining (weight 1)\n")
        self.assertEqual(self.states()["m1"], "draining")
        result = self.ctl("undrain", "p", "m1")
        self.assertCtl(result, 0)
        self.assertEqual(result.stdout, "pool p member m1: up (weight 1)\n")
        self.assertEqual(self.states()["m1"], "up")
        result = self.ctl("weight", "p", "m2", "7")
        self.assertCtl(result, 0)
        self.assertEqual(result.stdout, "pool p member m2: up (weight 7)\n")
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["weight"], 7)
        # A name with '/' and ':' reaches the server whole.
        result = self.ctl("drain", "p", "dns.example/10.0.0.1:80")
        self.assertCtl(result, 0)
        self.assertEqual(result.stdout, "pool p member dns.example/10.0.0.1:80: draining (weight 1)\n")
        result = self.ctl("--json", "undrain", "p", "dns.example/10.0.0.1:80")
        self.assertCtl(result, 0)
        self.assertEqual(json.loads(result.stdout)["state"], "down")
        # The server's refusals, with its reason.
        result = self.ctl("weight", "p", "m2", "0")
        self.assertCtl(result, 1)
        self.assertEqual(result.stderr,
                         "ringlb ctl: 400 Bad Request: the body must be an integer weight from 1 to 256\n")
        result = self.ctl("drain", "p", "nobody")
        self.assertCtl(result, 1)
        self.assertEqual(result.stderr, "ringlb ctl: 404 Not Found: no member \"nobody\" in pool \"p\"\n")
        self.assertEqual(mh.member_status(self.admin, "p", "m2")["weight"], 7)

    def test_another_token_is_refused_and_changes_nothing(self):
        self.start()
        self.write_token("not-the-token", "other.token")
        other = self.write_config(self.config_text(token_file="other.token"), "other.toml")
        before = self.settings()
        for args in (("drain", "p", "m1"), ("weight", "p", "m1", "9"), ("reload",)):
            result = self.ctl(*args, config=other)
            self.assertCtl(result, 1)
            self.assertEqual(result.stderr, "ringlb ctl: 401 Unauthorized: a valid 'Authorization: Bearer TOKEN' "
                                            "header is required\n")
            self.assertEqual(result.stdout, "")
        self.assertEqual(self.settings(), before)
        self.assertEqual(self.lb.stderr_text().count("reloaded"), 0)

    def test_reload(self):
        self.start()
        result = self.reload()
        self.assertCtl(result, 0)
        self.assertEqual(result.stdout, "reloaded\n")
        # The running config broken: the server refuses, with file:line:col.
        # ctl finds the endpoint through a copy of the good config.
        good = self.write_config(self.config_text(), "good.toml")
        with open(self.config, "a") as f:
            f.write("\n[pool.p.health]\nrise = 0\n")
        result = self.reload(config=good)
        self.assertCtl(result, 1)
        self.assertTrue(result.stderr.startswith("ringlb ctl: 400 Bad Request: reload refused; the running config "
                                                 "stays:\n"), result.stderr)
        self.assertRegex(result.stderr, re.escape(self.config) + r":\d+:\d+: ")
        # ctl with the broken file itself: its own errors, exit 2.
        result = self.ctl("reload")
        self.assertCtl(result, 2)
        self.assertRegex(result.stderr, "^" + re.escape(self.config) + r":\d+:\d+: ")
        self.assertEqual(self.states()["m1"], "up")

    def test_no_admin_endpoint(self):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.port = harness.free_port()
        text = mh.build_config([("front", self.port, "p", None)],
                               {"p": {"members": [member("m1", self.m1.address)]}})
        result = self.ctl("status", config=self.write_config(text))
        self.assertCtl(result, 2)
        self.assertIn("has no admin endpoint ([admin] listen)", result.stderr)

    def test_endpoint_down(self):
        self.m1 = self.backend(mh.session_handler, name="m1")
        self.m2 = self.backend(mh.session_handler, name="m2")
        self.port, self.admin = harness.free_port(), harness.free_port()
        self.write_token(TOKEN)
        result = self.ctl("status", config=self.write_config(self.config_text()))
        self.assertCtl(result, 3)
        self.assertEqual(result.stderr, f"ringlb ctl: cannot connect to 127.0.0.1:{self.admin}: Connection refused\n")

    def test_usage_and_config_errors(self):
        for args in ((), ("frobnicate",), ("drain", "p"), ("events", "--since", "x")):
            result = subprocess.run([RINGLB, "ctl", *args], capture_output=True, text=True, timeout=WAIT)
            self.assertCtl(result, 2)
            self.assertIn("usage: ringlb ctl", result.stderr)
        for args in (("--help",), ("-c", "x.toml", "status", "-h")):
            result = subprocess.run([RINGLB, "ctl", *args], capture_output=True, text=True, timeout=WAIT)
            self.assertCtl(result, 0)
            self.assertIn("usage: ringlb ctl", result.stdout)
        path = self.write_config("[admin]\nlisten = 12\n")
        result = self.ctl("status", config=path)
        self.assertCtl(result, 2)
        self.assertRegex(result.stderr, "^" + re.escape(path) + r":2:10: ")
        result = self.ctl("status", config=os.path.join(self.tmp.name, "missing.toml"))
        self.assertCtl(result, 2)
        self.assertIn("missing.toml", result.stderr)


if __name__ == "__main__":
    harness.main()
