"""Starting and stopping the processes a bench run owns, and reading their
cost (CPU time, resident memory) from /proc."""

import os
import signal
import socket
import subprocess
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Daemon:
    """A background process in its own process group, pinned with taskset.

    Its pid is appended to TMP/pids and its environment carries
    RINGLB_BENCH_TMP=TMP, so that scripts/bench can stop it even if this
    Python process dies first."""

    def __init__(self, name, argv, tmp, cpus=None, cwd=None, pipes=False):
        """With PIPES, standard input and output are pipes to this process
        (text, line-buffered) and only standard error goes to the log."""
        self.name = name
        self.tmp = tmp
        self.log_path = os.path.join(tmp, f"{name}.log")
        env = dict(os.environ, RINGLB_BENCH_TMP=tmp)
        if cpus:
            argv = ["taskset", "-c", cpus] + argv
        self.argv = argv
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log, stderr=log,
                cwd=cwd or tmp, env=env, start_new_session=True,
                text=pipes, bufsize=1 if pipes else -1)
        with open(os.path.join(tmp, "pids"), "a") as f:
            f.write(f"{self.proc.pid}\n")

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def pids(self):
        """The process and its descendants (nginx: master and workers)."""
        return process_tree(self.proc.pid)

    def log_tail(self, lines=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=6.0):
        """SIGTERM to the process, then SIGKILL to its whole group if it has
        not exited within TIMEOUT seconds."""
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass


def children(pid):
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def process_tree(pid):
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children(p)
    return tree


def cpu_seconds(pids):
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
    return ticks / CLOCK_TICKS


def context_switches(pids):
    """(voluntary, involuntary) context switches of the processes, summed
    over their threads (/proc/PID/task/*/status). A thread that exits
    takes its counts with it: sample long-lived processes only."""
    voluntary = involuntary = 0
    for pid, tid in threads_of(pids):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except OSError:
            continue
    return voluntary, involuntary


def threads_of(pids):
    """(pid, tid) of every thread of the running processes (those gone
    are skipped)."""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            yield pid, tid


def thread_count(pids):
    """How many threads the processes have, together."""
    return sum(1 for _ in threads_of(pids))


def set_affinity(pids, cpus):
    """Moves every thread of the running processes to CPUS (a taskset
    list such as "0,1")."""
    allowed = {int(c) for c in cpus.split(",")}
    for _, tid in threads_of(pids):
        try:
            os.sched_setaffinity(int(tid), allowed)
        except OSError:
            continue


def rss_kib(pids):
    """The sum of VmRSS of the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_ports(count, base):
    """COUNT free TCP ports on 127.0.0.1 from BASE upwards. BASE should lie
    below the ephemeral range, so that no outgoing connection of the run
    takes a port before the proxy that owns it starts."""
    ports, port = [], base
    while len(ports) < count:
        if port > 65535:
            raise RuntimeError("no free ports")
        if port_is_free(port):
            ports.append(port)
        port += 1
    return ports


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = f.read().split()
            return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def wait_for_port(port, daemon=None, timeout=10.0):
    """Until something accepts TCP connections on 127.0.0.1:PORT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None and not daemon.alive():
            raise RuntimeError(f"{daemon.name} exited:\n{daemon.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s"
                       + (f":\n{daemon.log_tail()}" if daemon else ""))


def established_count(local_ports):
    """How many ESTABLISHED IPv4 TCP sockets have one of LOCAL_PORTS as their
    local port: at a backend, the connections it has accepted (including
    those still in its accept queue)."""
    wanted = {f"{p:04X}" for p in local_ports}
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split(None, 4)
            if fields[3] == "01" and fields[1].rpartition(":")[2] in wanted:
                count += 1
    return count
