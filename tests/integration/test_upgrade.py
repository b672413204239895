"""In-place upgrade (SIGUSR2): the binary on disk starts as a new process
that inherits every listening socket, and the old one stops accepting and
drains once the new one is ready. Under load nothing fails; connections
waiting in an accept queue are served by the new process; a new process that
cannot start leaves the old one serving; systemd hears READY=1 from the new
process and MAINPID= of it; the file on disk, not the running one, is what
starts.

The old process is the test's child; the new one is the old one's child. The
test makes itself a child subreaper, so that once the old process has gone
the new one becomes the test's child and its exit status can be checked."""

import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
import traffic  # noqa: E402
from harness import MiB, WAIT, member, wait_until  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
SLOW = 30 * harness.SCALE  # a whole process start (exec, config, rings) on a loaded machine
IS_ROOT = os.geteuid() == 0


def setUpModule():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def listening_inodes(port):
    """Inodes of the TCP sockets listening on 127.0.0.1:port (/proc/net/tcp)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_inodes(pid):
    """Inodes of every socket process pid holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    return inodes


def children(pid):
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return found


def all_stopped(pid):
    """Whether every thread of pid is stopped (kill(SIGSTOP) returns before
    they are; io_uring's own iou-* threads are not counted)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        state = text[text.rindex(")") + 2]
        if not name.startswith("iou-") and state not in "tT":
            return False
    return True


def worker_threads(pid):
    """Thread ids of ringlb's workers, by the names ringlb gives them
    ("ringlb-w0", ...): not the main (control) thread, io_uring's own, or a
    sanitizer's background thread."""
    found = []
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        if name.startswith("ringlb-w"):
            found.append(tid)
    return found


class ThreadHold:
    """One thread of another process held still (PTRACE_SEIZE, then
    PTRACE_INTERRUPT), while the rest of its process runs."""

    PTRACE_GETREGS, PTRACE_DETACH, PTRACE_SYSCALL, PTRACE_SEIZE, PTRACE_INTERRUPT = 12, 17, 24, 0x4206, 0x4207
    WALL = 0x40000000

    def __init__(self, tid):
        self.tid = tid
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long
        for request in (self.PTRACE_SEIZE, self.PTRACE_INTERRUPT):
            if self.libc.ptrace(request, tid, None, None) != 0:
                raise OSError(ctypes.get_errno(), f"ptrace({request}, {tid})")
        os.waitpid(tid, self.WALL)  # the thread has stopped
        self.held = True

    def run_to_syscall(self, number, condition, limit=10000):
        """Lets the thread run until it is about to make system call `number`
        with condition() true; it is held there."""
        regs = (ctypes.c_ulonglong * 27)()
        for _ in range(limit):
            if self.libc.ptrace(self.PTRACE_SYSCALL, self.tid, None, None) != 0:
                raise OSError(ctypes.get_errno(), "ptrace(PTRACE_SYSCALL)")
            os.waitpid(self.tid, self.WALL)
            if self.libc.ptrace(self.PTRACE_GETREGS, self.tid, None, ctypes.byref(regs)) != 0:
                continue  # not a syscall stop
            entering = regs[10] == 2**64 - 38  # rax is -ENOSYS on entry (x86_64)
            if entering and regs[15] == number and condition():
                return
        raise AssertionError(f"thread {self.tid} never reached system call {number}")

    def release(self):
        if self.held:
            self.held = False
            if self.libc.ptrace(self.PTRACE_DETACH, self.tid, None, None) != 0:
                raise OSError(ctypes.get_errno(), f"ptrace(PTRACE_DETACH, {self.tid})")


def worker_ring_fdinfo(pid):
    """The fdinfo text of the (one) worker's io_uring: the ring with a
    16384-entry completion queue (lb/worker.cc)."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "io_uring" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        if "CqMask:\t0x3fff" in text:
            return text
    raise AssertionError(f"no worker ring in process {pid}")


def status_field(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    raise AssertionError(f"no {key} in /proc/{pid}/status")


class Successor:
    """A ringlb process started by an upgrade (a grandchild until its parent
    exits, then the test's own child)."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def running(self):
        if self.returncode is not None:
            return False
        try:
            reaped, status = os.waitpid(self.pid, os.WNOHANG)
            if reaped == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return False
            return True  # the test's child (its parent has gone), not ended
        except ChildProcessError:
            pass  # still the old process's child
        try:
            return status_field(self.pid, "State")[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code (None when it could not be
        reaped here)."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
        wait_until(lambda: not self.running(), timeout or 30 * harness.SCALE, f"process {self.pid} to exit")
        return self.returncode

    def kill(self):
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not self.running(), WAIT, f"process {self.pid} to die")


class Ringlb(harness.Ringlb):
    """harness.Ringlb with a chosen binary, working directory and environment."""

    def __init__(self, config_path, binary=None, cwd=None, env=None):
        binary = binary or harness.RINGLB
        saved = harness.RINGLB
        harness.RINGLB = binary
        try:
            if cwd is None and env is None:
                super().__init__(config_path)
                return
            real_popen = subprocess.Popen

            def popen(args, **kwargs):
                return real_popen(args, cwd=cwd, env=env, **kwargs)
            subprocess.Popen = popen
            try:
                super().__init__(config_path)
            finally:
                subprocess.Popen = real_popen
        finally:
            harness.RINGLB = saved


class UpgradeTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.admin = harness.free_port()

    def config(self, backends, workers=2, extra_global=None, admin=True):
        g = {"access_log": "stdout", "shutdown_timeout": "60s"}
        g.update(extra_global or {})
        text = harness.make_config(self.port, [member(b.name, b.address) for b in backends], workers=workers,
                                   global_=g)
        if admin:
            text += f'\n[admin]\nlisten = "127.0.0.1:{self.admin}"\n'
        return text

    def start(self, text, binary=None, cwd=None, env=None, config_arg=None):
        path = self.write_config(text)
        lb = Ringlb(config_arg or path, binary=binary, cwd=cwd, env=env)
        self.addCleanup(self._finish_ringlb, lb, True)
        lb.wait_ready()
        return lb

    def started_pid(self, lb, count=1):
        """The pid of the count-th process the old one started."""
        line = mh.wait_log(lb, "upgrade: started ", count=count)
        return int(re.search(r"as process (\d+)", line).group(1))

    def upgrade(self, lb, count=1):
        """SIGUSR2; returns the new process once the old one has exited
        (cleanly, checked)."""
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb, count))
        self.addCleanup(self.finish_successor, new, lb)
        mh.wait_log(lb, f"upgrade: process {new.pid} is ready", timeout=SLOW)
        return new

    def wait_old_gone(self, lb):
        try:
            rc = lb.proc.wait(60 * harness.SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the old process did not exit; stderr:\n{lb.stderr_text()}")
        self.assertEqual(rc, 0, lb.stderr_text())

    def finish_successor(self, new, lb):
        if new.running():
            rc = new.stop()
            self.assertEqual(rc, 0, f"the new process's stop was not clean:\n{lb.stderr_text()}")
        new.kill()

    def ask(self, line=b"hello\n"):
        with harness.connect(self.port) as s:
            s.sendall(line)
            s.shutdown(socket.SHUT_WR)
            data, reset = harness.recv_all(s)
        self.assertFalse(reset)
        self.assertEqual(data, line)

    def copy_binary(self, name="ringlb"):
        directory = os.path.join(self.tmp.name, "bin")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        shutil.copyfile(harness.RINGLB, path + ".tmp")
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
        return path

    def hold_upgrade(self, binary):
        """Replaces binary with a script that waits on a FIFO before it execs
        the real ringlb: the upgrade stays in progress until release()."""
        fifo = os.path.join(self.tmp.name, "go.fifo")
        os.mkfifo(fifo)
        with open(binary + ".tmp", "w") as f:
            f.write(f'#!/bin/sh\nread go < "{fifo}"\nexec "{harness.RINGLB}" "$@"\n')
        os.chmod(binary + ".tmp", 0o755)
        os.replace(binary + ".tmp", binary)

        def release():
            with open(fifo, "w") as f:
                f.write("go\n")
        return release

    # ------------------------------------------------------------------

    def test_upgrade_under_load_loses_nothing(self):
        backends = [self.backend(harness.echo_handler, name=f"m{i}") for i in (1, 2)]
        lb = self.start(self.config(backends))
        before = listening_inodes(self.port)
        self.assertEqual(len(before), 2)  # one SO_REUSEPORT socket per worker
        recorder = traffic.Recorder()
        short = [traffic.ShortClients(self.port, recorder) for _ in range(3)]
        transfers = [traffic.EchoTransfer(self.port, 48 * MiB, seed, pace=0.01) for seed in (1, 2)]
        for t in short + transfers:
            t.start()
        wait_until(lambda: all(t.outcome.received > MiB for t in transfers), 60 * harness.SCALE,
                   "both transfers in flight")
        wait_until(lambda: len(recorder.snapshot()) >= 30, what="short connections flowing")

        new = self.upgrade(lb)
        self.assertNotEqual(new.pid, lb.pid)
        self.assertFalse(any(t.outcome.ended for t in transfers), "a transfer ended before the switch")
        self.wait_old_gone(lb)  # after its sessions (the transfers) have finished
        self.assertTrue(new.running())
        done_at_exit = len(recorder.snapshot())
        wait_until(lambda: len(recorder.snapshot()) >= done_at_exit + 100, 30 * harness.SCALE,
                   "short connections served by the new process")
        for t in short:
            t.stop.set()
        for t in short + transfers:
            t.join(120 * harness.SCALE)
        outcomes = recorder.snapshot()
        failed = [o for o in outcomes if not o.ok]
        self.assertEqual(failed, [], f"{len(failed)} of {len(outcomes)} short connections failed")
        for t in transfers:
            self.assertTrue(t.outcome.ok, t.outcome)
            self.assertEqual(t.outcome.received, 48 * MiB)
        # The same sockets, never bound again: the kernel's listening sockets
        # on the port are the ones the old process had, now held by the new.
        self.assertEqual(listening_inodes(self.port), before)
        self.assertLessEqual(before, socket_inodes(new.pid))
        mh.get(self.admin, "/status")  # the admin socket went on too
        print(f"{len(outcomes)} short connections, 2 x 48 MiB across the upgrade", file=sys.stderr)

    def test_connection_waiting_in_the_accept_queue_is_served_by_the_new_process(self):
        backend = self.backend(harness.echo_handler, name="m1")
        binary = self.copy_binary()
        lb = self.start(self.config([backend]), binary=binary)
        release = self.hold_upgrade(binary)
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb))
        self.addCleanup(self.finish_successor, new, lb)
        # Nobody accepts now: the old process is stopped, the new one waits
        # for the FIFO. The kernel completes these handshakes and queues them.
        lb.signal(signal.SIGSTOP)
        self.addCleanup(lambda: lb.proc.poll() is None and lb.signal(signal.SIGCONT))
        wait_until(lambda: all_stopped(lb.pid), what="every thread of the old process stopped")
        waiting = []
        for i in range(20):
            s = self.connect(self.port, timeout=SLOW)
            s.sendall(f"queued {i}\n".encode())
            s.shutdown(socket.SHUT_WR)
            waiting.append(s)
        release()
        # Served while the old process is still stopped: by the new process,
        # from the queues of the sockets it inherited.
        for i, s in enumerate(waiting):
            data, reset = harness.recv_all(s)
            self.assertFalse(reset)
            self.assertEqual(data, f"queued {i}\n".encode())
        self.assertEqual(status_field(lb.pid, "State")[0], "T")
        lb.signal(signal.SIGCONT)
        mh.wait_log(lb, f"upgrade: process {new.pid} is ready", timeout=SLOW)
        self.wait_old_gone(lb)
        self.ask()
        self.assertEqual(os.readlink(f"/proc/{new.pid}/exe"), os.path.realpath(harness.RINGLB))

    def test_the_binary_on_disk_is_what_starts(self):
        backend = self.backend(harness.echo_handler, name="m1")
        binary = self.copy_binary()
        # A relative config path: the new process has the same working
        # directory and arguments.
        lb = self.start(self.config([backend]), binary=binary, cwd=self.tmp.name, config_arg="ringlb.toml")
        started = os.stat(binary).st_ino
        self.copy_binary()  # a new file at the same path (as a package upgrade does)
        replaced = os.stat(binary).st_ino
        self.assertNotEqual(started, replaced)
        self.assertTrue(os.readlink(f"/proc/{lb.pid}/exe").endswith(" (deleted)"))
        new = self.upgrade(lb)
        self.wait_old_gone(lb)
        self.assertEqual(os.readlink(f"/proc/{new.pid}/exe"), binary)
        self.assertEqual(os.stat(f"/proc/{new.pid}/exe").st_ino, replaced)
        with open(f"/proc/{new.pid}/cmdline", "rb") as f:
            self.assertEqual(f.read().split(b"\0")[:-1], [binary.encode(), b"ringlb.toml"])
        self.ask()
        # And again: the new process hands on what it took over.
        newer = self.upgrade_successor(new, lb)
        self.assertEqual(os.stat(f"/proc/{newer.pid}/exe").st_ino, replaced)
        self.ask()

    def upgrade_successor(self, new, lb):
        count = len(mh.log_lines(lb, "upgrade: started "))
        os.kill(new.pid, signal.SIGUSR2)
        newer = Successor(self.started_pid(lb, count + 1))
        self.addCleanup(self.finish_successor, newer, lb)
        mh.wait_log(lb, f"upgrade: process {newer.pid} is ready", timeout=SLOW)
        wait_until(lambda: not new.running(), 60 * harness.SCALE, "the previous process to exit")
        self.assertEqual(new.returncode, 0)
        return newer

    def test_a_new_process_not_ready_in_time_is_killed(self):
        backend = self.backend(harness.echo_handler, name="m1")
        binary = self.copy_binary()
        lb = self.start(self.config([backend], extra_global={"upgrade_timeout": "1s"}), binary=binary)
        self.hold_upgrade(binary)  # never released: the new process never gets ready
        lb.signal(signal.SIGUSR2)
        pid = self.started_pid(lb)
        mh.wait_log(lb, f"upgrade: process {pid} is not ready after 1000ms (upgrade_timeout); killing it",
                    timeout=SLOW)
        line = mh.wait_log(lb, f"upgrade failed: process {pid}", timeout=SLOW)
        self.assertIn(f"this process (pid {lb.pid}) keeps serving", line)
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "the killed process was not reaped")
        self.assertEqual(lb.proc.poll(), None)
        for _ in range(5):
            self.ask()

    def test_a_new_process_that_fails_leaves_the_old_one_serving(self):
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend]))
        with open(lb.config_path) as f:
            good = f.read()
        with open(lb.config_path, "w") as f:
            f.write(good.replace("[[listener]]", "[[listener]]\nbogus_key = 1", 1))
        lb.signal(signal.SIGUSR2)
        pid = self.started_pid(lb)
        line = mh.wait_log(lb, f"upgrade failed: process {pid} exited with status 1 before it was ready",
                           timeout=SLOW)
        self.assertIn(f"this process (pid {lb.pid}) keeps serving", line)
        # The new process's own errors, in the shared log.
        self.assertRegex(lb.stderr_text(), r"ringlb\.toml:\d+:\d+: .*bogus_key")
        self.assertFalse(os.path.exists(f"/proc/{pid}"), "the failed process was not reaped")
        self.assertEqual(children(lb.pid), [])
        self.assertEqual(lb.proc.poll(), None)
        for _ in range(20):
            self.ask()
        mh.get(self.admin, "/status")
        # Both steps are events of this process (GET /events).
        upgrades = [(e["who"], e["message"]) for e in mh.get(self.admin, "/events").json()["events"]
                    if e["kind"] == "upgrade"]
        self.assertEqual(len(upgrades), 2, upgrades)
        self.assertEqual(upgrades[0], ("SIGUSR2", f"started process {pid}; waiting for it to be ready"))
        self.assertTrue(upgrades[1][1].startswith(f"failed: process {pid} ended before it was ready"), upgrades)
        # A config the new process cannot put into effect: a new listener on
        # a port another process holds.
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        with open(lb.config_path, "w") as f:
            f.write(good + f'\n[[listener]]\nname = "second"\nbind = "127.0.0.1:{taken}"\npool = "pool"\n')
        lb.signal(signal.SIGUSR2)
        pid = self.started_pid(lb, 2)
        mh.wait_log(lb, f"upgrade failed: process {pid} exited with status 1", timeout=SLOW)
        self.assertIn(f"listener second: cannot listen on 127.0.0.1:{taken}", lb.stderr_text())
        self.ask()
        # Fixed on disk: the next SIGUSR2 upgrades.
        with open(lb.config_path, "w") as f:
            f.write(good)
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb, 3))
        self.addCleanup(self.finish_successor, new, lb)
        self.wait_old_gone(lb)
        self.ask()

    def test_second_sigusr2_refused_and_sigusr2_while_stopping_ignored(self):
        backend = self.backend(harness.echo_handler, name="m1")
        binary = self.copy_binary()
        lb = self.start(self.config([backend]), binary=binary)
        release = self.hold_upgrade(binary)
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb))
        self.addCleanup(self.finish_successor, new, lb)
        lb.signal(signal.SIGUSR2)
        mh.wait_log(lb, f"SIGUSR2 refused: the upgrade to process {new.pid} is still in progress")
        self.ask()  # the old process serves meanwhile
        # A session that keeps the old process draining.
        held = self.connect(self.port)
        held.sendall(b"first\n")
        self.assertEqual(harness.recv_exact(held, 6), b"first\n")
        release()
        mh.wait_log(lb, "took over: no longer accepting", timeout=SLOW)
        lb.signal(signal.SIGUSR2)
        mh.wait_log(lb, f"SIGUSR2 ignored: this process (pid {lb.pid}) is stopping")
        self.assertEqual(len(mh.log_lines(lb, "upgrade: started ")), 1)
        self.assertEqual(children(lb.pid), [new.pid])
        # The held session is still served by the old process, then it exits.
        held.sendall(b"second\n")
        self.assertEqual(harness.recv_exact(held, 7), b"second\n")
        held.close()
        self.wait_old_gone(lb)
        self.ask()

    def test_systemd_hears_ready_from_the_new_process_and_its_mainpid(self):
        backend = self.backend(harness.echo_handler, name="m1")
        path = os.path.join(self.tmp.name, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        notify.bind(path)
        notify.settimeout(WAIT)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        lb = self.start(self.config([backend]), env=env)
        messages = []

        def receive(until):
            deadline = time.monotonic() + WAIT
            while not until():
                notify.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
                except socket.timeout:
                    raise AssertionError(f"timed out waiting for notifications; got {messages}")
                sender = None
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                        sender = struct.unpack("3i", value[:struct.calcsize("3i")])[0]
                messages.append((sender, data.decode()))

        receive(lambda: any("READY=1" in m for _, m in messages))
        self.assertIn((lb.pid, "READY=1\nSTATUS=serving"), messages)
        new = self.upgrade(lb)
        receive(lambda: (lb.pid, f"MAINPID={new.pid}") in messages)
        self.assertIn((new.pid, "READY=1\nSTATUS=serving"), messages)
        self.wait_old_gone(lb)
        # The old process never says the unit stops.
        self.assertFalse([m for sender, m in messages if sender == lb.pid and "STOPPING" in m], messages)
        self.assertEqual(new.stop(), 0)
        receive(lambda: (new.pid, "STOPPING=1") in messages)

    def test_fewer_then_more_workers_take_every_socket(self):
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend], workers=3))
        three = listening_inodes(self.port)
        self.assertEqual(len(three), 3)
        with open(lb.config_path, "w") as f:
            f.write(self.config([backend], workers=1))
        one = self.upgrade(lb)
        self.wait_old_gone(lb)
        # One worker accepts from all three sockets: a connection reaches
        # any of them (the kernel hashes each to one), none is stranded.
        self.assertEqual(listening_inodes(self.port), three)
        self.serve_many(300)
        # A reload keeps every socket of the listener in that worker.
        os.kill(one.pid, signal.SIGHUP)
        mh.wait_log(lb, "reloaded ")
        self.assertEqual(listening_inodes(self.port), three)
        self.serve_many(300)
        with open(lb.config_path, "w") as f:
            f.write(self.config([backend], workers=4))
        four = self.upgrade_successor(one, lb)
        now = listening_inodes(self.port)
        self.assertEqual(len(now), 4)  # the three taken over and one bound
        self.assertLess(three, now)
        self.assertLessEqual(now, socket_inodes(four.pid))
        self.serve_many(300)

    def test_listeners_a_reload_added_are_handed_on_and_removed_ones_not(self):
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend]))
        second, third = harness.free_port(), harness.free_port()

        def with_listener(name, port):
            return self.config([backend]) + f'\n[[listener]]\nname = "{name}"\nbind = "127.0.0.1:{port}"\npool = "pool"\n'
        with open(lb.config_path, "w") as f:
            f.write(with_listener("second", second))
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded ")
        with open(lb.config_path, "w") as f:
            f.write(with_listener("third", third))
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded ", count=2)
        kept = listening_inodes(third)
        self.assertEqual(len(kept), 2)
        wait_until(lambda: not listening_inodes(second), what="the removed listener's sockets closed")
        new = self.upgrade(lb)
        self.wait_old_gone(lb)
        self.assertIn(f"listener third: took over 2 sockets on 127.0.0.1:{third}", lb.stderr_text())
        self.assertIn("hands on 5 listening sockets", lb.stderr_text())  # 2 + 2 and the admin socket
        self.assertEqual(listening_inodes(third), kept)
        self.assertFalse(listening_inodes(second))
        self.assertTrue(new.running())
        self.ask()

    def serve_many(self, count):
        def one(i):
            line = f"n {i}\n".encode()
            try:
                with harness.connect(self.port) as s:
                    s.sendall(line)
                    s.shutdown(socket.SHUT_WR)
                    data, reset = harness.recv_all(s)
                return None if data == line and not reset else (i, data, reset)
            except OSError as e:
                return (i, repr(e))
        failures = []
        lock = threading.Lock()

        def worker(start):
            for i in range(start, count, 10):
                r = one(i)
                if r:
                    with lock:
                        failures.append(r)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * harness.SCALE)
        self.assertEqual(failures, [])

    def test_an_accept_completing_after_the_stop_is_served(self):
        """The old process's worker learns of the stop in the same batch of
        completions as accepts that come after it: its thread is held (ptrace)
        while the stop reaches its ring and then connections arrive, with the
        new process stopped (SIGSTOP) so that only the held worker's accept
        takes them. Those connections were taken off the queue already: they
        are served, not closed."""
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend], workers=1))
        hold = ThreadHold(worker_threads(lb.pid)[0])
        self.addCleanup(hold.release)
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb))
        self.addCleanup(self.finish_successor, new, lb)
        mh.wait_log(lb, f"upgrade: process {new.pid} took over", timeout=SLOW)  # the stop is on the worker's ring
        os.kill(new.pid, signal.SIGSTOP)
        self.addCleanup(lambda: new.running() and os.kill(new.pid, signal.SIGCONT))
        wait_until(lambda: all_stopped(new.pid), what="every thread of the new process stopped")
        clients = []
        for i in range(10):
            s = self.connect(self.port)
            s.sendall(f"late {i}\n".encode())
            s.shutdown(socket.SHUT_WR)
            clients.append(s)
        hold.release()
        for i, s in enumerate(clients):
            data, reset = harness.recv_all(s)
            self.assertEqual((data, reset), (f"late {i}\n".encode(), False), f"connection {i}")
        os.kill(new.pid, signal.SIGCONT)
        self.wait_old_gone(lb)
        self.assertGreaterEqual(len([e for e in lb.access_log() if e["bytes_in"] > 0]), 10)

    @unittest.skipUnless(os.uname().machine == "x86_64", "reads x86_64 registers")
    def test_a_connection_woken_for_the_cancelled_accept_is_served(self):
        """The kernel wakes one accepter per connection. A connection that
        arrives after the old worker has taken the stop but before its cancel
        is submitted wakes the old accept (the first waiter), which the
        cancel then ends without taking it; the new process's accept, also
        waiting on the socket, is not woken. The old worker drains the queue
        once its accept has ended, so the connection is served at once (held
        here with ptrace at that very system call; the new process stopped)."""
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend], workers=1))
        hold = ThreadHold(worker_threads(lb.pid)[0])
        self.addCleanup(hold.release)
        lb.signal(signal.SIGUSR2)
        new = Successor(self.started_pid(lb))
        self.addCleanup(self.finish_successor, new, lb)
        mh.wait_log(lb, f"upgrade: process {new.pid} took over", timeout=SLOW)
        os.kill(new.pid, signal.SIGSTOP)
        self.addCleanup(lambda: new.running() and os.kill(new.pid, signal.SIGCONT))
        wait_until(lambda: all_stopped(new.pid), what="every thread of the new process stopped")
        io_uring_enter = 426
        hold.run_to_syscall(io_uring_enter, lambda: "ASYNC_CANCEL" in worker_ring_fdinfo(lb.pid))
        client = self.connect(self.port, timeout=SLOW)
        client.sendall(b"woken\n")
        client.shutdown(socket.SHUT_WR)
        hold.release()
        data, reset = harness.recv_all(client)
        self.assertEqual((data, reset), (b"woken\n", False))
        os.kill(new.pid, signal.SIGCONT)
        self.wait_old_gone(lb)

    def test_an_accept_completing_after_sigterm_is_served(self):
        """The same for a plain stop: connections a worker's accept took off
        the queue in the batch that also brought the stop are served."""
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend], workers=1))
        hold = ThreadHold(worker_threads(lb.pid)[0])
        self.addCleanup(hold.release)
        lb.signal(signal.SIGTERM)
        mh.wait_log(lb, "Terminated: no longer accepting")  # the stop is on the worker's ring
        clients = []
        for i in range(10):
            s = self.connect(self.port)
            s.sendall(f"late {i}\n".encode())
            s.shutdown(socket.SHUT_WR)
            clients.append(s)
        hold.release()
        for i, s in enumerate(clients):
            data, reset = harness.recv_all(s)
            self.assertEqual((data, reset), (f"late {i}\n".encode(), False), f"connection {i}")
        self.assertEqual(lb.wait_exit(), 0)
        self.assertTrue(harness.connect_refused(self.port))

    def test_four_upgrades_in_a_row_under_load(self):
        backend = self.backend(harness.echo_handler, name="m1")
        lb = self.start(self.config([backend], workers=2))
        recorder = traffic.Recorder()
        short = [traffic.ShortClients(self.port, recorder) for _ in range(8)]
        for t in short:
            t.start()
        current = None
        for round_ in range(4):
            wait_until(lambda: len(recorder.snapshot()) >= 50 * (round_ + 1), 30 * harness.SCALE,
                       "short connections flowing")
            if current is None:
                current = self.upgrade(lb)
                self.wait_old_gone(lb)
            else:
                current = self.upgrade_successor(current, lb)
        for t in short:
            t.stop.set()
        for t in short:
            t.join(60 * harness.SCALE)
        outcomes = recorder.snapshot()
        failed = [o for o in outcomes if not o.ok]
        self.assertEqual(failed, [], f"{len(failed)} of {len(outcomes)} connections failed")

    @unittest.skipUnless(IS_ROOT, "switching users needs root: run the tests as root")
    def test_the_new_process_runs_as_the_dropped_user(self):
        # As nobody, the new process must reach the binary and TSan's
        # suppressions: copies in the test's directory, not the checkout
        # (a fresh machine keeps it under /root).
        os.chmod(self.tmp.name, 0o755)
        mh.tsan_suppressions_for_nobody(self)
        binary = self.copy_binary()
        backend = self.backend(harness.echo_handler, name="m1")
        text = self.config([backend], extra_global={"user": "nobody", "group": "nogroup"})
        lb = self.start(text, binary=binary)
        os.chmod(lb.config_path, 0o644)
        nobody = str(__import__("pwd").getpwnam("nobody").pw_uid)
        self.assertEqual(status_field(lb.pid, "Uid"), [nobody] * 4)
        new = self.upgrade(lb)
        self.wait_old_gone(lb)
        self.assertEqual(status_field(new.pid, "Uid"), [nobody] * 4)
        self.ask()
        mh.get(self.admin, "/status")
        # A change of user needs root, which the new process does not have:
        # it refuses to start and the running one serves on.
        with open(lb.config_path, "w") as f:
            f.write(self.config([backend], extra_global={"user": "daemon", "group": "nogroup"}))
        count = len(mh.log_lines(lb, "upgrade: started "))
        os.kill(new.pid, signal.SIGUSR2)
        failed = self.started_pid(lb, count + 1)
        mh.wait_log(lb, f"upgrade failed: process {failed} exited with status 1", timeout=SLOW)
        self.assertIn("cannot switch to user daemon", lb.stderr_text())
        self.assertTrue(new.running())
        self.ask()


if __name__ == "__main__":
    harness.main()
