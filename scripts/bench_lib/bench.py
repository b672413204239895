"""The bench run behind scripts/bench: ringlb against direct, HAProxy and
nginx stream on the same backends, in up to three modes (pinned, unpinned,
as deployed: see modes.py), interleaved over rounds, reported as medians
with ratios, one table per mode. Run it through scripts/bench, which
installs the tools, builds ringlb, raises the descriptor limit and cleans
up."""

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
from modes import NAMES as MODE_NAMES, plan as plan_modes  # noqa: E402
from procs import ephemeral_range, pick_ports, rss_kib, thread_count  # noqa: E402
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
    p.add_argument("--modes", default=",".join(MODE_NAMES),
                   help="the TCP section's modes, comma-separated: pinned (each proxy with "
                        "--workers workers, pinned), unpinned (one worker each, nothing "
                        "pinned), deployed (unpinned, every proxy on its defaults); "
                        "default: all three, interleaved in each round")
    p.add_argument("--workers", type=int, default=1,
                   help="ringlb workers = HAProxy nbthread = nginx worker_processes in the "
                        "pinned mode and the TLS section (1)")
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
    asked = set(a.modes.split(","))
    if not asked <= set(MODE_NAMES):
        p.error(f"--modes takes a comma-separated list of {', '.join(MODE_NAMES)}")
    a.modes = [m for m in MODE_NAMES if m in asked]
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


def measure(contender, mode, args, backends):
    """Every workload of MODE against one freshly started contender; the raw
    results.

    Idle memory (pinned mode only) comes first, while the proxy holds
    nothing but what one request warmed up: measured later, memory that
    earlier workloads touched and freed would be reused and hide the cost
    of a connection."""
    raw, errors = {}, []

    def attempt(key, fn):
        try:
            raw[key] = fn()
        except Exception as e:  # one failed workload must not lose the others
            errors.append(f"{key}: {e}")
            log(f"    {key} FAILED: {e}")

    pids = contender.pids
    load_cpus = mode.load_cpus
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

    if mode.measures_idle:
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
        text += (f", {result['cpu_per_100k']:.2f} CPU s/100k, context switches per 1k "
                 f"{result['voluntary_per_1k']:.1f} voluntary, "
                 f"{result['involuntary_per_1k']:.1f} involuntary")
    if result["errors"] or result["non_2xx"]:
        text += f" ({result.get('socket_errors', '')} non-2xx {result['non_2xx']})"
    log(text)


def make_contenders(mode, args, backends, ports, balance):
    """The four contenders of MODE, in the order they run in each round.
    PORTS: (http, bulk) for HAProxy, nginx and ringlb in turn; the modes
    run one after the other, so they share them."""
    ringlb = Ringlb(args.tmp, backends, ports[4:6], mode.workers, mode.proxy_cpus, args.ringlb)
    ringlb.balance = balance
    return [
        Contender(args.tmp, backends),
        HAProxy(args.tmp, backends, ports[0:2], mode.workers, mode.proxy_cpus),
        NginxStream(args.tmp, backends, ports[2:4], mode.workers, mode.proxy_cpus),
        ringlb,
    ]


def run_one(contender, mode, args, backends):
    """Starts CONTENDER, measures it in MODE and stops it: its raw results."""
    began = time.monotonic()
    try:
        contender.start()
        check_http(contender.http_port)
        result = measure(contender, mode, args, backends)
        if contender.is_proxy:
            result["rss_kib_end"] = rss_kib(contender.pids())
            result["threads"] = thread_count(contender.pids())
    except Exception as e:
        log(f"    {contender.name} FAILED: {e}")
        result = {"errors": [str(e)]}
    finally:
        contender.stop()
    result["seconds"] = round(time.monotonic() - began, 1)
    return result


def main():
    # scripts/bench stops the run with SIGTERM: unwind, so that the finally
    # blocks stop the proxies and backends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    started = time.monotonic()
    all_modes = plan_modes(args.workers)
    pinned = all_modes[0]
    plain = "plain" in args.sections
    modes = [m for m in all_modes if plain and m.name in args.modes]
    all_cpus = all_modes[1].load_cpus
    # The driver, and whatever it starts without taskset, stays off the
    # pinned proxies' CPUs; the unpinned modes start everything with
    # taskset on every CPU.
    os.sched_setaffinity(0, [int(c) for c in pinned.load_cpus.split(",")])

    low, _ = ephemeral_range()
    base = args.base_port or random.randrange(max(low - 12000, 10000), low - 2000, 100)
    ports = pick_ports(10 + tls_section.PORTS_NEEDED, base)
    backends = Backends(args.tmp, ports[0:3], ports[3], pinned.load_cpus)
    balance = Ringlb(args.tmp, backends, ports[8:10], args.workers, None,
                     args.ringlb).choose_balance()  # (checks a config, starts nothing)
    contenders = {m.name: make_contenders(m, args, backends, ports[4:10], balance)
                  for m in modes}
    tls = None
    if "tls" in args.sections:
        tls = tls_section.TlsSection(args, backends, ports[10:], pinned.proxy_cpus,
                                     pinned.load_cpus, all_cpus, balance)

    date = datetime.datetime.now().astimezone()
    meta = {
        "date": date.isoformat(timespec="seconds"),
        "command_line": args.command_line or " ".join(sys.argv),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "workers": args.workers,
        "proxy_cpus": pinned.proxy_cpus,
        "load_cpus": pinned.load_cpus,
        "pinning": pinned.pinning,
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
        "modes": {m.name: dict(m.describe(),
                               contenders={c.name: c.describe() for c in contenders[m.name]})
                  for m in modes},
    }
    if tls:
        meta["tls_contenders"] = tls.describe()
        meta["versions"]["openssl"] = first_line(["openssl", "version"])
    log(f"bench: sections {', '.join(args.sections)}; {args.rounds} round(s) of "
        f"direct, haproxy, nginx, ringlb"
        + (f" in modes {', '.join(args.modes)}" if plain else "")
        + f"; {meta['wrk']}; iperf3 -t{args.iperf_duration}; "
        f"idle {args.idle[0]:,} and {args.idle[1]:,}; idle TLS {args.tls_idle:,}")
    for m in modes or [pinned]:
        log(f"bench: {m.name}: {m.pinning}")

    raw = {m.name: {c.name: [] for c in contenders[m.name]} for m in modes}
    tls_raw = {}
    try:
        if tls:
            tls.prepare()
        backends.start()
        for r in range(args.rounds if modes else 0):
            for m in modes:
                backends.pin(m.load_cpus)
                for c in contenders[m.name]:
                    log(f"round {r + 1}/{args.rounds}, {m.name}: {c.name}")
                    raw[m.name][c.name].append(run_one(c, m, args, backends))
                    time.sleep(0.2)
        if tls:
            backends.pin(pinned.load_cpus)
            tls_raw = tls.run()
    finally:
        for c in (c for cs in contenders.values() for c in cs):
            c.stop()
        backends.stop()

    meta["loadavg_end"] = loadavg()
    meta["elapsed_seconds"] = round(time.monotonic() - started, 1)
    per_round = {m: {name: [report.round_figures(r, args.idle) for r in rounds]
                     for name, rounds in by_name.items()}
                 for m, by_name in raw.items()}
    meds = {m: {name: report.medians(rounds) for name, rounds in by_name.items()}
            for m, by_name in per_round.items()}
    tls_text = tls_per_round = tls_meds = None
    if tls:
        tls_text, tls_per_round, tls_meds = tls_section.report(tls_raw, args, meta)

    header_lines = [
        f"# ringlb bench, {meta['date']}",
        "",
        f"- command: `{meta['command_line']}`",
        f"- machine: nproc {meta['nproc']}, kernel {meta['kernel']}, "
        f"load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end",
        f"- ringlb {git_revision()}, balance \"{balance}\"; "
        f"{meta['versions']['haproxy']}; {meta['versions']['nginx']}"
        + (f"; {meta['versions']['openssl']}" if tls else ""),
    ]
    if plain:
        header_lines += [
            f"- TCP proxying: {args.rounds} round(s), each running direct, haproxy, nginx, "
            f"ringlb in turn in each mode ({', '.join(args.modes)}), medians; "
            f"{meta['wrk']} (+ `-H 'Connection: close'`); iperf3 -t{args.iperf_duration} -J "
            f"(and -R); "
            + ("idle connections (pinned mode) held by a separate client; "
               if "pinned" in args.modes else "")
            + f"context switches: voluntary_ctxt_switches and nonvoluntary_ctxt_switches "
            f"of every proxy thread (/proc/PID/task/*/status) over each wrk run",
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
    text = "\n".join(header_lines)
    if plain:
        for m in modes:
            text += "\n\n" + report.mode_section(m, meta["modes"][m.name]["contenders"],
                                                 raw[m.name], per_round[m.name],
                                                 meds[m.name], args.idle)
    if tls:
        text += "\n\n" + tls_text

    json_path = args.json or os.path.join(
        REPO, "build-release", "bench", f"bench-{date.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w") as f:
        # raw, per_round and medians: {mode: {contender: ...}}
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
