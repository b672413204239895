"""The access log: an output that does not keep up never stalls traffic
(lines are dropped whole and counted), and SIGUSR1 reopens the file
(logrotate), which is created 0640 and never through a symlink."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import SCALE, member  # noqa: E402

DROPPED = "ringlb_access_log_dropped_lines_total"
# Long names make long lines, so that 3,000 lines are several times what the
# workers' buffers (256 KiB each) and a 64 KiB pipe can hold together.
LISTENER = "front-" + "l" * 240
MEMBER = "m1-" + "m" * 240


class HeldStdoutRinglb(harness.Ringlb):
    """ringlb whose stdout is a pipe the test holds without reading it until
    start_reading(): the access-log reader that does not read."""

    def __init__(self, config_path):
        self.config_path = config_path
        self.cond = threading.Condition()
        self.stdout_lines = []
        self.stderr_lines = []
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen([harness.RINGLB, config_path], stdin=subprocess.DEVNULL,
                                         stdout=write_end, stderr=subprocess.PIPE)
        finally:
            os.close(write_end)
        self.held = os.fdopen(read_end, "rb")
        self.pid = self.proc.pid
        self.stop_signalled = False
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines),
                                          daemon=True)]
        self._readers[0].start()

    def start_reading(self):
        reader = threading.Thread(target=self._read, args=(self.held, self.stdout_lines), daemon=True)
        self._readers.append(reader)
        reader.start()

    def kill(self):
        super().kill()
        if len(self._readers) == 1:
            self.held.close()


class HeldStderrRinglb(harness.Ringlb):
    """ringlb whose stderr is read until it is ready and then held unread
    until start_reading(): an operational-log reader that stops reading."""

    def __init__(self, config_path):
        self.config_path = config_path
        self.cond = threading.Condition()
        self.stdout_lines = []
        self.stderr_lines = []
        self.proc = subprocess.Popen([harness.RINGLB, config_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.stop_signalled = False
        self._readers = [threading.Thread(target=self._read_until_ready, daemon=True)]
        self._readers[0].start()

    def _read_until_ready(self):
        for raw in iter(self.proc.stderr.readline, b""):
            with self.cond:
                self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
                if "ready:" in self.stderr_lines[-1]:
                    return

    def start_reading(self):
        reader = threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True)
        self._readers.append(reader)
        reader.start()


class AccessLogTest(harness.RinglbTest):

    def backend_and_port(self):
        self.m1 = self.backend(harness.name_handler, name="m1")
        self.port = harness.free_port()

    def ask(self, i, timeout=None):
        """One short connection; returns its client address."""
        with harness.connect(self.port, timeout=timeout) as s:
            client = harness.client_name(s)
            s.sendall(f"request {i}\n".encode())
            data, reset = harness.recv_all(s)
        self.assertFalse(reset, f"connection {i} was reset")
        self.assertTrue(data.startswith(b"m1\n"), f"connection {i}: unexpected answer {data!r}")
        return client

    # ----------------------------------------------------------------------
    def test_full_stdout_pipe_drops_lines_and_never_stalls_traffic(self):
        self.backend_and_port()
        admin = harness.free_port()
        text = mh.build_config([(LISTENER, self.port, "p", None)],
                               {"p": {"members": [member(MEMBER, self.m1.address)]}},
                               workers=2, admin={"listen": f"127.0.0.1:{admin}"})
        lb = HeldStdoutRinglb(self.write_config(text))
        self.addCleanup(self._finish_ringlb, lb, True)
        lb.wait_ready()

        total = 3000
        started = time.monotonic()
        for i in range(total):
            try:
                self.ask(i, timeout=5 * SCALE)
            except OSError as e:  # socket.timeout included
                self.fail(f"connection {i + 1} of {total} got no answer ({e!r}) after "
                          f"{time.monotonic() - started:.1f}s: the access log stalls traffic")
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 120 * SCALE, f"{total} connections took {elapsed:.1f}s")
        dropped = mh.scrape(admin).total(DROPPED)
        self.assertGreater(dropped, 0, "lines beyond the buffers were not counted as dropped")
        mh.wait_log(lb, "lines dropped")
        warnings = len(mh.log_lines(lb, "lines dropped"))
        self.assertLessEqual(warnings, 1 + (time.monotonic() - started) / 10,
                             "the dropped-lines warning is not rate-limited")

        # The reader starts reading: the backlog arrives, then the lines of
        # new connections, every one of them whole.
        lb.start_reading()
        later = {self.ask(total + i) for i in range(20)}
        entries = harness.wait_until(
            lambda: (lambda e: e if later <= {x["client"] for x in e} else None)(lb.access_log()),
            what="the lines of the connections made after reading started")
        for e in entries:
            self.assertEqual(e["listener"], LISTENER)
        # Every connection's line was either written whole or counted as dropped.
        harness.wait_until(lambda: len(lb.access_log()) + mh.scrape(admin).total(DROPPED) == total + 20,
                           what="written + dropped lines == connections")
        print(f"\n{total} connections with a full stdout pipe in {elapsed:.1f}s; "
              f"{int(mh.scrape(admin).total(DROPPED))} lines dropped, {len(entries)} written",
              file=sys.stderr)

    def test_full_stderr_pipe_never_stalls_traffic(self):
        """Once serving, the operational log never waits for stderr's reader
        either: with debug lines for every refused connect and a stderr pipe
        nobody reads, traffic flows and the lines are dropped and counted."""
        self.backend_and_port()
        admin = harness.free_port()
        text = mh.build_config(
            [("front", self.port, "p", None)],
            {"p": {"balance": "round_robin", "retries": 1,
                   "members": [member("dead", harness.dead_address()), member(MEMBER, self.m1.address)]}},
            workers=1, global_={"log_level": "debug", "access_log": "off"},
            admin={"listen": f"127.0.0.1:{admin}"})
        lb = HeldStderrRinglb(self.write_config(text))
        self.addCleanup(self._finish_ringlb, lb, True)
        lb.wait_ready()

        total = 3000  # half of them log a refused connect: several pipes' worth
        started = time.monotonic()
        for i in range(total):
            try:
                self.ask(i, timeout=5 * SCALE)
            except OSError as e:
                self.fail(f"connection {i + 1} of {total} got no answer ({e!r}) after "
                          f"{time.monotonic() - started:.1f}s: the log on stderr stalls traffic")
        dropped = mh.scrape(admin).total("ringlb_log_dropped_lines_total")
        self.assertGreater(dropped, 0, "log lines the pipe had no room for were not counted")
        lb.start_reading()
        mh.wait_log(lb, "connect to member dead failed")
        print(f"\n{total} connections with a full stderr pipe in {time.monotonic() - started:.1f}s; "
              f"{int(dropped)} log lines dropped", file=sys.stderr)

    # ----------------------------------------------------------------------
    def file_config(self, path, workers=2):
        return harness.make_config(self.port, [member("m1", self.m1.address)], workers=workers,
                                   global_={"access_log": path})

    def read_entries(self, path):
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]

    def wait_clients(self, path, clients):
        return harness.wait_until(
            lambda: (lambda e: e if clients <= {x["client"] for x in e} else None)(self.read_entries(path)),
            what=f"the access-log lines of {len(clients)} connections in {path}")

    def test_sigusr1_reopens_the_access_log_file(self):
        self.backend_and_port()
        path = os.path.join(self.tmp.name, "access.log")
        old_umask = os.umask(0o022)
        try:
            lb = self.start_ringlb(self.file_config(path))
        finally:
            os.umask(old_umask)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        before = {self.ask(i) for i in range(20)}
        self.wait_clients(path, before)

        rotated = path + ".1"
        os.rename(path, rotated)
        lb.signal(signal.SIGUSR1)
        mh.wait_log(lb, "reopened access log")
        after = {self.ask(100 + i) for i in range(20)}
        entries = self.wait_clients(path, after)

        self.assertIsNone(lb.proc.poll(), "ringlb exited after SIGUSR1")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertEqual({e["client"] for e in entries}, after)
        self.assertEqual({e["client"] for e in self.read_entries(rotated)}, before)
        self.assertEqual(len(self.read_entries(rotated)), 20)

        # A second rotation works the same way.
        os.rename(path, path + ".2")
        lb.signal(signal.SIGUSR1)
        mh.wait_log(lb, "reopened access log", count=2)
        third = {self.ask(200 + i) for i in range(5)}
        self.assertEqual({e["client"] for e in self.wait_clients(path, third)}, third)
        self.assertEqual(len(self.read_entries(path + ".2")), 20)

    def test_sigusr1_with_stdout_is_a_no_op(self):
        self.backend_and_port()
        lb = self.start_ringlb(harness.make_config(self.port, [member("m1", self.m1.address)]))
        lb.signal(signal.SIGUSR1)
        mh.wait_log(lb, "SIGUSR1")
        self.assertIsNone(lb.proc.poll(), "ringlb exited after SIGUSR1")
        client = self.ask(1)
        self.assertEqual(lb.entry_for(client)["member"], "m1")

    def test_symlinked_access_log_path_is_refused(self):
        self.backend_and_port()
        target = os.path.join(self.tmp.name, "elsewhere.log")
        open(target, "w").close()
        link = os.path.join(self.tmp.name, "access.log")
        os.symlink(target, link)
        lb = self.start_ringlb(self.file_config(link), wait_ready=False, check_clean_stop=False)
        self.assertEqual(lb.wait_exit(), 1, f"ringlb started with a symlinked access log:\n{lb.stderr_text()}")
        self.assertIn("symbolic link", lb.stderr_text())
        self.assertTrue(harness.connect_refused(self.port))


if __name__ == "__main__":
    harness.main()
