"""Starting with too few descriptors: ringlb never runs without its signalfd
(it would ignore SIGTERM). At each limit up to the one that stops it there,
it exits with status 1 and an error line saying why (or starts and stops
cleanly on SIGTERM)."""

import os
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


class StartupTest(unittest.TestCase):
    def test_every_descriptor_limit_starts_cleanly_or_exits_with_a_reason(self):
        port = harness.free_port()
        # Four workers: four listening sockets before the signalfd, so that at
        # every limit tried the config is read with descriptors to spare (a
        # sanitizer runtime needs a pipe to check memory, and reports false
        # errors without one).
        config = harness.make_config(port, [harness.member("m", harness.dead_address())],
                                     workers=4, global_={"access_log": "off"})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ringlb.toml")
            with open(path, "w") as f:
                f.write(config)
            reasons = []
            # Up to the first limit that stops ringlb at its signalfd: above it
            # the process gets further and a sanitizer runtime, left without a
            # descriptor, reports false errors.
            for n in range(7, 24):
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
                    self.fail(f"limit {n}: ringlb neither started nor exited:\n" + "\n".join(lines))
                proc.stderr.close()
                text = "\n".join(lines)
                if ready:
                    self.assertEqual(rc, 0, f"limit {n}:\n{text}")
                else:
                    self.assertEqual(rc, 1, f"limit {n}:\n{text}")
                    self.assertIn(" error ", text, f"limit {n}: no error line:\n{text}")
                    reasons.append(text)
                    if "cannot start: signalfd" in text:
                        break
            self.assertTrue(any("cannot start: signalfd" in r for r in reasons),
                            "no limit stopped ringlb at its signalfd:\n" + "\n---\n".join(reasons))


if __name__ == "__main__":
    unittest.main()
