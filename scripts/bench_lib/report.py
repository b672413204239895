"""Medians over rounds, the markdown tables (one per mode), and the
PERF.md targets."""

import operator
import statistics

CONTENDERS = ("direct", "haproxy", "nginx", "ringlb")


class Figure:
    def __init__(self, key, label, fmt, better, proxy_only=False):
        self.key = key
        self.label = label
        self.fmt = fmt              # a format spec for one value
        self.better = better        # "higher" or "lower"
        self.proxy_only = proxy_only


def figures(idle_counts, with_idle=True):
    """The rows of a table; WITH_IDLE: also those of the idle-connection
    workloads (measured in the pinned mode only)."""
    few, many = idle_counts
    rows = [
        Figure("ka_rps", "keep-alive req/s (wrk -t1 -c50)", ",.0f", "higher"),
        Figure("ka_p50_ms", "keep-alive p50 latency, ms", ".3f", "lower"),
        Figure("ka_p99_ms", "keep-alive p99 latency, ms", ".3f", "lower"),
        Figure("ka_cpu", "proxy CPU s per 100k keep-alive requests", ".2f", "lower", True),
        Figure("ka_vcsw", "proxy voluntary context switches per 1k keep-alive requests",
               ".1f", "lower", True),
        Figure("ka_ivcsw", "proxy involuntary context switches per 1k keep-alive requests",
               ".1f", "lower", True),
        Figure("close_rps", "Connection: close req/s", ",.0f", "higher"),
        Figure("close_p99_ms", "Connection: close p99 latency, ms", ".3f", "lower"),
        Figure("close_cpu", "proxy CPU s per 100k closed connections", ".2f", "lower", True),
        Figure("close_vcsw", "proxy voluntary context switches per 1k closed connections",
               ".1f", "lower", True),
        Figure("close_ivcsw", "proxy involuntary context switches per 1k closed connections",
               ".1f", "lower", True),
        Figure("bulk_fwd_gbps", "iperf3 Gbit/s, client to server", ".2f", "higher"),
        Figure("bulk_rev_gbps", "iperf3 Gbit/s, server to client (-R)", ".2f", "higher"),
        Figure("bulk_cpu_per_gb", "proxy CPU s per GB bulk (both directions)", ".3f", "lower", True),
    ]
    if not with_idle:
        return rows
    return rows + [
        Figure(f"idle_kib_{few}", f"proxy RSS KiB per idle connection, {few:,} idle", ".2f", "lower", True),
        Figure(f"idle_kib_{many}", f"proxy RSS KiB per idle connection, {many:,} idle", ".2f", "lower", True),
        Figure("many_rps", f"keep-alive req/s (-c50) with {many:,} idle open", ",.0f", "higher"),
        Figure("many_p99_ms", f"keep-alive p99 ms with {many:,} idle open", ".3f", "lower"),
        Figure("many_cpu", f"proxy CPU s per 100k requests with {many:,} idle open", ".2f", "lower", True),
        Figure("many_cpu_ratio", f"CPU per request with {many:,} idle / with none", ".2f", "lower", True),
    ]


def round_figures(raw, idle_counts):
    """The figures of one contender in one round, from its raw results
    (a workload missing from RAW, because it failed, gives no figure)."""
    few, many = idle_counts
    out = {}
    ka, close, many_run = raw.get("keepalive"), raw.get("close"), raw.get("many")
    fwd, rev = raw.get("bulk_fwd"), raw.get("bulk_rev")
    if ka:
        out.update(ka_rps=ka["rps"], ka_p50_ms=ka["p50_ms"], ka_p99_ms=ka["p99_ms"],
                   ka_cpu=ka.get("cpu_per_100k"), ka_vcsw=ka.get("voluntary_per_1k"),
                   ka_ivcsw=ka.get("involuntary_per_1k"))
    if close:
        out.update(close_rps=close["rps"], close_p99_ms=close["p99_ms"],
                   close_cpu=close.get("cpu_per_100k"),
                   close_vcsw=close.get("voluntary_per_1k"),
                   close_ivcsw=close.get("involuntary_per_1k"))
    if fwd:
        out["bulk_fwd_gbps"] = fwd["gbps"]
    if rev:
        out["bulk_rev_gbps"] = rev["gbps"]
    if fwd and rev and "proxy_cpu_s" in fwd:
        gigabytes = (fwd["bytes"] + rev["bytes"]) / 1e9
        out["bulk_cpu_per_gb"] = (fwd["proxy_cpu_s"] + rev["proxy_cpu_s"]) / gigabytes
    idle = raw.get("idle")
    if idle and "rss_kib" in idle:
        base = idle["rss_kib"]["0"]
        for n in (few, many):
            if str(n) in idle["rss_kib"]:
                out[f"idle_kib_{n}"] = (idle["rss_kib"][str(n)] - base) / n
    if many_run:
        out.update(many_rps=many_run["rps"], many_p99_ms=many_run["p99_ms"],
                   many_cpu=many_run.get("cpu_per_100k"))
        if ka and ka.get("cpu_per_100k") and many_run.get("cpu_per_100k") is not None:
            out["many_cpu_ratio"] = many_run["cpu_per_100k"] / ka["cpu_per_100k"]
    return {k: v for k, v in out.items() if v is not None}


def medians(per_round):
    """{figure: median over the rounds that have it}."""
    keys = {k for r in per_round for k in r}
    return {k: statistics.median(r[k] for r in per_round if k in r) for k in keys}


def _cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(meds, idle_counts, with_idle=True, contenders=CONTENDERS):
    """The markdown table: one row per figure, one column per contender,
    then ringlb as a ratio to HAProxy, nginx and direct."""
    others = ("haproxy", "nginx", "direct")
    head = ["figure"] + list(contenders) + [f"ringlb/{o}" for o in others]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for f in figures(idle_counts, with_idle):
        values = {c: meds.get(c, {}).get(f.key) for c in contenders}
        arrow = "↑" if f.better == "higher" else "↓"
        row = [f"{f.label} {arrow}"]
        row += [_cell(values[c], f.fmt) for c in contenders]
        row += [_ratio(values.get("ringlb"), values.get(o)) for o in others]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


SPREAD_FIGURES = (("ka_rps", "keep-alive req/s"), ("ka_cpu", "keep-alive CPU/request"),
                  ("close_rps", "close req/s"), ("close_cpu", "CPU/closed connection"))


def spread_text(per_round):
    """ringlb/HAProxy round by round, for the figures that swing most when
    nothing is pinned: one line per figure."""
    ringlb, haproxy = per_round.get("ringlb", []), per_round.get("haproxy", [])
    lines = []
    for key, label in SPREAD_FIGURES:
        ratios = [_ratio(r.get(key), h.get(key)) for r, h in zip(ringlb, haproxy)]
        lines.append(f"- {label}, ringlb/haproxy by round: {', '.join(ratios) or '-'}")
    return "\n".join(lines)


def targets(meds, idle_counts):
    """The targets of PERF.md, each with its measured value and whether it
    is met: a list of (text, measured, met)."""
    few, many = idle_counts
    r, h, d = meds.get("ringlb", {}), meds.get("haproxy", {}), meds.get("direct", {})
    ratio = _figure_ratio
    checks = [
        ("keep-alive req/s >= 1.2x HAProxy", ratio(r, h, "ka_rps"), ">=", 1.2),
        ("keep-alive CPU/request <= 0.75x HAProxy", ratio(r, h, "ka_cpu"), "<=", 0.75),
        ("Connection: close req/s >= 1.2x HAProxy", ratio(r, h, "close_rps"), ">=", 1.2),
        ("CPU per closed connection <= 0.75x HAProxy", ratio(r, h, "close_cpu"), "<=", 0.75),
        ("bulk client to server >= 1.5x HAProxy", ratio(r, h, "bulk_fwd_gbps"), ">=", 1.5),
        ("bulk server to client >= 1.5x HAProxy", ratio(r, h, "bulk_rev_gbps"), ">=", 1.5),
        ("bulk client to server >= 0.85x direct", ratio(r, d, "bulk_fwd_gbps"), ">=", 0.85),
        ("bulk server to client >= 0.85x direct", ratio(r, d, "bulk_rev_gbps"), ">=", 0.85),
        ("keep-alive p99 <= HAProxy's", ratio(r, h, "ka_p99_ms"), "<=", 1.0),
        (f"idle memory <= 1 KiB per connection ({few:,})", r.get(f"idle_kib_{few}"), "<=", 1.0),
        (f"idle memory <= 1 KiB per connection ({many:,})", r.get(f"idle_kib_{many}"), "<=", 1.0),
        (f"CPU per request with {many:,} idle <= 1.25x with none",
         r.get("many_cpu_ratio"), "<=", 1.25),
    ]
    return _verdicts(checks)


def ahead_targets(meds):
    """The unpinned and as-deployed targets of issue 13: ringlb ahead of
    HAProxy and nginx on requests/s and on CPU per request."""
    r = meds.get("ringlb", {})
    checks = []
    for name in ("haproxy", "nginx"):
        o = meds.get(name, {})
        checks += [
            (f"keep-alive req/s > {name}", _figure_ratio(r, o, "ka_rps"), ">", 1.0),
            (f"keep-alive CPU/request < {name}", _figure_ratio(r, o, "ka_cpu"), "<", 1.0),
            (f"Connection: close req/s > {name}", _figure_ratio(r, o, "close_rps"), ">", 1.0),
            (f"CPU per closed connection < {name}", _figure_ratio(r, o, "close_cpu"), "<", 1.0),
        ]
    return _verdicts(checks)


def _figure_ratio(a, b, key):
    """A[KEY] / B[KEY] for two contenders' medians; None when not measured."""
    return a[key] / b[key] if key in a and b.get(key) else None


_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _verdicts(checks):
    """(text, measured, met) for each (text, measured, operator, limit);
    met is None when the value was not measured."""
    return [(text, value, None if value is None else _COMPARE[op](value, limit))
            for text, value, op, limit in checks]


def targets_text(verdicts):
    lines = []
    for text, value, met in verdicts:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[met]
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"- {text}: {shown} ({verdict})")
    return "\n".join(lines)


def errors_text(mode, raw):
    """One line per failed workload or wrk run with errors in MODE."""
    lines = []
    for name, rounds in raw.items():
        for i, r in enumerate(rounds):
            where = f"{mode.name}, {name}, round {i + 1}"
            lines += [f"- {where}: {e}" for e in r.get("errors", [])]
            for key in ("keepalive", "close", "many"):
                w = r.get(key)
                if w and (w["errors"] or w["non_2xx"]):
                    lines.append(f"- {where}, {key}: "
                                 f"{w.get('socket_errors', '')} non-2xx {w['non_2xx']}")
    return "\n".join(lines)


def mode_section(mode, descriptions, raw, per_round, meds, idle_counts):
    """The markdown of one mode: what ran, the table, the targets, errors."""
    threads = ", ".join(
        f"{name} {' '.join(str(r['threads']) for r in rounds if 'threads' in r)}"
        for name, rounds in raw.items() if name != "direct")
    parts = [
        f"## TCP proxying, {mode.title}",
        "",
        f"- {mode.pinning}",
        "- " + "; ".join(descriptions[c] for c in CONTENDERS),
        f"- threads of each proxy (all its processes) at the end of each round: {threads}",
        "",
        table(meds, idle_counts, mode.measures_idle),
    ]
    if mode.measures_idle:
        parts += ["", "PERF.md targets (ringlb):", "",
                  targets_text(targets(meds, idle_counts))]
    else:
        parts += ["", "Round by round (unpinned figures swing):", "",
                  spread_text(per_round),
                  "", "Issue 13 targets (ringlb ahead of HAProxy and nginx):", "",
                  targets_text(ahead_targets(meds))]
    errors = errors_text(mode, raw)
    if errors:
        parts += ["", "Errors:", "", errors]
    return "\n".join(parts)
