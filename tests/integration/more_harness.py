"""Helpers shared by test_policies.py, test_health.py and test_admin.py, on top
of harness.py (Python 3 standard library only): configs with several
listeners and pools, an [admin] section and health checks; backends that
answer HTTP health probes and hold long-lived sessions while counting them;
clients bound to a chosen source address; an admin HTTP client; a parser
and checker for the Prometheus text format; ringlb's log lines.

Run as a script (`more_harness.py serve NAME`), this file is a killable
backend process serving session_handler.
"""

import calendar
import json
import os
import re
import shutil
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOOPBACK, WAIT, wait_until  # noqa: E402



# --------------------------------------------------------------------------
# Config


def _table(lines, header, values):
    lines += ["", header]
    lines += [f"{k} = {_value(v)}" for k, v in values.items()]


def _value(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return harness.toml_value(v)


def build_config(listeners, pools, *, workers=1, global_=None, admin=None):
    """TOML text for several listeners and pools.

    listeners: [(name, port, pool name, {extra keys})]
    pools: {name: {"balance": ..., ..., "members": [member dicts],
                   "health": {health keys} or absent}}
    admin: {"listen": "127.0.0.1:PORT", "token": ...} or None."""
    g = {"workers": workers, "log_level": "info", "access_log": "stdout", "shutdown_timeout": "5s"}
    g.update(global_ or {})
    lines = []
    _table(lines, "[global]", g)
    if admin:
        _table(lines, "[admin]", admin)
    for name, port, pool, extra in listeners:
        values = {"name": name, "bind": f"{LOOPBACK}:{port}", "pool": pool}
        values.update(extra or {})
        _table(lines, "[[listener]]", values)
    for name, spec in pools.items():
        spec = dict(spec)
        members = spec.pop("members")
        health = spec.pop("health", None)
        _table(lines, f"[pool.{name}]", spec)
        if health is not None:
            _table(lines, f"[pool.{name}.health]", health)
        for m in members:
            _table(lines, f"[[pool.{name}.member]]", m)
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------
# Backends


def _read_until(conn, marker, limit=64 * 1024):
    buf = bytearray()
    while marker not in buf and len(buf) < limit:
        b = conn.recv(4096)
        if not b:
            break
        buf += b
    return bytes(buf)


def session_handler(conn, backend):
    """Serves two kinds of connection, told apart by the first line:
    - an HTTP health probe ("GET ..."): recorded in state["probes"], then
      answered with state["status"] (default 200) and closed; with
      state["hang"] set it is never answered (held until the prober closes);
    - a session: answers 'NAME\\n' + the line, then echoes until EOF, counted
      in state["live"] (open now) and state["sessions"] (ever).
    A connection closed before its first line (a TCP probe) is just closed."""
    first = harness.read_line(conn)
    if not first:
        return
    if first.startswith(b"GET "):
        head = first + _read_until(conn, b"\r\n\r\n")
        with backend.lock:
            backend.state.setdefault("probes", []).append(head.decode("latin-1"))
            hang = backend.state.get("hang", False)
            status = backend.state.get("status", 200)
        if hang:
            harness.recv_all(conn)
            return
        body = b"ok\n"
        conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        conn.shutdown(socket.SHUT_WR)
        harness.recv_all(conn)
        return
    with backend.lock:
        backend.state["live"] = backend.state.get("live", 0) + 1
        backend.state["sessions"] = backend.state.get("sessions", 0) + 1
    try:
        conn.sendall(backend.name.encode() + b"\n" + first)
        if harness.echo_until_eof(conn, 64 * 1024):
            conn.shutdown(socket.SHUT_WR)
    finally:
        with backend.lock:
            backend.state["live"] -= 1


def live(backend):
    with backend.lock:
        return backend.state.get("live", 0)


def sessions(backend):
    with backend.lock:
        return backend.state.get("sessions", 0)


def set_state(backend, **values):
    with backend.lock:
        backend.state.update(values)


class ProcBackend(harness.BackendProcess):
    """session_handler in its own process, so that a test can kill it (its
    port then refuses connects)."""

    def __init__(self, name):
        super().__init__(name, script=os.path.abspath(__file__), serve_args=[name])


class PortSwitch:
    """A listening socket that can be closed (connects then refused) and
    opened again on the same port: a health_port whose probes a test turns
    on and off. Connections are accepted and handed to handle(), which
    closes them at once unless a subclass serves them."""

    def __init__(self):
        self.port = harness.free_port()
        self.sock = None
        self.thread = None
        self.open()

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, self.port))
        s.listen(64)
        self.sock = s
        self.thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self.thread.start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            self.handle(c)

    def handle(self, conn):
        conn.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.thread.join(WAIT)
            self.sock = None


# --------------------------------------------------------------------------
# Clients


def connect_from(port, source=None, timeout=None):
    """A connection to 127.0.0.1:port from source (any 127.x address works
    on Linux loopback), from an ephemeral port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(WAIT if timeout is None else timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            s.bind((source, 0))
        s.connect((LOOPBACK, port))
    except BaseException:
        s.close()
        raise
    return s


def read_lines(sock, count):
    buf = bytearray()
    while buf.count(b"\n") < count:
        b = sock.recv(4096)
        if not b:
            raise AssertionError(f"EOF after {bytes(buf)!r}, expected {count} lines")
        buf += b
    return bytes(buf)


def ask(port, source=None, line=b"hi\n"):
    """One short session through ringlb to a session_handler (or harness
    name_handler) backend: returns (member name, client address)."""
    with connect_from(port, source) as s:
        client = harness.client_name(s)
        s.sendall(line)
        data = read_lines(s, 2)
    name, _, rest = data.partition(b"\n")
    if rest != line:
        raise AssertionError(f"the member did not echo the request: {data!r}")
    return name.decode(), client


class Session:
    """A long-lived session through ringlb to a session_handler backend."""

    def __init__(self, port, source=None):
        self.sock = connect_from(port, source)
        self.client = harness.client_name(self.sock)
        self.sock.sendall(b"hello\n")
        data = read_lines(self.sock, 2)
        name, _, rest = data.partition(b"\n")
        if rest != b"hello\n":
            raise AssertionError(f"unexpected greeting {data!r}")
        self.member = name.decode()

    def echo(self, payload=b"still here\n"):
        """Sends payload and checks it comes back intact."""
        self.sock.sendall(payload)
        got = harness.recv_exact(self.sock, len(payload))
        if got != payload:
            raise AssertionError(f"echo mismatch: {got!r} != {payload!r}")

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# Admin HTTP client


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


def parse_response(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete response head: {raw[:300]!r}")
    lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.*)", lines[0])
    if not m:
        raise AssertionError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise AssertionError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise AssertionError(f"response without Content-Length: {lines}")
    if int(headers["content-length"]) != len(body):
        raise AssertionError(f"Content-Length {headers['content-length']} but {len(body)} body bytes")
    return Response(int(m.group(1)), m.group(2), headers, body)


def raw_exchange(port, data, shut_write=False, timeout=None):
    """Sends data on a fresh connection and reads until the server closes.
    Returns (bytes received, reset)."""
    with socket.create_connection((LOOPBACK, port), timeout=WAIT if timeout is None else timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        try:
            return harness.recv_all(s)
        except socket.timeout:
            raise AssertionError(f"the admin endpoint neither answered nor closed; sent {data[:100]!r}")


def request(port, method, path, body=b"", headers=None):
    """One admin request; returns a Response (the server must close after
    it, with a Content-Length that matches)."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}:{port}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    raw, reset = raw_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    if not raw:
        raise AssertionError(f"no response to {method} {path} (reset={reset})")
    response = parse_response(raw)
    if response.headers.get("connection", "").lower() != "close":
        raise AssertionError(f"response without Connection: close: {response}")
    return response


def get(port, path):
    return request(port, "GET", path)


def post(port, path, body=b"", token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return request(port, "POST", path, body, headers)


def status_json(port):
    r = get(port, "/status")
    if r.status != 200:
        raise AssertionError(f"/status answered {r}")
    return r.json()


def member_status(port, pool, member):
    for p in status_json(port)["pools"]:
        if p["name"] == pool:
            for m in p["members"]:
                if m["name"] == member:
                    return m
    raise AssertionError(f"no member {member} in pool {pool} in /status")


# --------------------------------------------------------------------------
# Prometheus text format (0.0.4)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"({_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+(-?\d+))?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def _parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise AssertionError(f"bad label set {{{text}}} at {pos}")
        if m.group(1) in labels:
            raise AssertionError(f"label {m.group(1)} repeated in {{{text}}}")
        labels[m.group(1)] = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), m.group(2))
        pos = m.end()
    return labels


def _float(text):
    if text in ("+Inf", "Inf"):
        return float("inf")
    if text == "-Inf":
        return float("-inf")
    return float(text)  # also takes NaN


class Metrics:
    """A parsed exposition: families[name] = {"type", "help", "samples":
    [(sample name, labels, value)]}."""

    def __init__(self, families):
        self.families = families

    def samples(self, name, **labels):
        """Values of samples named `name` whose labels include `labels`."""
        out = []
        for fam in self.families.values():
            for sample, ls, value in fam["samples"]:
                if sample == name and all(ls.get(k) == v for k, v in labels.items()):
                    out.append((ls, value))
        return out

    def value(self, name, **labels):
        found = self.samples(name, **labels)
        if len(found) != 1:
            raise AssertionError(f"expected one sample {name}{labels}, found {found}")
        return found[0][1]

    def total(self, name, **labels):
        return sum(v for _, v in self.samples(name, **labels))


def _family_of(sample, families):
    if sample in families:
        return sample
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            base = sample[:-len(suffix)]
            if base in families and families[base]["type"] in ("histogram", "summary"):
                return base
    return None


def parse_metrics(text):
    """Parses and checks Prometheus text format 0.0.4: every sample belongs
    to a family with a # TYPE line (given before its samples, once), no
    sample (name + labels) twice, counters named *_total with finite values
    >= 0, histograms with _bucket/_sum/_count per label set, buckets with
    ascending le, monotonic counts, a +Inf bucket equal to _count."""
    if not text.endswith("\n"):
        raise AssertionError("the exposition does not end with a newline")
    families = {}
    seen = set()
    for number, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {number}: {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(_NAME, name):
                    raise AssertionError(f"bad metric name, {where}")
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if parts[1] == "TYPE":
                    if fam["type"] is not None:
                        raise AssertionError(f"second TYPE for {name}, {where}")
                    if fam["samples"]:
                        raise AssertionError(f"TYPE after samples of {name}, {where}")
                    kind = parts[3] if len(parts) > 3 else ""
                    if kind not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise AssertionError(f"bad type, {where}")
                    fam["type"] = kind
                else:
                    fam["help"] = parts[3] if len(parts) > 3 else ""
            continue
        m = _SAMPLE.fullmatch(line)
        if not m:
            raise AssertionError(f"not a sample, {where}")
        sample, label_text, value_text = m.group(1), m.group(2) or "", m.group(3)
        try:
            value = _float(value_text)
        except ValueError:
            raise AssertionError(f"bad value, {where}")
        labels = _parse_labels(label_text)
        base = _family_of(sample, families)
        if base is None or families[base]["type"] is None:
            raise AssertionError(f"sample without a # TYPE for its family, {where}")
        key = (sample, tuple(sorted(labels.items())))
        if key in seen:
            raise AssertionError(f"duplicate sample, {where}")
        seen.add(key)
        families[base]["samples"].append((sample, labels, value))

    for name, fam in families.items():
        if fam["type"] is None:
            raise AssertionError(f"family {name} has HELP but no TYPE")
        if fam["type"] == "counter":
            if not name.endswith("_total"):
                raise AssertionError(f"counter {name} does not end with _total")
            for sample, labels, value in fam["samples"]:
                if sample != name or not (0 <= value < float("inf")):
                    raise AssertionError(f"bad counter sample {sample}{labels} {value}")
        elif fam["type"] == "gauge":
            for sample, labels, value in fam["samples"]:
                if sample != name:
                    raise AssertionError(f"gauge {name} has a sample named {sample}")
        elif fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return Metrics(families)


def _check_histogram(name, samples):
    groups = {}
    for sample, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sample == name + "_bucket":
            if "le" not in labels:
                raise AssertionError(f"{name}_bucket{labels} without le")
            g["buckets"].append((_float(labels["le"]), value))
        elif sample == name + "_sum":
            g["sum"] = value
        elif sample == name + "_count":
            g["count"] = value
        else:
            raise AssertionError(f"histogram {name} has a sample named {sample}")
    for rest, g in groups.items():
        what = f"histogram {name}{dict(rest)}"
        if g["sum"] is None or g["count"] is None or not g["buckets"]:
            raise AssertionError(f"{what} lacks _bucket, _sum or _count")
        bounds = [b for b, _ in g["buckets"]]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise AssertionError(f"{what}: le bounds not ascending: {bounds}")
        if bounds[-1] != float("inf"):
            raise AssertionError(f"{what}: no +Inf bucket")
        counts = [c for _, c in g["buckets"]]
        if any(b > a for b, a in zip(counts, counts[1:])):
            raise AssertionError(f"{what}: bucket counts not monotonic: {counts}")
        if counts[-1] != g["count"]:
            raise AssertionError(f"{what}: +Inf bucket {counts[-1]} != _count {g['count']}")
        if g["sum"] < 0 or (g["count"] == 0 and g["sum"] != 0):
            raise AssertionError(f"{what}: _sum {g['sum']} with _count {g['count']}")


def scrape(port):
    r = get(port, "/metrics")
    if r.status != 200:
        raise AssertionError(f"/metrics answered {r}")
    if not r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"):
        raise AssertionError(f"/metrics Content-Type {r.headers.get('content-type')!r}")
    return parse_metrics(r.body.decode())


# --------------------------------------------------------------------------
# ringlb's log


_LOG_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z ")


def log_time(line):
    """The wall-clock time (time.time() scale) a log line was written."""
    m = _LOG_TIME.match(line)
    if not m:
        raise AssertionError(f"log line without a timestamp: {line!r}")
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0


def log_lines(lb, substring):
    with lb.cond:
        return [line for line in lb.stderr_lines if substring in line]


def wait_log(lb, substring, timeout=None, count=1):
    """Waits for `count` stderr lines containing substring; returns the
    last of them."""
    def found():
        lines = log_lines(lb, substring)
        return lines[count - 1] if len(lines) >= count else None
    try:
        return wait_until(found, timeout, f"log line {substring!r}")
    except AssertionError:
        raise AssertionError(f"no log line {substring!r} in time; stderr:\n{lb.stderr_text()}")


def transition(pool, member, down=True):
    return f"pool {pool} member {member}: " + ("up -> down" if down else "down -> up")


_TRANSITION = re.compile(r" warn pool \S+ member .*: (up -> down|down -> up) \(")


def transition_lines(lb):
    """Every health transition ringlb has logged so far."""
    with lb.cond:
        return [line for line in lb.stderr_lines if _TRANSITION.search(line)]


def serve_main(argv):
    (name,) = argv
    backend = harness.Backend(session_handler, name=name)
    print(f"port {backend.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        serve_main(sys.argv[2:])
    else:
        sys.exit("usage: more_harness.py serve NAME")


def tsan_suppressions_for_nobody(test):
    """Under TSan, ringlb reads its suppressions file at start: as nobody it
    may not reach the checkout's (a fresh machine keeps it under /root), so
    it gets a copy in the test's directory (which the test makes readable
    for nobody); TSAN_OPTIONS points there until the test ends."""
    options = os.environ.get("TSAN_OPTIONS", "")
    m = re.search(r"suppressions=([^ :]+)", options)
    if not m:
        return
    copy = os.path.join(test.tmp.name, "tsan.supp")
    shutil.copy(m.group(1), copy)
    os.chmod(copy, 0o644)
    os.environ["TSAN_OPTIONS"] = options.replace(m.group(0), f"suppressions={copy}")
    test.addCleanup(os.environ.__setitem__, "TSAN_OPTIONS", options)
