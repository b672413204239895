"""The workloads: wrk (keep-alive and Connection: close), iperf3 (both
directions) and idle connections, each measured with the proxy's CPU time
or resident memory around it."""

import json
import os
import re
import resource
import subprocess
import sys
import time

from procs import Daemon, context_switches, cpu_seconds, established_count, rss_kib

HERE = os.path.dirname(os.path.abspath(__file__))

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out):
    """requests, requests/s, p50/p99 latency (ms) and error counts from
    the output of `wrk --latency`."""
    result = {"errors": 0, "non_2xx": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not m:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    result["requests"] = int(m.group(1))
    result["seconds"] = _ms(m.group(2) + m.group(3)) / 1000
    m = re.search(r"requests in [\d.]+\w+, ([\d.]+)([KMGT]?B) read", out)
    if m:
        result["read_bytes"] = float(m.group(1)) * _BYTES[m.group(2)]
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[key] = _ms(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        result["errors"] = sum(int(g) for g in m.groups())
        result["socket_errors"] = m.group(0)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        result["non_2xx"] = int(m.group(1))
    return result


def run_wrk(port, seconds, connections, close, load_cpus, proxy_pids, url=None, env=None,
            extra=()):
    """wrk -t1 against 127.0.0.1:PORT (or URL, with ENV added to its
    environment and EXTRA arguments), with the proxy's CPU seconds over the
    run and per 100,000 requests, its voluntary and involuntary context
    switches per 1,000 requests, and wrk's own CPU seconds."""
    argv = ["taskset", "-c", load_cpus, "wrk", "-t1", f"-c{connections}",
            f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv += extra
    argv.append(url or f"http://127.0.0.1:{port}/")
    cpu_before = cpu_seconds(proxy_pids)
    switches_before = context_switches(proxy_pids)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                         env=dict(os.environ, **env) if env else None)
    cpu = cpu_seconds(proxy_pids) - cpu_before
    switches_after = context_switches(proxy_pids)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime
                  - children_before.ru_utime - children_before.ru_stime)
    if run.returncode != 0:
        raise RuntimeError(f"wrk failed: {run.stderr or run.stdout}")
    result = parse_wrk(run.stdout)
    result["client_cpu_s"] = client_cpu
    if proxy_pids:
        result["proxy_cpu_s"] = cpu
        result["cpu_per_100k"] = cpu / max(result["requests"], 1) * 100_000
        voluntary, involuntary = (after - before for after, before
                                  in zip(switches_after, switches_before))
        result["voluntary_ctxt_switches"] = voluntary
        result["involuntary_ctxt_switches"] = involuntary
        result["voluntary_per_1k"] = voluntary / max(result["requests"], 1) * 1000
        result["involuntary_per_1k"] = involuntary / max(result["requests"], 1) * 1000
    return result


def run_iperf(port, seconds, reverse, load_cpus, proxy_pids):
    """iperf3 -c 127.0.0.1:PORT for SECONDS (-R with REVERSE): Gbit/s as
    received, bytes received, and the proxy's CPU seconds."""
    argv = ["taskset", "-c", load_cpus, "iperf3", "-c", "127.0.0.1", "-p", str(port),
            "-t", str(seconds), "-J"]
    if reverse:
        argv.append("-R")
    cpu_before = cpu_seconds(proxy_pids)
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    cpu = cpu_seconds(proxy_pids) - cpu_before
    try:
        report = json.loads(run.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 printed no JSON: {run.stderr or run.stdout}")
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    received = report["end"]["sum_received"]
    result = {"gbps": received["bits_per_second"] / 1e9, "bytes": received["bytes"]}
    if proxy_pids:
        result["proxy_cpu_s"] = cpu
    return result


class IdleConnections:
    """Idle connections to 127.0.0.1:PORT, held by idle_client.py in a
    process of its own, counted as established at the backend ports."""

    def __init__(self, tmp, port, backend_ports, load_cpus, tls=False):
        """With TLS, each connection completes a TLS handshake first."""
        self.backend_ports = backend_ports
        # A connection that was just used (the check before a measurement)
        # may still be closing at a backend: counted in the baseline, its
        # end would leave one idle connection short.
        deadline = time.monotonic() + 10
        while established_count(backend_ports) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.baseline = established_count(backend_ports)
        self.held = 0
        self.client = Daemon("idle-client",
                             [sys.executable, os.path.join(HERE, "idle_client.py"),
                              "127.0.0.1", str(port)] + (["--tls"] if tls else []),
                             tmp, load_cpus, pipes=True)

    def open(self, total, step=1000, timeout=30.0):
        """Opens connections until TOTAL are held and the backends have
        accepted all of them (so each is proxied end to end)."""
        while self.held < total:
            want = min(total, self.held + step)
            self.client.proc.stdin.write(f"open {want}\n")
            answer = self.client.proc.stdout.readline().strip()
            if answer != f"open {want}":
                raise RuntimeError(f"idle client: {answer or 'exited'}\n"
                                   f"{self.client.log_tail()}")
            self.held = want
            deadline = time.monotonic() + timeout
            while established_count(self.backend_ports) < self.baseline + want:
                if time.monotonic() > deadline:
                    seen = established_count(self.backend_ports) - self.baseline
                    raise RuntimeError(f"only {seen} of {want} idle connections "
                                       "reached the backends")
                time.sleep(0.05)

    def close(self, timeout=15.0):
        if self.client.alive():
            try:
                self.client.proc.stdin.write("close\n")
                self.client.proc.stdin.flush()
                self.client.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.client.stop()
        # Let the backends see the ends before the next measurement.
        deadline = time.monotonic() + timeout
        while (established_count(self.backend_ports) > self.baseline
               and time.monotonic() < deadline):
            time.sleep(0.1)


def settled_rss(pids, settle=0.5):
    """Proxy RSS (KiB) after SETTLE seconds of quiet."""
    time.sleep(settle)
    return rss_kib(pids)
