"""`ringlb --check` and starting with a bad file: errors name file:line:col,
the exit code is 1, and nothing is bound."""

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GOOD = """\
[global]
workers = 1
access_log = "off"

[[listener]]
name = "web"
bind = "127.0.0.1:{port}"
pool = "web"

[pool.web]
balance = "round_robin"
retries = 1

[[pool.web.member]]
name = "web-1"
address = "127.0.0.1:{port1}"
weight = 2

[[pool.web.member]]
name = "web-2"
address = "127.0.0.1:{port2}"
"""


def run(*args, timeout=None):
    return subprocess.run([harness.RINGLB, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout or harness.WAIT)


def position(text, needle, occurrence=1):
    """(line, column), 1-based, of the occurrence-th needle in text."""
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, column


class ConfigErrorsTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.fields = {"port": self.port, "port1": harness.free_port(), "port2": harness.free_port()}

    def good(self):
        return GOOD.format(**self.fields)

    def errors(self, stderr, path):
        """(line, column, message) of each 'path:line:col: message' line."""
        found = []
        for line in stderr.splitlines():
            m = re.search(re.escape(path) + r":(\d+):(\d+): (.+)$", line)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return found

    def check_bad(self, text, expected, name="bad.toml"):
        """--check on text fails with errors at the expected positions. Each
        expected item is (line, allowed columns, a word the message holds).
        Returns the file's path."""
        path = self.write_config(text, name)
        r = run("--check", path)
        self.assertEqual(r.returncode, 1, f"--check exit code; stdout {r.stdout!r} stderr {r.stderr!r}")
        self.assertNotIn("ok:", r.stdout)
        errors = self.errors(r.stderr, path)
        self.assertEqual(len(errors), len(expected), f"errors reported:\n{r.stderr}")
        for (line, column, message), (want_line, columns, word) in zip(errors, expected):
            self.assertEqual(line, want_line, f"line of: {message}")
            self.assertIn(column, columns, f"column of: {message}")
            self.assertIn(word.lower(), message.lower())
        return path

    def test_check_good_file(self):
        path = self.write_config(self.good())
        r = run("--check", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("ok:"), r.stdout)
        self.assertEqual(len(r.stdout.strip().splitlines()), 1, r.stdout)
        self.assertTrue(harness.connect_refused(self.port), "--check must not bind")

    def test_unknown_key(self):
        text = self.good().replace('balance = "round_robin"', '  balanse = "round_robin"')
        line, col = position(text, "balanse")
        self.check_bad(text, [(line, [col], "balanse")])

    def test_unknown_key_in_member(self):
        text = self.good().replace("weight = 2", "weight = 2\nwieght = 3")
        line, col = position(text, "wieght")
        self.check_bad(text, [(line, [col], "wieght")])

    def test_bad_weight(self):
        for bad in ("0", "-1", "100000", '"heavy"'):
            with self.subTest(weight=bad):
                text = self.good().replace("weight = 2", f"  weight = {bad}")
                line, key = position(text, "weight =")
                value = key + len("weight = ")
                self.check_bad(text, [(line, [key, value], "weight")])

    def test_missing_pool(self):
        text = self.good().replace('pool = "web"', 'pool = "nowhere"')
        line, key = position(text, 'pool = "nowhere"')
        _, value = position(text, '"nowhere"')
        self.check_bad(text, [(line, [key, value], "nowhere")])

    def test_listener_without_pool(self):
        text = self.good().replace('pool = "web"\n', "")
        path = self.write_config(text, "bad.toml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 1)
        errors = self.errors(r.stderr, path)
        self.assertEqual(len(errors), 1, r.stderr)
        # The error points into the [[listener]] table that lacks the key.
        first, _ = position(text, "[[listener]]")
        last, _ = position(text, "[pool.web]")
        self.assertTrue(first <= errors[0][0] < last, r.stderr)
        self.assertIn("pool", errors[0][2])

    def test_duplicate_address(self):
        text = self.good().replace(f"127.0.0.1:{self.fields['port2']}", f"127.0.0.1:{self.fields['port1']}")
        needle = f'"127.0.0.1:{self.fields["port1"]}"'
        line, value = position(text, needle, occurrence=2)
        key = 1  # "address" starts its line
        self.check_bad(text, [(line, [key, value], "address")])

    def test_two_errors_in_file_order(self):
        text = self.good().replace("workers = 1", "workers = 1\ncolour = \"blue\"")
        text = text.replace("weight = 2", "weight = 0")
        colour = position(text, "colour")
        weight_line, weight_key = position(text, "weight = 0")
        self.check_bad(text, [(colour[0], [colour[1]], "colour"),
                              (weight_line, [weight_key, weight_key + len("weight = ")], "weight")])

    def test_tls_and_route_errors(self):
        # Config errors stop --check before any certificate file is looked at.
        text = self.good().replace(
            'pool = "web"\n',
            'pool = "web"\n'
            '[listener.tls]\n'
            'certificates = [{ cert = "web.pem", key = "web.key" }]\n'
            'verify_client = "required"\n'
            '[[listener.route]]\n'
            'server_names = ["api.internal", "Api.Internal."]\n'
            'pool = "api"\n', 1)
        text += '\n[pool.web.health]\nkind = "https"\n'
        required = position(text, '"required"')
        duplicate = position(text, '"Api.Internal."')
        pool = position(text, '"api"')
        kind = position(text, '"https"')
        self.check_bad(text, [(required[0], [required[1]], "client_ca"),
                              (duplicate[0], [duplicate[1]], "duplicate server name"),
                              (pool[0], [pool[1]], "not defined"),
                              (kind[0], [kind[1]], "[pool.web.tls]")])

    def test_edge_errors_point_at_the_element(self):
        text = self.good().replace(
            'pool = "web"\n',
            'pool = "web"\n'
            'accept_proxy = "v2"\n'
            'proxy_from = ["10.0.0.0/8", "10.1.2.3/8"]\n'
            'allow = ["::1/128", "::1/200"]\n', 1)
        text = text.replace('retries = 1', 'retries = 1\nsend_proxy = "v3"')
        text = text.replace('workers = 1', 'workers = 1\nuser = ""')
        user = position(text, '""')
        host_bits = position(text, '"10.1.2.3/8"')
        prefix = position(text, '"::1/200"')
        send = position(text, '"v3"')
        self.check_bad(text, [(user[0], [user[1]], '"user" must not be empty'),
                              (host_bits[0], [host_bits[1]], "did you mean 10.0.0.0/8?"),
                              (prefix[0], [prefix[1]], "out of range"),
                              (send[0], [send[1]], "send_proxy")])

    def test_proxy_from_and_accept_proxy_go_together(self):
        without = self.good().replace('pool = "web"\n', 'pool = "web"\naccept_proxy = "any"\n', 1)
        accept = position(without, '"any"')
        self.check_bad(without, [(accept[0], [accept[1]], 'needs "proxy_from"')])
        alone = self.good().replace('pool = "web"\n', 'pool = "web"\nproxy_from = ["127.0.0.1"]\n', 1)
        proxy_from = position(alone, '["127.0.0.1"]')
        self.check_bad(alone, [(proxy_from[0], [proxy_from[1]], "accept_proxy is off")])

    def test_syntax_error(self):
        text = self.good().replace('name = "web-1"', 'name = "web-1')
        line, _ = position(text, '"web-1')
        path = self.write_config(text, "bad.toml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 1)
        errors = self.errors(r.stderr, path)
        self.assertTrue(errors, r.stderr)
        self.assertEqual(errors[0][0], line, r.stderr)

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "absent.toml")
        r = run("--check", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn(path, r.stderr)

    def test_run_with_bad_file_does_not_start(self):
        text = self.good().replace("weight = 2", "weight = 0")
        path = self.write_config(text, "bad.toml")
        line, _ = position(text, "weight = 0")
        r = run(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        errors = self.errors(r.stderr, path)
        self.assertEqual([e[0] for e in errors], [line], r.stderr)
        self.assertNotIn("ready:", r.stderr)
        self.assertEqual(r.stdout, "", "nothing on stdout (the access log)")
        self.assertTrue(harness.connect_refused(self.port), "the listener port must not be bound")

    def test_version_and_help(self):
        for flag in ("--version", "--help"):
            with self.subTest(flag=flag):
                r = run(flag)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.strip(), f"{flag} printed nothing on stdout")
        self.assertIn("--check", run("--help").stdout)

    def test_good_file_runs(self):
        lb = self.start_ringlb(self.good())  # waits for ready:
        self.assertFalse(harness.connect_refused(self.port))
        self.assertEqual(lb.stop(), 0)



LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) ")


def admin_get(port, path="/status"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5 * harness.SCALE) as r:
        return r.status, r.read()


def echo_once(port, payload):
    with harness.connect(port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return harness.recv_all(s)[0]


class RunningConfigTest(harness.RinglbTest):
    """A running ringlb against a config path that turns hostile, and a
    second ringlb on the same ports."""

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.admin = harness.free_port()
        self.echo = self.backend(harness.echo_handler, "echo")

    def config(self, admin=None, workers=2):
        text = harness.make_config(self.port, [harness.member("m1", self.echo.address)], workers=workers)
        return text + f'\n[admin]\nlisten = "127.0.0.1:{admin or self.admin}"\n'

    def wait_log(self, lb, needle, what):
        harness.wait_until(lambda: needle in lb.stderr_text(), what=what)

    def test_sighup_with_a_fifo_config_keeps_the_control_thread_going(self):
        lb = self.start_ringlb(self.config())
        os.remove(lb.config_path)
        os.mkfifo(lb.config_path)  # no writer ever comes: open() or read() would block
        lb.signal(signal.SIGHUP)
        self.wait_log(lb, "not a regular file (a FIFO)", "the refused reload")
        status, _ = admin_get(self.admin)  # the control thread still answers
        self.assertEqual(status, 200)
        self.assertEqual(echo_once(self.port, b"still here\n"), b"still here\n")

    def test_a_failed_reload_logs_each_error_on_its_own_line(self):
        lb = self.start_ringlb(self.config())
        text = self.config().replace("workers = 2", 'workers = 2\ncolour = "blue"')
        text = text.replace('balance = "round_robin"', 'balance = "round_robin"\nretries = 99\n'
                            'bogus = "forged\\nringlb.toml:1:1: fake"')
        with open(lb.config_path, "w") as f:
            f.write(text)
        lb.signal(signal.SIGHUP)
        harness.wait_until(lambda: "bogus" in lb.stderr_text(), what="the refused reload")
        lines = lb.stderr_text().splitlines()
        for line in lines:
            self.assertRegex(line, LOG_LINE, "every log line has a time and a level")
        errors = [line for line in lines if lb.config_path + ":" in line]
        self.assertEqual(len(errors), 3, "\n".join(lines))
        self.assertTrue(any("colour" in line for line in errors))
        self.assertTrue(any("retries" in line for line in errors))
        self.assertTrue(any(r'"bogus"' in line for line in errors))
        self.assertEqual(echo_once(self.port, b"old config\n"), b"old config\n")

    def test_a_second_instance_on_the_same_port_exits(self):
        first = self.start_ringlb(self.config())
        second_path = self.write_config(self.config(admin=harness.free_port()), "second.toml")
        second = harness.Ringlb(second_path)
        self.addCleanup(second.kill)
        rc = second.wait_exit()
        self.assertEqual(rc, 1, second.stderr_text())
        self.assertFalse(second.sanitizer_reports(), second.stderr_text())
        self.assertNotIn("ready:", second.stderr_text())
        self.assertIn(f"listener front: cannot listen on 127.0.0.1:{self.port}", second.stderr_text())
        self.assertIn("Address already in use", second.stderr_text())
        # The first keeps every connection: none went to the second.
        for i in range(20):
            payload = f"to the first {i}\n".encode()
            self.assertEqual(echo_once(self.port, payload), payload)
        harness.wait_until(lambda: len(first.access_log()) >= 20, what="the first's access log")
        self.assertEqual(first.stop(), 0)

    def test_a_reload_refuses_a_new_listener_on_another_process_port(self):
        taken = harness.free_port()
        other_path = self.write_config(harness.make_config(taken, [harness.member("m1", self.echo.address)]),
                                       "other.toml")
        other = harness.Ringlb(other_path)
        self.addCleanup(self._finish_ringlb, other, True)
        other.wait_ready()
        lb = self.start_ringlb(self.config())
        with open(lb.config_path, "a") as f:
            f.write(f'\n[[listener]]\nname = "extra"\nbind = "127.0.0.1:{taken}"\npool = "pool"\n')
        lb.signal(signal.SIGHUP)
        self.wait_log(lb, f"listener extra: cannot listen on 127.0.0.1:{taken}", "the refused reload")
        for i in range(10):  # every connection still reaches the other process
            payload = f"to the other {i}\n".encode()
            self.assertEqual(echo_once(taken, payload), payload)
        harness.wait_until(lambda: len(other.access_log()) >= 10, what="the other's access log")
        self.assertEqual(lb.access_log(), [])


    def test_a_renamed_listener_may_reuse_its_own_address(self):
        lb = self.start_ringlb(self.config())
        with open(lb.config_path, "w") as f:
            f.write(self.config().replace('name = "front"', 'name = "renamed"'))
        lb.signal(signal.SIGHUP)
        self.wait_log(lb, "reloaded", "the reload")  # the sockets it shares are its own
        self.assertNotIn("failed", lb.stderr_text())
        self.assertEqual(echo_once(self.port, b"renamed\n"), b"renamed\n")

    def test_a_reload_that_changes_user_is_refused(self):
        # Started without user, so nothing was dropped; a new user still
        # needs a restart, and the reload says so at the key.
        lb = self.start_ringlb(self.config())
        text = self.config().replace("[global]\n", '[global]\nuser = "nobody"\n', 1)
        self.assertIn('user = "nobody"', text)
        with open(lb.config_path, "w") as f:
            f.write(text)
        line, column = position(text, '"nobody"')
        lb.signal(signal.SIGHUP)
        needle = f'{lb.config_path}:{line}:{column}: [global] "user" cannot change on a reload'
        self.wait_log(lb, needle, "the refused reload")
        self.assertIn("the running config stays", lb.stderr_text())
        self.assertEqual(echo_once(self.port, b"same config\n"), b"same config\n")


class PreviewTest(harness.RinglbTest):

    def test_check_against_shows_pool_and_health_changes(self):
        port, member = harness.free_port(), harness.dead_address()
        old_text = harness.make_config(port, [harness.member("m1", member)], pool={"retries": 2})
        old_text += '\n[pool.pool.health]\nkind = "tcp"\ninterval = "2s"\n'
        old = self.write_config(old_text, "old.toml")
        cases = {
            "no health": (old_text.split("\n[pool.pool.health]")[0], "  - health (tcp every 2s)"),
            "interval": (old_text.replace('interval = "2s"', 'interval = "5s"'), "  health interval 2s -> 5s"),
            "kind": (old_text.replace('kind = "tcp"', 'kind = "http"'), "  health kind tcp -> http"),
            "retries": (old_text.replace("retries = 2", "retries = 3"), "  retries 2 -> 3"),
        }
        for name, (text, line) in cases.items():
            with self.subTest(name):
                new = self.write_config(text, "new.toml")
                r = run("--check", new, "--against", old)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("pool pool:\n" + line + "\n", r.stdout)
                self.assertNotIn("unchanged", r.stdout)
        r = run("--check", old, "--against", old)
        self.assertIn("pool pool: unchanged", r.stdout)

    def test_check_against_shows_route_changes_without_a_new_socket(self):
        port, member = harness.free_port(), harness.dead_address()
        old_text = harness.make_config(port, [harness.member("m1", member)])
        old_text += f'\n[pool.api]\n[[pool.api.member]]\naddress = "{member}"\n'
        old = self.write_config(old_text, "old.toml")
        route = '[[listener.route]]\nserver_names = ["api.internal"]\npool = "api"\n'
        new_text = old_text.replace("[pool.pool]", route + "[pool.pool]", 1)
        self.assertNotEqual(new_text, old_text)
        new = self.write_config(new_text, "new.toml")
        r = run("--check", new, "--against", old)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(" route api.internal: (default) -> api\n", r.stdout)
        self.assertNotIn("+ listener", r.stdout)
        self.assertNotIn("- listener", r.stdout)

    def test_check_against_shows_edge_changes(self):
        port, member = harness.free_port(), harness.dead_address()
        old_text = harness.make_config(port, [harness.member("m1", member)])
        old = self.write_config(old_text, "old.toml")
        new_text = harness.make_config(
            port, [dict(harness.member("m1", member), send_proxy="v1")], global_={"user": "nobody"},
            listener={"accept_proxy": "v2"}, pool={"send_proxy": "v2"})
        new_text = new_text.replace('accept_proxy = "v2"\n',
                                    'accept_proxy = "v2"\nproxy_from = ["10.0.0.0/8"]\ndeny = ["10.9.0.0/16"]\n')
        new = self.write_config(new_text, "new.toml")
        r = run("--check", new, "--against", old)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('[global] user (unset) -> "nobody" (needs a restart: a reload that changes it is refused)\n',
                      r.stdout)
        self.assertIn("~ listener front accept_proxy off -> v2\n", r.stdout)
        self.assertIn("~ listener front proxy_from (none) -> [10.0.0.0/8]\n", r.stdout)
        self.assertIn("~ listener front deny (none) -> [10.9.0.0/16]\n", r.stdout)
        self.assertIn("pool pool:\n  send_proxy off -> v2\n  ~ member m1 send_proxy (pool's) -> v1\n", r.stdout)


class AdminListenTest(harness.RinglbTest):

    def test_admin_on_a_listener_address_is_refused(self):
        port = harness.free_port()
        text = harness.make_config(port, [harness.member("m1", harness.dead_address())])
        text += f'\n[admin]\nlisten = "127.0.0.1:{port}"\n'
        path = self.write_config(text, "bad.toml")
        line, column = position(text, f'"127.0.0.1:{port}"', occurrence=2)
        for args in (("--check", path), (path,)):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"{path}:{line}:{column}: [admin] listen 127.0.0.1:{port} collides with listener",
                              r.stderr)
                self.assertTrue(harness.connect_refused(port))


if __name__ == "__main__":
    harness.main()
