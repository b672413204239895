"""Starting with too few descriptors: ringlb raises its soft open-file limit
to the hard one and refuses, before binding anything, a hard limit that
leaves no room for a session once the process has what it keeps for itself
(exit status 1 and an error line with the figures). At the smallest limit
with room for one session it starts, and stops cleanly on SIGTERM."""

import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def limit_files(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def run(path, n):
    """Runs ringlb under an open-file limit of n (soft and hard); SIGTERM
    once ready. Returns (exit code, ready, stderr text)."""
    proc = subprocess.Popen([harness.RINGLB, path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=limit_files(n))
    lines = []
    ready = False
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        lines.append(line)
        if "ready:" in line:
            ready = True
            proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(harness.WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"limit {n}: ringlb neither started nor exited:\n" + "\n".join(lines))
    finally:
        proc.stderr.close()
    return rc, ready, "\n".join(lines)


class StartupTest(unittest.TestCase):
    def test_every_descriptor_limit_starts_cleanly_or_exits_with_a_reason(self):
        port = harness.free_port()
        config = harness.make_config(port, [harness.member("m", harness.dead_address())],
                                     workers=4, global_={"access_log": "off"})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ringlb.toml")
            with open(path, "w") as f:
                f.write(config)
            reserves = set()
            for n in range(7, 24):
                rc, ready, text = run(path, n)
                self.assertFalse(ready, f"limit {n}:\n{text}")
                self.assertEqual(rc, 1, f"limit {n}:\n{text}")
                m = re.search(rf"cannot start: open files: soft {n}, hard {n}; the open-file limit {n} leaves no "
                              r"room for a session: the process needs (\d+) for itself", text)
                self.assertTrue(m, f"limit {n}: no reason with the figures:\n{text}")
                self.assertNotIn("listen", text.split("cannot start")[0], f"limit {n}: bound first:\n{text}")
                reserves.add(int(m.group(1)))
            self.assertEqual(len(reserves), 1, reserves)
            reserve = reserves.pop()
            rc, ready, text = run(path, reserve + 5)
            self.assertEqual((rc, ready), (1, False), text)
            rc, ready, text = run(path, reserve + 6)
            self.assertTrue(ready, text)
            self.assertEqual(rc, 0, text)
            self.assertIn(f"max_connections 1 (derived: ({reserve + 6} open files - {reserve} for the process) / 6 "
                          "per session", text)


if __name__ == "__main__":
    unittest.main()
