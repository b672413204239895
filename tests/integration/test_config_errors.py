"""`ringlb --check` and starting with a bad file: errors name file:line:col,
the exit code is 1, and nothing is bound."""

import os
import re
import subprocess
import sys

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


if __name__ == "__main__":
    harness.main()
