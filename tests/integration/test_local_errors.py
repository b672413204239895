"""When ringlb itself runs out of something (descriptors, pipes), it says so,
counts it, and never blames a member for it: no member is marked down, no
established session is reset, no CPU spins, and service resumes once the
resource is back. A client that leaves while its member is still being
connected ends at once, without a connect timeout against the member.

The open-file limit is lowered on the running ringlb (prlimit(2) on its pid)
to exactly the descriptors it holds plus a chosen few, so "runs out" happens
at a known point, not after thousands of connections."""

import hashlib
import os
import re
import resource
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness  # noqa: E402
from harness import LOOPBACK, MiB, WAIT, member, wait_until  # noqa: E402

POOL = "pool"
MEMBER = "m1"


def open_fds(pid):
    return {int(name) for name in os.listdir(f"/proc/{pid}/fd")}


def limit_free(pid, free):
    """Sets ringlb's soft open-file limit so that exactly `free` descriptor
    numbers below it are unused: the next `free` descriptors it opens
    succeed, the one after fails with EMFILE. Returns the limit set."""
    taken = open_fds(pid)
    n, left = 0, free
    while True:
        if n not in taken:
            if left == 0:
                break
            left -= 1
        n += 1
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, hard))
    return n


def restore_limit(pid):
    _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def echo_once(sock, payload=b"ping\n"):
    sock.sendall(payload)
    got = harness.recv_exact(sock, len(payload))
    if got != payload:
        raise AssertionError(f"echo returned {got!r}, sent {payload!r}")


def served(sock, timeout):
    """True when an echo comes back within timeout; False when the
    connection is closed or nothing comes back."""
    sock.settimeout(timeout)
    try:
        sock.sendall(b"ping\n")
        return harness.recv_exact(sock, 5) == b"ping\n"
    except (OSError, AssertionError):
        return False
    finally:
        sock.settimeout(WAIT)


def reset_close(sock):
    """Closes with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class LocalErrorsTest(harness.RinglbTest):

    def config(self, member_address, pool=None, health=None, listener=None):
        self.port = harness.free_port()
        self.admin_port = harness.free_port()
        spec = {"balance": "round_robin", "members": [member(MEMBER, member_address)]}
        spec.update(pool or {})
        if health is not None:
            spec["health"] = health
        return more_harness.build_config(
            [("front", self.port, POOL, listener or {})], {POOL: spec},
            admin={"listen": f"{LOOPBACK}:{self.admin_port}"})

    def start(self, text, nofile=None):
        wrapper = ("prlimit", f"--nofile={nofile}:{nofile}", "--") if nofile else ()
        self.lb = self.start_ringlb(text, wrapper=wrapper)
        self.addCleanup(self._restore_limit)
        return self.lb

    def _restore_limit(self):
        if self.lb.proc.poll() is None:
            restore_limit(self.lb.pid)

    def baseline_fds(self, text):
        """Descriptors a fresh ringlb holds with this config once ready."""
        lb = self.start(text)
        counts = []
        for _ in range(5):  # a probe may hold a socket for a moment
            counts.append(len(open_fds(lb.pid)))
            time.sleep(0.02)
        self.assertEqual(lb.stop(), 0, lb.stderr_text())
        return min(counts)

    def end_one_session(self, payload=b"ping\n"):
        """Runs one session to its end (its access-log line written) before
        descriptors run out. UBSan's vptr check (sanitizer builds) needs a
        pipe the first time it meets a type and reports a false "invalid
        vptr" without one; afterwards the type is in its cache."""
        s = self.connect_raw()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        harness.recv_all(s)
        client = harness.client_name(s)
        s.close()
        self.lb.entry_for(client)

    def connect_raw(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(WAIT)
        s.connect((LOOPBACK, self.port))
        return s

    def bulk_transfers_at_once(self, lb, clients):
        """Each client sends 4 MiB and half-closes, all at once; returns
        the failures (index, what came back) against the sink's answers.
        ringlb is stopped while the clients start, so each session's first
        receive finds a full buffer waiting: every flow goes bulk at once
        and asks for a pipe."""
        count = len(clients)
        streams = [harness.Stream(4 * MiB, seed=i) for i in range(count)]
        sent = [0] * count
        results = [None] * count

        def transfer(i):
            s = clients[i]
            try:
                for c in streams[i].chunks():
                    s.sendall(c)
                    sent[i] += len(c)
                s.shutdown(socket.SHUT_WR)
                results[i] = harness.recv_all(s)
            except OSError as e:
                results[i] = (repr(e).encode(), True)

        os.kill(lb.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, lb.pid, signal.SIGCONT)
        threads = [threading.Thread(target=transfer, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        wait_until(lambda: all(n >= 256 * 1024 for n in sent), what="every client sending")
        os.kill(lb.pid, signal.SIGCONT)
        for t in threads:
            t.join(60 * harness.SCALE)
        return [(i, results[i]) for i in range(count)
                if results[i] != (f"{4 * MiB} {streams[i].sha256()}\n".encode(), False)]

    def test_descriptors_exhausted_blame_no_member(self):
        backend = self.backend(harness.echo_handler, name=MEMBER)
        health = {"kind": "tcp", "interval": "100ms", "timeout": "500ms", "rise": 1, "fall": 2,
                  "passive_fall": 1, "on_down": "close"}
        baseline = self.baseline_fds(self.config(backend.address, health=health))
        # Room for exactly eleven sessions (two sockets each) under the
        # open-file limit: the victim and ten idle ones. Accepts, probes and
        # connects then all lack a descriptor.
        sessions = 11
        lb = self.start(self.config(backend.address, health=health), nofile=baseline + 2 * sessions)
        self.end_one_session()
        victim = self.connect(self.port)  # on_down = "close" would end it
        echo_once(victim)
        idle = []
        for _ in range(sessions - 1):
            # A health probe holds a descriptor for a moment: a session that
            # needed it then ends local_error, and its descriptors are free
            # again for the next try.
            for _attempt in range(5):
                s = self.connect_raw()
                if served(s, WAIT):
                    break
                s.close()
            else:
                fds = sorted(os.readlink(f"/proc/{lb.pid}/fd/{fd}") for fd in open_fds(lb.pid))
                self.fail(f"ran out of descriptors too early (baseline {baseline}): {fds}\n{lb.stderr_text()}")
            idle.append(s)
        waiting = self.connect_raw()  # stays in the accept queue for now
        waiting.sendall(b"ping\n")
        wait_until(lambda: any("accept" in line for line in more_harness.log_lines(lb, "Too many open files")),
                   what="an accept failing for lack of descriptors")

        # For several probe intervals nothing may blame the member, the
        # process must not spin, and the log must not flood.
        lines_before = len(more_harness.log_lines(lb, "Too many open files"))
        cpu_before = cpu_seconds(lb.pid)
        started = time.monotonic()
        time.sleep(3)  # a window to measure: CPU used and lines logged in it
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(lb.pid) - cpu_before
        lines = more_harness.log_lines(lb, "Too many open files")[lines_before:]
        self.assertEqual(more_harness.transition_lines(lb), [], lb.stderr_text())
        echo_once(victim, b"still here\n")
        self.assertLess(cpu, 0.25 * elapsed, f"{cpu:.2f}s of CPU in {elapsed:.1f}s: a spin")
        self.assertLessEqual(len(lines), 2 * elapsed + 2, "\n".join(lines))
        self.assertTrue(any("health probes" in line for line in lines), "\n".join(lines))

        # The idle clients leave: the waiting client and new ones are served.
        for s in idle:
            s.close()
        self.assertEqual(harness.recv_exact(waiting, 5), b"ping\n")
        fresh = self.connect(self.port)
        echo_once(fresh)
        echo_once(victim)

        # A client accepted when no socket for its member can be made is
        # closed at once with an end of its own, and no attempt.
        limit_free(lb.pid, 0)
        refused = self.connect_raw()
        harness.wait_closed_by_peer(refused)
        e = lb.entry_for(harness.client_name(refused))
        self.assertEqual((e["end"], e["attempts"], e["member"]), ("local_error", 0, None), e)
        restore_limit(lb.pid)

        m = more_harness.scrape(self.admin_port)
        self.assertEqual(m.value("ringlb_member_up", pool=POOL, member=MEMBER), 1)
        self.assertEqual(m.value("ringlb_member_health_transitions_total", pool=POOL, member=MEMBER), 0)
        self.assertEqual(m.value("ringlb_member_connect_failures_total", pool=POOL, member=MEMBER,
                                 reason="refused"), 0)
        self.assertGreaterEqual(m.value("ringlb_local_errors_total", kind="accept"), 1)
        self.assertGreaterEqual(m.value("ringlb_local_errors_total", kind="probe"), 1)
        self.assertGreaterEqual(m.value("ringlb_local_errors_total", kind="socket"), 1)
        self.assertGreaterEqual(m.value("ringlb_listener_rejected_total", listener="front",
                                        reason="local_error"), 1)
        self.assertBackendsClean(backend)

    def test_bulk_transfers_fall_back_to_copying_without_pipes(self):
        backend = self.backend(harness.sink_handler, name=MEMBER)
        lb = self.start(self.config(backend.address))
        self.end_one_session()
        count = 20
        clients = [self.connect(self.port) for _ in range(count)]
        wait_until(lambda: backend.accepted == count + 1, what="every session connected to the member")
        # One descriptor left: no pipe (two descriptors) can be made.
        limit_free(lb.pid, 1)
        failed = self.bulk_transfers_at_once(lb, clients)
        self.assertEqual(failed, [], f"{len(failed)} of {count} transfers failed")
        entries = [lb.entry_for(harness.client_name(s)) for s in clients]
        self.assertEqual([e["end"] for e in entries if e["end"] == "reset"], [])
        self.assertEqual(sum(e["bytes_in"] for e in entries), count * 4 * MiB)

        restore_limit(lb.pid)
        m = more_harness.scrape(self.admin_port)
        self.assertGreaterEqual(m.value("ringlb_local_errors_total", kind="pipe"), 1)
        self.assertBackendsClean(backend)

    def test_client_leaving_during_connect_ends_at_once(self):
        hole = self.blackhole()
        lb = self.start(self.config(hole.address, pool={"connect_timeout": "5s", "retries": 0}))
        s = self.connect(self.port)
        client = harness.client_name(s)
        wait_until(lambda: more_harness.member_status(self.admin_port, POOL, MEMBER)["active"] == 1,
                   what="ringlb connecting to the member")
        left = time.monotonic()
        reset_close(s)
        e = lb.entry_for(client, timeout=3 * harness.SCALE)
        self.assertEqual(e["end"], "client_closed", e)
        self.assertLess(time.monotonic() - left, 3 * harness.SCALE)
        self.assertLess(e["duration_ms"], 4000, e)
        wait_until(lambda: more_harness.member_status(self.admin_port, POOL, MEMBER)["active"] == 0,
                   what="the member's connection count back to 0")
        m = more_harness.scrape(self.admin_port)
        self.assertEqual(m.value("ringlb_member_connect_failures_total", pool=POOL, member=MEMBER,
                                 reason="timeout"), 0)

    def test_client_half_close_during_connect_is_kept(self):
        # A FIN is a half-close, not a departure: the request still reaches
        # the member and the answer comes back.
        backend = self.backend(harness.half_close_handler, name=MEMBER)
        self.start(self.config(backend.address))
        s = self.connect(self.port)
        s.sendall(b"request")
        s.shutdown(socket.SHUT_WR)
        data, reset = harness.recv_all(s)
        self.assertFalse(reset)
        self.assertEqual(data, harness.reply_for(hashlib.sha256(b"request").hexdigest()))

    def test_descriptor_figures_at_start(self):
        # Two sockets per session and a pipe (two descriptors) per 8
        # sessions: the global max_connections and the pipe budget are what
        # 256 leaves after the process's own.
        backend = self.backend(harness.echo_handler, name=MEMBER)
        lb = self.start(self.config(backend.address, listener={"max_connections": 1000}), nofile=256)
        line = more_harness.wait_log(lb, "open files: soft 256, hard 256; max_connections")
        m = re.search(r"max_connections (\d+) \(derived: 256 open files - (\d+) for the process, 2 per session "
                      r"and a pipe \(2\) per 8 sessions; (\d+) pipes\)", line)
        self.assertTrue(m, line)
        sessions, reserve, pipes = map(int, m.groups())
        room = 256 - reserve
        self.assertEqual(sessions, room * 8 // 18, line)
        self.assertEqual(pipes, (room - 2 * sessions) // 2, line)
        self.assertEqual(more_harness.scrape(self.admin_port).value("ringlb_pipe_budget"), pipes)

    def test_bulk_transfers_past_the_pipe_budget_copy(self):
        # 256 open files leave a budget of a few pipes (above); eight bulk
        # transfers at once: those past the budget copy through ring buffers,
        # quietly (not a local error), and every byte arrives.
        backend = self.backend(harness.sink_handler, name=MEMBER)
        lb = self.start(self.config(backend.address), nofile=256)
        line = more_harness.wait_log(lb, "open files: soft 256, hard 256; max_connections")
        pipes = int(re.search(r"; (\d+) pipes\)", line).group(1))
        count = 8
        self.assertLess(pipes, count, line)
        self.end_one_session()
        clients = [self.connect(self.port) for _ in range(count)]
        wait_until(lambda: backend.accepted == count + 1, what="every session connected to the member")
        failed = self.bulk_transfers_at_once(lb, clients)
        self.assertEqual(failed, [], f"{len(failed)} of {count} transfers failed")
        m = more_harness.scrape(self.admin_port)
        self.assertGreaterEqual(m.value("ringlb_worker_pipes_over_budget_total", worker="0"), 1)
        self.assertEqual(m.value("ringlb_local_errors_total", kind="pipe"), 0)
        self.assertEqual(m.value("ringlb_pipe_budget"), pipes)
        wait_until(lambda: more_harness.scrape(self.admin_port).value(
            "ringlb_worker_pipes", worker="0", state="in_use") == 0, what="every pipe given back")
        self.assertBackendsClean(backend)


if __name__ == "__main__":
    harness.main()
