"""Who ringlb runs as, and the open-file figures it starts with.

Started as root with [global] user = "nobody" and group = "nogroup", every
thread (workers, control, io_uring's iou-wrk threads) runs as nobody with no
supplementary group once traffic flows; a reload reads certificates as
nobody (works when they are readable by nogroup, refused with "permission
denied (running as nobody)" for a key only root can read); so does the
access log's reopen; an unknown user stops the start. The open-file limit:
the soft limit raised to the hard one, the global max_connections derived
from it, and an explicit one the hard limit cannot hold refused with the
figures, at start and on reload."""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from test_tls_certificates import Pki  # noqa: E402

IS_ROOT = os.geteuid() == 0
NOT_ROOT = "switching users needs root: run the tests as root"


def thread_credentials(pid):
    """{tid: (name, uid fields, gid fields, groups)} from /proc/PID/task/*/status."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = {}
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        threads[int(tid)] = (" ".join(fields["Name"]), fields["Uid"], fields["Gid"], fields["Groups"])
    return threads


class PrivilegesTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        # nobody reads the config again on reload: the directory and the
        # config must be readable by it.
        os.chmod(self.tmp.name, 0o755)
        self.port, self.tls_port, self.admin = harness.free_port(), harness.free_port(), harness.free_port()

    def write_config(self, text, name="ringlb.toml"):
        path = super().write_config(text, name)
        os.chmod(path, 0o644)
        return path

    def config(self, member, *, cert=None, key=None, global_=None):
        g = {"workers": 2, "access_log": os.path.join(self.tmp.name, "access.log"), "shutdown_timeout": "5s",
             "user": "nobody", "group": "nogroup"}
        g.update(global_ or {})
        text = "[global]\n" + "".join(f"{k} = {harness.toml_value(v)}\n" for k, v in g.items() if v is not None)
        text += f'\n[admin]\nlisten = "127.0.0.1:{self.admin}"\n'
        text += f'\n[[listener]]\nname = "front"\nbind = "127.0.0.1:{self.port}"\npool = "web"\n'
        if cert:
            text += (f'\n[[listener]]\nname = "edge"\nbind = "127.0.0.1:{self.tls_port}"\npool = "web"\n'
                     f'\n[listener.tls]\ncertificates = [{{ cert = "{cert}", key = "{key}" }}]\n')
        text += f'\n[pool.web]\n[[pool.web.member]]\nname = "web-1"\naddress = "{member}"\n'
        return text

    def pki_readable_by_nogroup(self):
        pki = Pki(self.tmp.name)
        cert, key = pki.leaf("edge", "edge.example.com")
        os.chmod(cert, 0o644)
        os.chown(key, 0, grp.getgrnam("nogroup").gr_gid)
        os.chmod(key, 0o640)
        return cert, key

    def echo_bulk(self, size=4 * harness.MiB):
        """A transfer big enough to switch both directions to splice."""
        s = self.connect(self.port)
        data = os.urandom(size)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        echoed, reset = harness.recv_all(s)
        self.assertFalse(reset)
        self.assertEqual(echoed, data)

    @unittest.skipUnless(IS_ROOT, NOT_ROOT)
    def test_every_thread_runs_as_nobody_and_reload_reads_files_as_nobody(self):
        nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        backend = self.backend(harness.echo_handler, name="web-1")
        cert, key = self.pki_readable_by_nogroup()
        lb = self.start_ringlb(self.config(backend.address, cert=cert, key=key))
        self.assertIn(f"running as user nobody (uid {nobody}), group nogroup (gid {nogroup}), no supplementary "
                      "groups", lb.stderr_text())
        self.assertNotIn("running as root", lb.stderr_text())
        for _ in range(4):
            self.echo_bulk()
        threads = thread_credentials(lb.pid)
        # the main (control) thread and two workers at least
        self.assertGreaterEqual(len(threads), 3, threads)
        for tid, (name, uids, gids, groups) in threads.items():
            self.assertEqual(uids, [str(nobody)] * 4, f"thread {tid} ({name}): Uid {uids}")
            self.assertEqual(gids, [str(nogroup)] * 4, f"thread {tid} ({name}): Gid {gids}")
            self.assertEqual(groups, [], f"thread {tid} ({name}): Groups {groups}")
        print(f"threads: {sorted(name for name, *_ in threads.values())}", file=sys.stderr)

        # Reload: the config and the key are read again, by nobody.
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded ")
        # A key only root can read: the reload is refused and says why.
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)
        lb.signal(signal.SIGHUP)
        line = mh.wait_log(lb, f"cannot read private key file {key}")
        self.assertIn("permission denied (running as nobody)", line)
        mh.wait_log(lb, "reload of ")
        self.echo_bulk(harness.MiB)  # the running generation stays

        # The access log's reopen opens the file as nobody too.
        log = os.path.join(self.tmp.name, "access.log")
        self.assertEqual(os.stat(log).st_uid, 0)  # made by root before the drop, mode 0640
        lb.signal(signal.SIGUSR1)
        line = mh.wait_log(lb, "SIGUSR1: cannot open access log")
        self.assertIn("permission denied (running as nobody)", line)
        os.chown(log, nobody, nogroup)
        lb.signal(signal.SIGUSR1)
        mh.wait_log(lb, "SIGUSR1: reopened access log")

    @unittest.skipUnless(IS_ROOT, NOT_ROOT)
    def test_unknown_user_or_group_refuses_to_start(self):
        for key, value, message in (("user", "ringlb-no-such-user", "no such user"),
                                    ("group", "ringlb-no-such-group", "no such group")):
            lb = self.start_ringlb(self.config(harness.dead_address(), global_={key: value}), wait_ready=False)
            self.assertEqual(lb.wait_exit(), 1, lb.stderr_text())
            text = self.config(harness.dead_address(), global_={key: value})
            line = text.splitlines().index(f'{key} = "{value}"') + 1
            self.assertRegex(lb.stderr_text(), re.escape(f"cannot start: {lb.config_path}:{line}:") + r"\d+: "
                             + re.escape(f'{key} "{value}": {message}'))
            self.assertNotIn("ready:", lb.stderr_text())

    @unittest.skipUnless(IS_ROOT, NOT_ROOT)
    def test_root_without_user_is_warned(self):
        lb = self.start_ringlb(self.config(harness.dead_address(), global_={"user": None, "group": None}))
        self.assertIn("running as root: set [global] user", lb.stderr_text())

    @unittest.skipUnless(IS_ROOT and shutil.which("setpriv"), "needs root and setpriv")
    def test_not_root_and_not_that_user_refuses_to_start(self):
        # HAProxy's rule: only root switches users; anyone else must already be
        # the user configured.
        wrapper = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--")
        mh.tsan_suppressions_for_nobody(self)
        text = self.config(harness.dead_address(), global_={"user": "root", "group": "root"})
        lb = harness.Ringlb(self.write_config(text), wrapper=wrapper)
        self.addCleanup(lb.kill)
        self.assertEqual(lb.wait_exit(), 1, lb.stderr_text())
        self.assertRegex(lb.stderr_text(), r"cannot switch to user root \(uid 0\), group root \(gid 0\): ringlb "
                                           r"runs as nobody \(uid \d+\), not root")
        self.assertNotIn("open files", lb.stderr_text())  # refused before opening anything

    # -- the open-file limit (any user) --------------------------------------

    def figures_config(self, global_=None):
        g = {"user": None, "group": None, "access_log": "off"}
        g.update(global_ or {})
        return self.config(harness.dead_address(), global_=g)

    def test_soft_limit_raised_and_max_connections_derived(self):
        lb = self.start_ringlb(self.figures_config(), wrapper=("prlimit", "--nofile=1024:4096", "--"))
        line = mh.wait_log(lb, "open files: ")
        m = re.search(r"open files: soft 4096 \(raised from 1024\), hard 4096; max_connections (\d+) \(derived: "
                      r"4096 open files - (\d+) for the process, 2 per session and a pipe \(2\) per 8 sessions; "
                      r"\d+ pipes\)", line)
        self.assertTrue(m, line)
        self.assertEqual(int(m.group(1)), (4096 - int(m.group(2))) * 8 // 18, line)
        with open(f"/proc/{lb.pid}/limits") as f:
            self.assertRegex(f.read(), r"Max open files\s+4096\s+4096")

    def test_explicit_max_connections_over_the_hard_limit_is_refused(self):
        lb = self.start_ringlb(self.figures_config({"max_connections": 3000}), wait_ready=False,
                               wrapper=("prlimit", "--nofile=1024:4096", "--"))
        self.assertEqual(lb.wait_exit(), 1, lb.stderr_text())
        m = re.search(r"cannot start: open files: soft 4096 \(raised from 1024\), hard 4096; \[global\] "
                      r"max_connections = 3000 needs (\d+) open files \(3000 x 2 per session \(its sockets\) "
                      r"\+ (\d+) for the process: .*\) but the open-file limit is 4096 \(room for (\d+) "
                      r"sessions\)", lb.stderr_text())
        self.assertTrue(m, lb.stderr_text())
        needed, reserve, room = map(int, m.groups())
        self.assertEqual(needed, 6000 + reserve)
        self.assertEqual(room, (4096 - reserve) // 2)
        self.assertNotIn("ready:", lb.stderr_text())

    def test_reload_checks_an_explicit_max_connections_again(self):
        lb = self.start_ringlb(self.figures_config(), wrapper=("prlimit", "--nofile=4096:4096", "--"))
        derived = int(re.search(r"max_connections (\d+) \(derived", mh.wait_log(lb, "open files: ")).group(1))
        self.write_config(self.figures_config({"max_connections": 3000}))
        lb.signal(signal.SIGHUP)
        line = mh.wait_log(lb, "reload: [global] max_connections = 3000 needs")
        self.assertIn("but the open-file limit is 4096", line)
        mh.wait_log(lb, "reload of ")
        self.write_config(self.figures_config({"max_connections": 100}))
        lb.signal(signal.SIGHUP)
        line = mh.wait_log(lb, "reload: max_connections 100 (configured; needs ")
        self.assertRegex(line, rf"of 4096 open files; the other \d+ allow \d+ pipes\), was {derived};")
        mh.wait_log(lb, "reloaded ")


if __name__ == "__main__":
    harness.main()
