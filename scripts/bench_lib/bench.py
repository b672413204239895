"""The bench run behind scripts/bench: ringlb against direct, HAProxy and
nginx stream on the same backends, interleaved over rounds, reported as
medians with ratios. Run it through scripts/bench, which installs the
tools, builds ringlb, raises the descriptor limit and cleans up."""

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import report  # noqa: E402
from contenders import Backends, Contender, HAProxy, NginxStream, Ringlb  # noqa: E402
from procs import ephemeral_range, pick_ports, rss_kib  # noqa: E402
from workloads import IdleConnections, run_iperf, run_wrk, settled_rss  # noqa: E402
import tls_section  # noqa: E402

SECTIONS = ("plain", "tls")

WRK_CONNECTIONS = 50


def parse_args():
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Measures ringlb against no proxy, HAProxy and nginx stream "
                    "on the same backends, in one interleaved run (shared/PERF.md).")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 rounds, 2 s wrk and 1 s iperf3 runs, "
                        "500/2,000 idle connections, 500 idle TLS (a few minutes)")
    p.add_argument("--only", choices=SECTIONS,
                   help="one section: plain (TCP proxying) or tls (TLS termination); "
                        "default: both")
    p.add_argument("--workers", type=int, default=1,
                   help="ringlb workers = HAProxy nbthread = nginx worker_processes (1)")
    p.add_argument("--rounds", type=int, help="rounds (3; --quick: 2)")
    p.add_argument("--duration", type=int, help="seconds of each wrk run (5; --quick: 2)")
    p.add_argument("--iperf-duration", type=int,
                   help="seconds of each iperf3 run (5; --quick: 1)")
    p.add_argument("--idle", help="two idle connection counts, FEW,MANY "
                                  "(2000,8000; --quick: 500,2000)")
    p.add_argument("--tls-idle", type=int,
                   help="idle TLS connections for the TLS memory figure (2000; --quick: 500)")
    p.add_argument("--json", help="where to write the raw results "
                                  "(build-release/bench/bench-DATE.json)")
    p.add_argument("--ringlb", help="the ringlb binary (scripts/bench builds one)")
    p.add_argument("--base-port", type=int,
                   help="first port to try for backends and proxies "
                        "(random, below the ephemeral range)")
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    p.add_argument("--command-line", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.rounds = a.rounds or (2 if a.quick else 3)
    a.duration = a.duration or (2 if a.quick else 5)
    a.iperf_duration = a.iperf_duration or (1 if a.quick else 5)
    a.tls_idle = a.tls_idle or (500 if a.quick else 2000)
    if not 0 < a.tls_idle <= 8900:
        p.error("--tls-idle takes 0 < N <= 8900 (2 descriptors per proxied connection)")
    a.sections = (a.only,) if a.only else SECTIONS
    a.idle = tuple(int(n) for n in (a.idle or ("500,2000" if a.quick else "2000,8000")).split(","))
    if len(a.idle) != 2 or not 0 < a.idle[0] <= a.idle[1] <= 8900:
        p.error("--idle takes FEW,MANY with 0 < FEW <= MANY <= 8900: a proxied "
                "connection costs the proxy 2 descriptors of the 20,000 allowed "
                "(HAProxy is given maxconn 9000)")
    if not a.ringlb or not a.tmp:
        p.error("run it through scripts/bench (--ringlb and --tmp are missing)")
    cwd = os.environ.get("BENCH_CWD", os.getcwd())
    a.ringlb = os.path.join(cwd, a.ringlb)
    if a.json:
        a.json = os.path.join(cwd, a.json)
    return a


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def first_line(argv):
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (run.stdout + run.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def git_revision():
    def git(*args):
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                              text=True).stdout.strip()
    rev = git("rev-parse", "--short", "HEAD") or "?"
    return rev + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_plan(workers):
    """(proxy CPUs, load CPUs) as taskset lists: the proxies get the first
    WORKERS CPUs, clients and backends the rest. None, None when there are
    too few CPUs to separate them."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= workers:
        return None, None
    proxy, load = cpus[:workers], cpus[workers:]
    return ",".join(map(str, proxy)), ",".join(map(str, load))


def check_http(port):
    """One GET through PORT: the contender really reaches a backend."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or body != b"ok\n":
            raise RuntimeError(f"GET through port {port}: {response.status} {body!r}")
    finally:
        conn.close()


def measure(contender, args, backends, load_cpus):
    """Every workload against one freshly started contender; the raw results.

    Idle memory comes first, while the proxy holds nothing but what one
    request warmed up: measured later, memory that earlier workloads touched
    and freed would be reused and hide the cost of a connection."""
    raw, errors = {}, []

    def attempt(key, fn):
        try:
            raw[key] = fn()
        except Exception as e:  # one failed workload must not lose the others
            errors.append(f"{key}: {e}")
            log(f"    {key} FAILED: {e}")

    pids = contender.pids
    few, many = args.idle

    def wrk(conns, close=False):
        return run_wrk(contender.http_port, args.duration, conns, close, load_cpus, pids())

    def iperf(reverse):
        """iperf3 -s can still be busy with the previous test while its end
        travels through the proxy: wait a little, and try twice."""
        for attempt_number in (1, 2):
            time.sleep(0.3)
            try:
                return run_iperf(contender.bulk_port, args.iperf_duration, reverse,
                                 load_cpus, pids())
            except Exception as e:
                backends.restart_iperf()
                if attempt_number == 2:
                    raise
                log(f"    {contender.name:7} iperf3 failed ({e}); once more")

    def idle_then_many():
        """RSS with FEW and MANY idle connections held, then keep-alive
        requests while MANY are held."""
        idle = IdleConnections(args.tmp, contender.http_port,
                               backends.http_ports, load_cpus)
        try:
            rss = {}
            if contender.is_proxy:
                rss["0"] = settled_rss(pids())
            for n in (few, many):
                idle.open(n)
                rss[str(n)] = settled_rss(pids())  # (also: let the backends settle)
            if not contender.is_proxy:
                rss = {}
            if rss:
                raw["idle"] = {"rss_kib": rss}
                per = ", ".join(f"{(rss[str(n)] - rss['0']) / n:.2f} KiB/conn at {n:,}"
                                for n in (few, many))
                log(f"    {contender.name:7} idle: RSS {rss['0']:,} KiB with none, {per}")
            return wrk(WRK_CONNECTIONS)
        finally:
            idle.close()

    attempt("many", idle_then_many)
    show(contender.name, f"keep-alive, {many:,} idle", raw.get("many"))
    attempt("keepalive", lambda: wrk(WRK_CONNECTIONS))
    show(contender.name, "keep-alive", raw.get("keepalive"))
    attempt("close", lambda: wrk(WRK_CONNECTIONS, close=True))
    show(contender.name, "Connection: close", raw.get("close"))
    attempt("bulk_fwd", lambda: iperf(False))
    attempt("bulk_rev", lambda: iperf(True))
    if "bulk_fwd" in raw and "bulk_rev" in raw:
        log(f"    {contender.name:7} bulk: {raw['bulk_fwd']['gbps']:.2f} Gbit/s, "
            f"-R {raw['bulk_rev']['gbps']:.2f} Gbit/s")
    if errors:
        raw["errors"] = errors
    return raw


def show(name, what, result):
    if not result:
        return
    text = (f"    {name:7} {what}: {result['rps']:,.0f} req/s, "
            f"p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms")
    if "cpu_per_100k" in result:
        text += f", {result['cpu_per_100k']:.2f} CPU s/100k"
    if result["errors"] or result["non_2xx"]:
        text += f" ({result.get('socket_errors', '')} non-2xx {result['non_2xx']})"
    log(text)


def main():
    # scripts/bench stops the run with SIGTERM: unwind, so that the finally
    # blocks stop the proxies and backends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    started = time.monotonic()
    all_cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    proxy_cpus, load_cpus = cpu_plan(args.workers)
    if load_cpus:
        os.sched_setaffinity(0, [int(c) for c in load_cpus.split(",")])
    else:
        load_cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))

    low, _ = ephemeral_range()
    base = args.base_port or random.randrange(max(low - 12000, 10000), low - 2000, 100)
    ports = pick_ports(10 + tls_section.PORTS_NEEDED, base)
    backends = Backends(args.tmp, ports[0:3], ports[3], load_cpus)
    contenders = [
        Contender(args.tmp, backends),
        HAProxy(args.tmp, backends, ports[4:6], args.workers, proxy_cpus),
        NginxStream(args.tmp, backends, ports[6:8], args.workers, proxy_cpus),
        Ringlb(args.tmp, backends, ports[8:10], args.workers, proxy_cpus, args.ringlb),
    ]
    balance = contenders[3].choose_balance()
    tls = None
    if "tls" in args.sections:
        tls = tls_section.TlsSection(args, backends, ports[10:], proxy_cpus, load_cpus,
                                     all_cpus, balance)

    date = datetime.datetime.now().astimezone()
    meta = {
        "date": date.isoformat(timespec="seconds"),
        "command_line": args.command_line or " ".join(sys.argv),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "workers": args.workers,
        "proxy_cpus": proxy_cpus,
        "load_cpus": load_cpus,
        "rounds": args.rounds,
        "wrk": f"wrk -t1 -c{WRK_CONNECTIONS} -d{args.duration}s --latency",
        "iperf_seconds": args.iperf_duration,
        "idle_counts": list(args.idle),
        "ringlb_balance": balance,
        "ringlb_binary": args.ringlb,
        "ringlb_revision": git_revision(),
        "versions": {
            "ringlb": first_line([args.ringlb, "--version"]),
            "haproxy": first_line(["haproxy", "-v"]),
            "nginx": first_line(["nginx", "-v"]),
            "wrk": first_line(["wrk", "-v"]),
            "iperf3": first_line(["iperf3", "--version"]),
        },
        "loadavg_start": loadavg(),
        "sections": list(args.sections),
        "contenders": {c.name: c.describe() for c in contenders},
    }
    if tls:
        meta["tls_contenders"] = tls.describe()
        meta["versions"]["openssl"] = first_line(["openssl", "version"])
    if proxy_cpus:
        pinning = (f"proxies pinned to CPU {proxy_cpus}; clients (wrk, iperf3, idle "
                   f"client) and backends (nginx, iperf3 -s) pinned to CPU {load_cpus} "
                   f"(taskset), so \"direct\" runs client and backend on one CPU")
    else:
        pinning = "no CPU pinning (too few CPUs for the worker count)"
    meta["pinning"] = pinning
    log(f"bench: sections {', '.join(args.sections)}; {args.rounds} round(s) of "
        f"direct, haproxy, nginx, ringlb; {meta['wrk']}; iperf3 -t{args.iperf_duration}; "
        f"idle {args.idle[0]:,} and {args.idle[1]:,}; idle TLS {args.tls_idle:,}")
    log(f"bench: {pinning}")

    raw = {c.name: [] for c in contenders}
    tls_raw = {}
    try:
        if tls:
            tls.prepare()
        backends.start()
        for r in range(args.rounds if "plain" in args.sections else 0):
            for c in contenders:
                log(f"round {r + 1}/{args.rounds}: {c.name}")
                began = time.monotonic()
                try:
                    c.start()
                    check_http(c.http_port)
                    result = measure(c, args, backends, load_cpus)
                    if c.is_proxy:
                        result["rss_kib_end"] = rss_kib(c.pids())
                except Exception as e:
                    log(f"    {c.name} FAILED: {e}")
                    result = {"errors": [str(e)]}
                finally:
                    c.stop()
                result["seconds"] = round(time.monotonic() - began, 1)
                raw[c.name].append(result)
                time.sleep(0.2)
        if tls:
            tls_raw = tls.run()
    finally:
        for c in contenders:
            c.stop()
        backends.stop()

    meta["loadavg_end"] = loadavg()
    meta["elapsed_seconds"] = round(time.monotonic() - started, 1)
    per_round = {name: [report.round_figures(r, args.idle) for r in rounds]
                 for name, rounds in raw.items()}
    meds = {name: report.medians(rounds) for name, rounds in per_round.items()}
    table = report.table(meds, args.idle)
    targets = report.targets_text(meds, args.idle)
    tls_text = tls_per_round = tls_meds = None
    if tls:
        tls_text, tls_per_round, tls_meds = tls_section.report(tls_raw, args, meta)

    header_lines = [
        f"# ringlb bench, {meta['date']}",
        "",
        f"- command: `{meta['command_line']}`",
        f"- machine: nproc {meta['nproc']}, kernel {meta['kernel']}, "
        f"load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end",
        f"- workers: {args.workers} for every proxy; {pinning}",
        f"- ringlb {git_revision()}, balance \"{balance}\"; "
        f"{meta['versions']['haproxy']}; {meta['versions']['nginx']}"
        + (f"; {meta['versions']['openssl']}" if tls else ""),
    ]
    if "plain" in args.sections:
        header_lines += [
            f"- contenders: " + "; ".join(meta["contenders"][c] for c in report.CONTENDERS),
            f"- {args.rounds} interleaved round(s) (direct, haproxy, nginx, ringlb), medians; "
            f"{meta['wrk']} (+ `-H 'Connection: close'`); iperf3 -t{args.iperf_duration} -J "
            f"(and -R); idle connections held by a separate client",
        ]
    if tls:
        header_lines += [
            f"- TLS contenders: " + "; ".join(meta["tls_contenders"][c]
                                             for c in tls_section.CONTENDERS),
            f"- TLS: {args.rounds} interleaved round(s), medians",
        ]
    header_lines.append(f"- {meta['elapsed_seconds']:.0f} s in all")
    header_lines.append("- ↑ higher is better, ↓ lower is better; ratios are ringlb's value "
                        "divided by the other's")
    header = "\n".join(header_lines)
    errors = [f"- {name}, round {i + 1}: {e}"
              for name, rounds in raw.items()
              for i, r in enumerate(rounds) for e in r.get("errors", [])]
    for name, rounds in raw.items():
        for i, r in enumerate(rounds):
            for key in ("keepalive", "close", "many"):
                w = r.get(key)
                if w and (w["errors"] or w["non_2xx"]):
                    errors.append(f"- {name}, round {i + 1}, {key}: "
                                  f"{w.get('socket_errors', '')} non-2xx {w['non_2xx']}")
    text = header
    if "plain" in args.sections:
        text += "\n\n" + table + "\n\nPERF.md targets (ringlb):\n\n" + targets
        if errors:
            text += "\n\nErrors:\n\n" + "\n".join(errors)
    if tls:
        text += "\n\n" + tls_text

    json_path = args.json or os.path.join(
        REPO, "build-release", "bench", f"bench-{date.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "raw": raw, "per_round": per_round,
                   "medians": meds, "tls_raw": tls_raw, "tls_per_round": tls_per_round,
                   "tls_medians": tls_meds, "table_markdown": text}, f, indent=2)
    md_path = os.path.splitext(json_path)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(text + "\n")

    print(text)
    print(f"\nraw results: {json_path}\n(table also in {md_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
