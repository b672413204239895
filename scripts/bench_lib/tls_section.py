"""The TLS section of scripts/bench: TLS terminated by each contender in
front of the plaintext HTTP backends (issue 10, "Benchmark"; PERF.md, "TLS").

Per round, interleaved like the plaintext section: direct (the backend
nginx terminates TLS itself), HAProxy, nginx stream and ringlb, one worker
each, pinned as the plaintext section pins them:
  idle      RSS per idle TLS connection (handshake done, then nothing)
  full_*    full handshakes/s, ECDSA P-256 and RSA-2048: wrk -c50 with
            `Connection: close`; the wrk shim drops the session before each
            handshake and counts: every handshake must be a full one
  resumed   resumed handshakes/s: the same wrk run without dropping the
            session (wrk keeps it across SSL_clear), at least 90% resumed
  keepalive wrk -c50 keep-alive over TLS, proxy CPU per request
  bulk      wrk -c4 GETs of a 64 MiB body: the proxy reads plaintext and
            encrypts, the client only decrypts
  upload    wrk -c4 POSTs of a 4 MiB body: the proxy decrypts
then, with nothing pinned, full ECDSA handshakes/s of HAProxy and ringlb
with 1 and with 2 workers (the 2-worker / 1-worker ratio)."""

import http.client
import os
import ssl
import subprocess
import sys
import time

from procs import rss_kib
from report import medians
from tls_contenders import (KEY_KINDS, TlsDirect, TlsHAProxy, TlsNginxStream, TlsRinglb,
                            backend_tls_servers, build_wrk_shim, make_certificates)
from workloads import IdleConnections, run_wrk, settled_rss

CONTENDERS = ("direct", "haproxy", "nginx", "ringlb")
SCALED = ("haproxy", "ringlb")
WRK_CONNECTIONS = 50
BULK_CONNECTIONS = 4
BULK_BYTES = 64 * 1024 * 1024
UPLOAD_BYTES = 4 * 1024 * 1024
RESUMED_AT_LEAST = 0.9
PORTS_NEEDED = 8


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Figure:
    def __init__(self, key, source, label, fmt, better, target=None):
        self.key = key
        # ringlb/other columns: not for shares of a run nor for a ratio already
        self.ratios = not ("busy" in key or "share" in key or key.startswith("scale_"))
        self.source = source        # the raw workload it comes from
        self.label = label
        self.fmt = fmt
        self.better = better        # "higher" or "lower"
        self.target = target        # (op, limit, against): against "haproxy" or None (ringlb's value)


def figures(idle_count):
    return [
        Figure("full_ecdsa_hs", "full_ecdsa", "full handshakes/s, ECDSA P-256", ",.0f", "higher",
               (">=", 1.5, "haproxy")),
        Figure("full_ecdsa_cpu_us", "full_ecdsa", "proxy CPU µs per full handshake, ECDSA",
               ",.0f", "lower"),
        Figure("full_ecdsa_proxy_busy", "full_ecdsa",
               "proxy CPU busy during full ECDSA handshakes, % of a core", ".0f", "lower"),
        Figure("full_ecdsa_client_busy", "full_ecdsa",
               "wrk CPU busy during full ECDSA handshakes, % of a core", ".0f", "lower"),
        Figure("full_rsa_hs", "full_rsa", "full handshakes/s, RSA-2048", ",.0f", "higher"),
        Figure("full_rsa_cpu_us", "full_rsa", "proxy CPU µs per full handshake, RSA", ",.0f",
               "lower"),
        Figure("resumed_hs", "resumed", "resumed handshakes/s, ECDSA", ",.0f", "higher"),
        Figure("resumed_share", "resumed", "share of those handshakes resumed, %", ".0f",
               "higher"),
        Figure("resumed_cpu_us", "resumed", "proxy CPU µs per resumed handshake", ",.0f", "lower"),
        Figure("ka_rps", "keepalive", "keep-alive req/s over TLS (wrk -c50)", ",.0f", "higher",
               (">=", 1.2, "haproxy")),
        Figure("ka_p99_ms", "keepalive", "keep-alive p99 latency over TLS, ms", ".3f", "lower"),
        Figure("ka_cpu", "keepalive", "proxy CPU s per 100k keep-alive TLS requests", ".2f",
               "lower", ("<=", 0.8, "haproxy")),
        Figure("bulk_gbps", "bulk", "bulk Gbit/s through TLS, server to client", ".2f", "higher",
               (">=", 1.2, "haproxy")),
        Figure("bulk_cpu_per_gb", "bulk", "proxy CPU s per GB, server to client (encrypting)",
               ".3f", "lower"),
        Figure("upload_gbps", "upload", "bulk Gbit/s through TLS, client to server", ".2f",
               "higher", (">=", 1.2, "haproxy")),
        Figure("upload_cpu_per_gb", "upload", "proxy CPU s per GB, client to server (decrypting)",
               ".3f", "lower"),
        Figure("idle_kib", "idle", f"proxy RSS KiB per idle TLS connection, {idle_count:,} idle",
               ".2f", "lower", ("<=", 0.5, "haproxy")),
        Figure("scale_1w_hs", "scale_1w", "full handshakes/s, 1 worker, nothing pinned", ",.0f",
               "higher"),
        Figure("scale_2w_hs", "scale_2w", "full handshakes/s, 2 workers, nothing pinned", ",.0f",
               "higher"),
        Figure("scale_ratio", "scale_2w", "full handshakes/s, 2 workers / 1 worker", ".2f",
               "higher", (">=", 1.8, None)),
        Figure("scale_cpu_ratio", "scale_2w", "proxy CPU per handshake, 2 workers / 1 worker",
               ".2f", "lower"),
        Figure("memory_1_hs", "memory", "in memory: full handshakes/s, 1 thread (ringlb's worker context)",
               ",.0f", "higher"),
        Figure("memory_2_hs", "memory", "in memory: full handshakes/s, 2 threads", ",.0f", "higher"),
        Figure("memory_ratio", "memory", "in memory: 2 threads / 1 thread", ".2f", "higher",
               (">=", 1.8, None)),
        Figure("memory_shared_ratio", "memory",
               "in memory: 2 threads / 1, one OpenSSL library context shared", ".2f", "higher"),
    ]


class TlsSection:
    def __init__(self, args, backends, ports, proxy_cpus, load_cpus, all_cpus, balance):
        """PORTS: PORTS_NEEDED free ports. Call prepare() before the
        backends start: it adds their TLS servers and the bulk body."""
        self.args = args
        self.backends = backends
        self.ports = ports
        self.proxy_cpus = proxy_cpus
        self.load_cpus = load_cpus
        self.all_cpus = all_cpus
        self.balance = balance
        self.certs = None
        self.shim = None
        self.failed = None  # why prepare() failed: every TLS row is then an error

    def prepare(self):
        try:
            self._prepare()
        except Exception as e:  # the TCP section still runs
            self.failed = f"the TLS section could not be prepared: {e}"
            log(f"bench: {self.failed}")

    def _prepare(self):
        tmp = self.args.tmp
        self.certs = make_certificates(tmp)
        self.shim = build_wrk_shim(tmp)
        self.upload_script = os.path.join(tmp, "wrk-upload.lua")
        with open(self.upload_script, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = string.rep("x", {UPLOAD_BYTES})\n'
                    f'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        # The backend nginx's workers run as nobody when the bench runs as
        # root: let them reach the body through the private temporary dir.
        os.chmod(tmp, 0o711)
        os.makedirs(self.backends.bulk_root, exist_ok=True)
        os.chmod(os.path.dirname(self.backends.bulk_root), 0o711)
        os.chmod(self.backends.bulk_root, 0o755)
        bulk = os.path.join(self.backends.bulk_root, "bulk")
        with open(bulk, "wb") as f:
            f.write(os.urandom(BULK_BYTES))
        os.chmod(bulk, 0o644)
        self.backends.upload = True
        self.backends.tls_ports = tuple(self.ports[0:2])
        self.backends.tls_servers = backend_tls_servers(self.certs, self.backends.tls_ports,
                                                        self.backends)

    def contender(self, name, workers, cpus):
        a, b, p = self.args, self.backends, self.ports
        if name == "direct":
            return TlsDirect(b)
        if name == "haproxy":
            return TlsHAProxy(a.tmp, b, p[2:4], workers, cpus, self.certs)
        if name == "nginx":
            return TlsNginxStream(a.tmp, b, p[4:6], workers, cpus, self.certs)
        return TlsRinglb(a.tmp, b, p[6:8], workers, cpus, a.ringlb, self.certs, self.balance)

    def describe(self):
        return {name: self.contender(name, self.args.workers, self.proxy_cpus).describe()
                for name in CONTENDERS}

    # --- workloads -----------------------------------------------------

    def wrk(self, c, kind, close, mode, cpus, path="/", connections=WRK_CONNECTIONS,
            extra=()):
        """wrk over https to C's KIND listener with the shim in MODE; the
        shim's counts are checked against what the row claims."""
        out = os.path.join(self.args.tmp, "wrk-tls-shim.out")
        if os.path.exists(out):
            os.unlink(out)
        env = {"LD_PRELOAD": self.shim, "WRK_TLS_SHIM_MODE": mode, "WRK_TLS_SHIM_OUT": out}
        result = run_wrk(None, self.args.duration, connections, close, cpus, c.pids(),
                         url=f"https://127.0.0.1:{c.port(kind)}{path}", env=env,
                         extra=extra)
        try:
            with open(out) as f:
                words = f.read().split()
            shim = dict(zip(words[0::2], words[1::2]))
        except OSError:
            raise RuntimeError("the wrk TLS shim wrote no counts (not preloaded?)")
        done, resumed = int(shim["handshakes"]), int(shim["resumed"])
        result.update(handshakes=done, resumed=resumed, tls_version=shim["version"],
                      tls_cipher=shim["cipher"])
        if done == 0:
            raise RuntimeError("no TLS handshake completed")
        if mode == "full" and resumed:
            raise RuntimeError(f"{resumed} of {done} handshakes were resumed in a full-handshake run")
        if mode == "resume" and close and resumed < RESUMED_AT_LEAST * done:
            # Kept (the rate is still shown, with the share resumed), but
            # listed as an error: the row does not measure what it says.
            result["problem"] = f"only {resumed} of {done} handshakes were resumed"
        if c.pids():
            result["cpu_us_per_handshake"] = result["proxy_cpu_s"] / done * 1e6
        return result

    def idle(self, c, raw):
        idle = IdleConnections(self.args.tmp, c.port("ecdsa"), self.backends.http_ports,
                               self.load_cpus, tls=True)
        try:
            rss = {"0": settled_rss(c.pids())}
            idle.open(self.args.tls_idle)
            rss[str(self.args.tls_idle)] = settled_rss(c.pids())
            return {"rss_kib": rss}
        finally:
            idle.close()

    def measure(self, c):
        raw, errors = {}, []

        def attempt(key, fn, show):
            try:
                raw[key] = fn()
                log(f"    {c.name:7} {show(raw[key])}")
                if "problem" in raw[key]:
                    errors.append(f"{key}: {raw[key]['problem']}")
                    log(f"    {c.name:7} {key}: {raw[key]['problem']}")
            except Exception as e:  # one failed workload must not lose the others
                errors.append(f"{key}: {e}")
                log(f"    {c.name:7} {key} FAILED: {e}")

        def hs(r):
            cpu = (f", {r['cpu_us_per_handshake']:,.0f} µs CPU each"
                   if "cpu_us_per_handshake" in r else "")
            busy = (f", proxy {100 * r['proxy_cpu_s'] / r['seconds']:.0f}% busy"
                    if "proxy_cpu_s" in r else "")
            return (f"{r['rps']:,.0f} handshakes/s ({r['resumed']} of {r['handshakes']} "
                    f"resumed, {r['tls_version']} {r['tls_cipher']}){cpu}{busy}, "
                    f"wrk {100 * r['client_cpu_s'] / r['seconds']:.0f}% busy")

        n = self.args.tls_idle
        if c.is_proxy:
            attempt("idle", lambda: self.idle(c, raw),
                    lambda r: f"idle TLS: RSS {r['rss_kib']['0']:,} KiB with none, "
                              f"{(r['rss_kib'][str(n)] - r['rss_kib']['0']) / n:.2f} KiB/conn at {n:,}")
        for kind in KEY_KINDS:
            attempt(f"full_{kind}", lambda: self.wrk(c, kind, True, "full", self.load_cpus),
                    lambda r, kind=kind: f"full {kind}: " + hs(r))
        attempt("resumed", lambda: self.wrk(c, "ecdsa", True, "resume", self.load_cpus),
                lambda r: "resumed: " + hs(r))
        attempt("keepalive", lambda: self.wrk(c, "ecdsa", False, "resume", self.load_cpus),
                lambda r: f"keep-alive: {r['rps']:,.0f} req/s, p99 {r['p99_ms']:.3f} ms"
                          + (f", {r['cpu_per_100k']:.2f} CPU s/100k" if "cpu_per_100k" in r else ""))
        attempt("bulk", lambda: self.wrk(c, "ecdsa", False, "resume", self.load_cpus,
                                         path="/bulk", connections=BULK_CONNECTIONS,
                                         extra=["--timeout", "30s"]),
                lambda r: f"bulk, server to client: {download_gbps(r):.2f} Gbit/s")
        attempt("upload", lambda: self.wrk(c, "ecdsa", False, "resume", self.load_cpus,
                                           path="/upload", connections=BULK_CONNECTIONS,
                                           extra=["--timeout", "30s", "-s", self.upload_script]),
                lambda r: f"bulk, client to server: {upload_gbps(r):.2f} Gbit/s")
        if errors:
            raw["errors"] = errors
        return raw

    def scale(self, name, workers):
        """Full ECDSA handshakes/s with WORKERS workers, nothing pinned."""
        c = self.contender(name, workers, self.all_cpus)
        try:
            c.start()
            check_https(c.port("ecdsa"))
            return self.wrk(c, "ecdsa", True, "full", self.all_cpus)
        finally:
            c.stop()

    # --- the run -------------------------------------------------------

    def run(self):
        if self.failed:
            return {name: [{"errors": [f"start: {self.failed}"]}] for name in CONTENDERS}
        raw = {name: [] for name in CONTENDERS}
        for r in range(self.args.rounds):
            for name in CONTENDERS:
                log(f"TLS round {r + 1}/{self.args.rounds}: {name}")
                began = time.monotonic()
                c = self.contender(name, self.args.workers, self.proxy_cpus)
                try:
                    c.start()
                    for kind in KEY_KINDS:
                        check_https(c.port(kind))
                    result = self.measure(c)
                    if c.is_proxy:
                        result["rss_kib_end"] = rss_kib(c.pids())
                except Exception as e:
                    log(f"    {name} FAILED: {e}")
                    result = {"errors": [f"start: {e}"]}
                finally:
                    c.stop()
                result["seconds"] = round(time.monotonic() - began, 1)
                raw[name].append(result)
                time.sleep(0.2)
            for name in SCALED:
                result = raw[name][-1]
                for workers in (1, 2):
                    key = f"scale_{workers}w"
                    try:
                        result[key] = self.scale(name, workers)
                        log(f"    {name:7} {workers} worker(s), nothing pinned: "
                            f"{result[key]['rps']:,.0f} full handshakes/s")
                    except Exception as e:
                        result.setdefault("errors", []).append(f"{key}: {e}")
                        log(f"    {name:7} {key} FAILED: {e}")
                    time.sleep(0.2)
            try:
                raw["ringlb"][-1]["memory"] = self.in_memory()
                m = raw["ringlb"][-1]["memory"]
                log(f"    ringlb  in memory: {m['own_1']:,.0f} full handshakes/s with 1 thread, "
                    f"{m['own_2']:,.0f} with 2 ({m['shared_1']:,.0f} and {m['shared_2']:,.0f} "
                    f"sharing one library context)")
            except Exception as e:
                raw["ringlb"][-1].setdefault("errors", []).append(f"memory: {e}")
                log(f"    ringlb  in memory FAILED: {e}")
        return raw

    def in_memory(self):
        """Full handshakes/s through memory (no sockets, no load generator)
        with 1 and 2 threads, each holding a worker's TLS context as ringlb
        builds it, and the same with the process's one OpenSSL library
        context shared (what OpenSSL 3.0's locks cost): two threads on two
        cores, which the socket rows cannot show with wrk on one of them."""
        tool = os.path.join(os.path.dirname(os.path.abspath(self.args.ringlb)), "ringlb-handshake-threads")
        c = self.contender("ringlb", 1, self.all_cpus)
        c.check()  # writes its config
        out = {}
        for label, extra in (("own", []), ("shared", ["--shared-library"])):
            for threads in (1, 2):
                argv = ["taskset", "-c", self.all_cpus, tool, c.path, "tls-ecdsa", str(threads),
                        str(self.args.duration)] + extra  # every CPU: the driver runs on fewer
                run = subprocess.run(argv,
                                     capture_output=True, text=True, timeout=self.args.duration + 60)
                if run.returncode != 0 or not run.stdout.startswith("handshakes/s "):
                    raise RuntimeError(f"{tool}: {(run.stdout + run.stderr).strip()}")
                out[f"{label}_{threads}"] = float(run.stdout.split()[1])
        return out


def download_gbps(r):
    """Gbit/s wrk read (wrk counts every byte read, so a body still
    arriving at the end counts too)."""
    return r["read_bytes"] * 8 / r["seconds"] / 1e9


def upload_gbps(r):
    """Gbit/s of request bodies in the requests answered (a body still on
    its way at the end is not counted: at most BULK_CONNECTIONS bodies)."""
    return r["requests"] * UPLOAD_BYTES * 8 / r["seconds"] / 1e9


def check_https(port):
    """One GET over TLS through PORT: the contender terminates TLS and
    reaches a backend."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or body != b"ok\n":
            raise RuntimeError(f"GET over TLS through port {port}: {response.status} {body!r}")
    finally:
        conn.close()


# --- figures and the table -----------------------------------------------

def round_figures(raw, idle_count):
    out = {}

    def handshakes(prefix, r):
        if r:
            out[f"{prefix}_hs"] = r["rps"]
            if "cpu_us_per_handshake" in r:
                out[f"{prefix}_cpu_us"] = r["cpu_us_per_handshake"]

    for kind in KEY_KINDS:
        handshakes(f"full_{kind}", raw.get(f"full_{kind}"))
    full = raw.get("full_ecdsa")
    if full and full.get("seconds"):
        if "proxy_cpu_s" in full:
            out["full_ecdsa_proxy_busy"] = 100 * full["proxy_cpu_s"] / full["seconds"]
        if "client_cpu_s" in full:
            out["full_ecdsa_client_busy"] = 100 * full["client_cpu_s"] / full["seconds"]
    handshakes("resumed", raw.get("resumed"))
    if raw.get("resumed"):
        out["resumed_share"] = 100 * raw["resumed"]["resumed"] / raw["resumed"]["handshakes"]
    ka = raw.get("keepalive")
    if ka:
        out.update(ka_rps=ka["rps"], ka_p99_ms=ka["p99_ms"], ka_cpu=ka.get("cpu_per_100k"))
    bulk = raw.get("bulk")
    if bulk and bulk.get("read_bytes"):
        out["bulk_gbps"] = download_gbps(bulk)
        if "proxy_cpu_s" in bulk:
            out["bulk_cpu_per_gb"] = bulk["proxy_cpu_s"] / (bulk["read_bytes"] / 1e9)
    upload = raw.get("upload")
    if upload and upload["requests"]:
        out["upload_gbps"] = upload_gbps(upload)
        if "proxy_cpu_s" in upload:
            out["upload_cpu_per_gb"] = (upload["proxy_cpu_s"]
                                        / (upload["requests"] * UPLOAD_BYTES / 1e9))
    idle = raw.get("idle")
    if idle and str(idle_count) in idle["rss_kib"]:
        out["idle_kib"] = (idle["rss_kib"][str(idle_count)] - idle["rss_kib"]["0"]) / idle_count
    memory = raw.get("memory")
    if memory:
        out["memory_1_hs"], out["memory_2_hs"] = memory["own_1"], memory["own_2"]
        out["memory_ratio"] = memory["own_2"] / memory["own_1"]
        out["memory_shared_ratio"] = memory["shared_2"] / memory["shared_1"]
    one, two = raw.get("scale_1w"), raw.get("scale_2w")
    if one:
        out["scale_1w_hs"] = one["rps"]
    if two:
        out["scale_2w_hs"] = two["rps"]
    if one and two and one["rps"]:
        out["scale_ratio"] = two["rps"] / one["rps"]
        if one.get("cpu_us_per_handshake") and two.get("cpu_us_per_handshake"):
            out["scale_cpu_ratio"] = two["cpu_us_per_handshake"] / one["cpu_us_per_handshake"]
    return {k: v for k, v in out.items() if v is not None}


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _verdict(f, meds):
    op, limit, against = f.target
    r = meds.get("ringlb", {}).get(f.key)
    value = _ratio(r, meds.get(against, {}).get(f.key)) if against else r
    met = None if value is None else (value >= limit if op == ">=" else value <= limit)
    text = f"{'≥' if op == '>=' else '≤'} {limit}x" + (f" {against}" if against else "")
    return text, value, met


def table(meds, raw, idle_count):
    head = (["figure"] + list(CONTENDERS)
            + ["ringlb/haproxy", "ringlb/nginx", "ringlb/direct", "target (ringlb)"])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    for f in figures(idle_count):
        values = {c: meds.get(c, {}).get(f.key) for c in CONTENDERS}
        row = [f"{f.label} {'↑' if f.better == 'higher' else '↓'}"]
        for c in CONTENDERS:
            if values[c] is not None:
                row.append(format(values[c], f.fmt))
            elif any(e.startswith((f"{f.source}:", "start:"))
                     for r in raw.get(c, []) for e in r.get("errors", [])):
                row.append("error")
            else:
                row.append("-")
        for other in ("haproxy", "nginx", "direct"):
            ratio = _ratio(values["ringlb"], values[other]) if f.ratios else None
            row.append("-" if ratio is None else f"{ratio:.2f}x")
        if f.target:
            text, value, met = _verdict(f, meds)
            verdict = {True: "met", False: "MISSED", None: "not measured"}[met]
            row.append(f"{text}: {verdict}" + ("" if value is None else f" ({value:.2f})"))
        else:
            row.append("")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def report(raw, args, meta):
    """The section's text (markdown), per-round figures and medians."""
    n = args.tls_idle
    per_round = {name: [round_figures(r, n) for r in rounds] for name, rounds in raw.items()}
    meds = {name: medians(rounds) for name, rounds in per_round.items()}
    versions = sorted({f"{r[k]['tls_version']} {r[k]['tls_cipher']}"
                       for rounds in raw.values() for r in rounds
                       for k in ("full_ecdsa",) if k in r})
    notes = "\n".join([
        "## TLS termination",
        "",
        f"- every contender terminates TLS in front of the same plaintext HTTP backends "
        f"(\"direct\": the backend nginx terminates TLS itself); self-signed ECDSA P-256 "
        f"and RSA-2048 certificates made with `openssl req` for this run; each "
        f"contender's TLS defaults (session tickets on); negotiated: "
        f"{', '.join(versions) or '-'}",
        f"- {meta['pinning']}; the 2-worker / 1-worker rows: nothing pinned, "
        f"the client and backends share both CPUs with the proxy",
        f"- full handshakes: `wrk -t1 -c{WRK_CONNECTIONS} -d{args.duration}s "
        f"-H 'Connection: close'` over https, with an LD_PRELOAD shim "
        f"(scripts/bench_lib/wrk_tls_shim.c) that drops wrk's session before each "
        f"handshake and counts: 0 resumed in every run, or the run is an error",
        f"- resumed handshakes: the same wrk run without dropping the session (wrk "
        f"keeps it across connections and offers the last TLS 1.3 ticket it has read); "
        f"under {RESUMED_AT_LEAST:.0%} resumed is listed as an error",
        f"- keep-alive: `wrk -t1 -c{WRK_CONNECTIONS}` over https; bulk: `wrk -t1 "
        f"-c{BULK_CONNECTIONS} --timeout 30s` GETs of a {BULK_BYTES >> 20} MiB body "
        f"(Gbit/s of bytes wrk read) and POSTs of a {UPLOAD_BYTES >> 20} MiB body "
        f"(Gbit/s of bodies answered), so the proxy encrypts or decrypts at the "
        f"rate the client decrypts or encrypts; idle: "
        f"{n:,} connections that completed a TLS handshake (Python ssl), RSS growth / {n:,}",
        f"- in memory: `ringlb-handshake-threads` (built beside ringlb) runs full ECDSA "
        f"handshakes for {args.duration} s between a server leg on ringlb's worker context "
        f"and a client, through memory, in 1 and in 2 threads, each thread with its own "
        f"context as a worker has; then with one OpenSSL library context shared by both "
        f"threads (what ringlb did before, and OpenSSL 3.0's default)",
        "- proxy CPU: utime+stime of the proxy's processes over the run; the "
        "\"busy\" rows: CPU seconds over the run's wall seconds (a proxy well under "
        "100% was held back by the client side or the machine, not by its own cost)",
    ])
    text = notes + "\n\n" + table(meds, raw, n)
    errors = [f"- TLS, {name}, round {i + 1}: " + e.replace("\n", " | ")
              for name, rounds in raw.items()
              for i, r in enumerate(rounds) for e in r.get("errors", [])]
    for name, rounds in raw.items():
        for i, r in enumerate(rounds):
            for key in ("full_ecdsa", "full_rsa", "resumed", "keepalive", "bulk", "upload"):
                w = r.get(key)
                if w and (w["errors"] or w["non_2xx"]):
                    errors.append(f"- TLS, {name}, round {i + 1}, {key}: "
                                  f"{w.get('socket_errors', '')} non-2xx {w['non_2xx']}")
    if errors:
        text += "\n\nTLS errors:\n\n" + "\n".join(errors)
    return text, per_round, meds
