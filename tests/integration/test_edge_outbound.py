"""send_proxy: the PROXY header (HAProxy's doc/proxy-protocol.txt) ringlb
writes to members, v1 and v2, before any client byte.

Members are nginx (nginx-light, `listen ... proxy_protocol`, echoing
$proxy_protocol_addr:$proxy_protocol_port), which nobody here wrote, and
small Python members that parse the header themselves (independently of
ringlb's codec) where nginx cannot show what we need: the v2 TLVs of a
terminated TLS session, the header in front of an originated TLS
handshake, the destination address, what health probes send."""

import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading

import harness
import more_harness as mh
from harness import LOOPBACK, MiB, WAIT, wait_until
from test_tls import Pki, client_context, client_hello

NGINX = "/usr/sbin/nginx"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL = 0x01, 0x02, 0x20
PP2_SUBTYPE_SSL_VERSION, PP2_SUBTYPE_SSL_CIPHER = 0x21, 0x23
PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN = 0x01, 0x02


# --------------------------------------------------------------------------
# Reading a PROXY header, as a member would (our own parser, not ringlb's)


def _recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} header bytes: {data!r}")
        data += chunk
    return data


def _address(family, raw):
    return str(ipaddress.ip_address(raw)) if family else None


def _parse_tlvs(data):
    tlvs = {}
    while data:
        if len(data) < 3:
            raise ValueError(f"truncated TLV {data!r}")
        kind, length = data[0], struct.unpack("!H", data[1:3])[0]
        if len(data) < 3 + length:
            raise ValueError(f"TLV {kind:#x} runs past the header")
        tlvs[kind] = data[3:3 + length]
        data = data[3 + length:]
    return tlvs


def read_proxy_header(conn):
    """Reads exactly one PROXY header from conn, byte-exact (nothing after it
    is consumed). Returns a dict: version, command, source, destination
    ("ip:port" or None), tlvs {type: bytes}, ssl {client, verify, tlvs}."""
    start = _recv_exact(conn, 5)
    if start == b"PROXY":
        line = start
        while not line.endswith(b"\r\n"):
            if len(line) >= 107:
                raise ValueError(f"v1 line without CRLF: {line!r}")
            line += _recv_exact(conn, 1)
        parts = line[:-2].decode("ascii").split(" ")
        if parts[1] == "UNKNOWN":
            return {"version": 1, "command": "UNKNOWN", "source": None, "destination": None, "tlvs": {}}
        if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
            raise ValueError(f"bad v1 line {line!r}")
        host = (lambda ip: f"[{ip}]") if parts[1] == "TCP6" else (lambda ip: ip)
        return {"version": 1, "command": parts[1], "source": f"{host(parts[2])}:{parts[4]}",
                "destination": f"{host(parts[3])}:{parts[5]}", "tlvs": {}}
    fixed = start + _recv_exact(conn, 11)
    if fixed[:12] != V2_SIGNATURE:
        raise ValueError(f"neither v1 nor v2: {fixed!r}")
    version, command = fixed[12] >> 4, fixed[12] & 0x0F
    family, length = fixed[13], struct.unpack("!H", fixed[14:16])[0]
    if version != 2 or command not in (0, 1):
        raise ValueError(f"bad v2 version/command byte {fixed[12]:#x}")
    body = _recv_exact(conn, length) if length else b""
    result = {"version": 2, "command": "LOCAL" if command == 0 else "PROXY", "family": family,
              "source": None, "destination": None}
    if command == 1 and family == 0x11:
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        result["source"], result["destination"] = f"{_address(1, src)}:{sport}", f"{_address(1, dst)}:{dport}"
        rest = body[12:]
    elif command == 1 and family == 0x21:
        src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
        result["source"], result["destination"] = f"[{_address(1, src)}]:{sport}", f"[{_address(1, dst)}]:{dport}"
        rest = body[36:]
    elif family == 0x00:
        rest = b"" if command == 0 else body
    else:
        raise ValueError(f"unexpected v2 family {family:#x} for command {command}")
    result["tlvs"] = _parse_tlvs(rest)
    if PP2_TYPE_SSL in result["tlvs"]:
        value = result["tlvs"][PP2_TYPE_SSL]
        client, verify = value[0], struct.unpack("!I", value[1:5])[0]
        result["ssl"] = {"client": client, "verify": verify, "tlvs": _parse_tlvs(value[5:])}
    return result


def describe(header):
    """The header as JSON-able text values, for the member's answer."""
    out = {k: v for k, v in header.items() if k not in ("tlvs", "ssl")}
    tlvs = header["tlvs"]
    out["alpn"] = tlvs[PP2_TYPE_ALPN].decode() if PP2_TYPE_ALPN in tlvs else None
    out["authority"] = tlvs[PP2_TYPE_AUTHORITY].decode() if PP2_TYPE_AUTHORITY in tlvs else None
    if "ssl" in header:
        ssl_tlvs = header["ssl"]["tlvs"]
        out["ssl"] = {"client": header["ssl"]["client"], "verify": header["ssl"]["verify"],
                      "version": ssl_tlvs.get(PP2_SUBTYPE_SSL_VERSION, b"").decode(),
                      "cipher": ssl_tlvs.get(PP2_SUBTYPE_SSL_CIPHER, b"").decode()}
    return out


def _record(backend, header):
    with backend.lock:
        backend.state.setdefault("headers", []).append(header)


def _answer_probe(stream):
    """A health probe after its LOCAL header: an http probe gets a 200, a
    tcp probe (nothing more) just its close."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = stream.recv(4096)
        if not chunk:
            return
        head += chunk
    stream.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def header_member(conn, backend):
    """Reads the PROXY header (required: anything else is an error), then
    answers it as one JSON line and echoes until EOF. Health probes (LOCAL,
    UNKNOWN) get their answer instead."""
    header = read_proxy_header(conn)
    _record(backend, header)
    if header["command"] in ("LOCAL", "UNKNOWN"):
        return _answer_probe(conn)
    conn.sendall(json.dumps(describe(header)).encode() + b"\n")
    if harness.echo_until_eof(conn):
        conn.shutdown(socket.SHUT_WR)


def header_sink(conn, backend):
    """Reads the PROXY header, then hashes everything until EOF and answers
    '<count> <sha256>'."""
    header = read_proxy_header(conn)
    _record(backend, header)
    count, digest = harness.hash_drain(conn)
    conn.sendall(f"{count} {digest}\n".encode())
    conn.shutdown(socket.SHUT_WR)


def tls_header_member(cert, key):
    """A TLS member that requires the PROXY header in plaintext before the
    handshake: reads it from the raw socket, then wraps the socket."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def handler(conn, backend):
        header = read_proxy_header(conn)
        _record(backend, header)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            if header["command"] in ("LOCAL", "UNKNOWN"):
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError):
                    pass
                return
            tls.sendall(json.dumps(describe(header)).encode() + b"\n")
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                tls.sendall(data)
    return handler


def headers_of(backend):
    with backend.lock:
        return list(backend.state.get("headers", []))


# --------------------------------------------------------------------------
# nginx


class Nginx:
    """nginx with one `listen 127.0.0.1:PORT proxy_protocol` server per port,
    answering every request with $proxy_protocol_addr:$proxy_protocol_port.
    Everything it writes (pid, logs, temp files) stays in `directory`."""

    def __init__(self, directory, ports):
        self.dir = os.path.join(directory, "nginx")
        os.makedirs(self.dir)
        self.ports = ports
        self.error_log = os.path.join(self.dir, "error.log")
        servers = "".join(
            f"  server {{\n    listen {LOOPBACK}:{port} proxy_protocol;\n"
            f'    location / {{ return 200 "$proxy_protocol_addr:$proxy_protocol_port\\n"; }}\n  }}\n'
            for port in ports)
        temp = "".join(f"  {kind}_temp_path {self.dir}/{kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # `user` is only allowed (and only needed) when started as root:
        # then the workers keep root and can use the temp directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = (f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
                f"pid {self.dir}/nginx.pid;\nerror_log {self.error_log} info;\n"
                "events { worker_connections 256; }\n"
                f"http {{\n  access_log off;\n{temp}{servers}}}\n")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.output = open(os.path.join(self.dir, "output.log"), "wb")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log],
                                     stdout=self.output, stderr=subprocess.STDOUT)
        for port in ports:
            wait_until(lambda: self._accepts(port), WAIT, f"nginx listening on {port}")

    def _accepts(self, port):
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited ({self.proc.returncode}): {self.log_text()}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return True
        except OSError:
            return False

    def log_text(self):
        with open(self.error_log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: master and workers
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self.output.close()


def http_get(port, source=None, path="/"):
    """A GET through ringlb from `source`; returns (client address, body)."""
    with mh.connect_from(port, source) as s:
        client = harness.client_name(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data, _ = harness.recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"not a 200: {data!r}")
    return client, body.decode().strip()


# --------------------------------------------------------------------------
# Config


def value(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
    return harness.toml_value(v)


def table(lines, header, values):
    lines += ["", header] + [f"{k} = {value(v)}" for k, v in values.items()]


def config(listeners, pools, admin_port=None):
    """listeners: [{"name", "bind", "pool", "tls": {...}, "routes": [(names, pool)], keys...}]
    pools: {name: {"members": [{member keys}], "health": {...}, "tls": {...}, keys...}}"""
    lines = []
    table(lines, "[global]", {"workers": 1, "access_log": "stdout", "shutdown_timeout": "5s"})
    if admin_port:
        table(lines, "[admin]", {"listen": f"{LOOPBACK}:{admin_port}"})
    for spec in listeners:
        spec = dict(spec)
        tls, routes = spec.pop("tls", None), spec.pop("routes", ())
        table(lines, "[[listener]]", spec)
        if tls:
            table(lines, "[listener.tls]", tls)
        for names, pool in routes:
            table(lines, "[[listener.route]]", {"server_names": names, "pool": pool})
    for name, spec in pools.items():
        spec = dict(spec)
        members, health, tls = spec.pop("members"), spec.pop("health", None), spec.pop("tls", None)
        table(lines, f"[pool.{name}]", spec)
        if health:
            table(lines, f"[pool.{name}.health]", health)
        if tls:
            table(lines, f"[pool.{name}.tls]", tls)
        for m in members:
            table(lines, f"[[pool.{name}.member]]", m)
    return "\n".join(lines).lstrip("\n") + "\n"


def listener(name, port, pool, **keys):
    return {"name": name, "bind": f"{LOOPBACK}:{port}", "pool": pool, **keys}


def member(name, address, **keys):
    return {"name": name, "address": address, **keys}


FAST_HTTP_HEALTH = {"kind": "http", "interval": "100ms", "timeout": "1s", "rise": 1, "fall": 2, "path": "/"}


class EdgeOutboundTest(harness.RinglbTest):
    def setUp(self):
        super().setUp()
        self.admin = harness.free_port()

    def start(self, listeners, pools):
        self.lb = self.start_ringlb(config(listeners, pools, admin_port=self.admin))
        return self.lb

    def answer(self, port, source=None, payload=b"after the header\n"):
        """One session to a header_member: its JSON answer, the echo checked."""
        with mh.connect_from(port, source) as s:
            header = json.loads(harness.read_line(s))
            s.sendall(payload)
            self.assertEqual(harness.recv_exact(s, len(payload)), payload)
            header["client"] = harness.client_name(s)
        return header

    def health(self, pool, name):
        return mh.member_status(self.admin, pool, name)["health"]

    def wait_probes_pass(self, pool, name, reason):
        """Several probes in a row passed with `reason` and none failed."""
        def passed():
            h = self.health(pool, name)
            return h["last_result"] == "passed" and h["last_reason"] == reason and h
        wait_until(passed, WAIT, f"{pool}/{name} passing its probes")
        wait_until(lambda: mh.scrape(self.admin).value("ringlb_member_probe_duration_seconds_count",
                                                       pool=pool, member=name) >= 5, WAIT, "five probes")
        h = self.health(pool, name)
        self.assertEqual((h["state"], h["last_result"], h["transitions"]), ("up", "passed", 0), h)


# --------------------------------------------------------------------------
# nginx members


class NginxMembers(EdgeOutboundTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.access(NGINX, os.X_OK), f"{NGINX} is missing: run scripts/setup --test")
        self.v1_port, self.v2_port, self.control_port = harness.free_port(), harness.free_port(), harness.free_port()
        self.nginx = Nginx(self.tmp.name, [self.v1_port, self.v2_port, self.control_port])
        self.addCleanup(self.nginx.stop)

    def test_v1_and_v2_members_see_each_clients_own_address_and_pass_http_checks(self):
        v1, v2, plain = harness.free_port(), harness.free_port(), harness.free_port()
        nginx_v1, nginx_v2 = f"{LOOPBACK}:{self.v1_port}", f"{LOOPBACK}:{self.v2_port}"
        self.start(
            [listener("v1", v1, "v1"), listener("v2", v2, "v2"), listener("plain", plain, "plain")],
            {"v1": {"send_proxy": "v1", "health": FAST_HTTP_HEALTH, "members": [member("n1", nginx_v1)]},
             # The pool says v1, the member overrides it.
             "v2": {"send_proxy": "v1", "health": FAST_HTTP_HEALTH,
                    "members": [member("n2", nginx_v2, send_proxy="v2")]},
             # Control: the same nginx without the header fails its checks.
             "plain": {"health": FAST_HTTP_HEALTH, "members": [member("n3", f"{LOOPBACK}:{self.control_port}")]}})
        for port in (v1, v2):
            for source in ("127.0.0.1", "127.0.0.2", "127.0.0.7", "127.0.0.200"):
                client, echoed = http_get(port, source)
                self.assertEqual(echoed, client, f"listener port {port}, source {source}")
        self.wait_probes_pass("v1", "n1", "status 200")
        self.wait_probes_pass("v2", "n2", "status 200")
        wait_until(lambda: self.health("plain", "n3")["state"] == "down", WAIT, "the control member down")
        self.assertEqual(self.health("plain", "n3")["last_result"], "failed")
        # nginx's own word: the control's probes had no header; nothing the
        # send_proxy pools sent (sessions, probes) was refused.
        # (The quoted header nginx logs spans lines: match across them.)
        servers = re.findall(r'broken header: ".*?" while reading PROXY protocol, client: \S+, server: ([0-9.:]+)',
                             self.nginx.log_text(), re.S)
        self.assertTrue(servers, self.nginx.log_text())
        self.assertEqual(set(servers), {f"{LOOPBACK}:{self.control_port}"})
        for pool, name in (("v1", "n1"), ("v2", "n2")):
            self.assertEqual(self.health(pool, name)["transitions"], 0)


# --------------------------------------------------------------------------
# Python members that read the header themselves


class HeaderContents(EdgeOutboundTest):
    def test_v1_and_v2_addresses_from_several_sources(self):
        m1, m2 = self.backend(header_member, "m1"), self.backend(header_member, "m2")
        p1, p2 = harness.free_port(), harness.free_port()
        self.start([listener("a", p1, "one"), listener("b", p2, "two")],
                   {"one": {"send_proxy": "v1", "members": [member("m1", m1.address)]},
                    "two": {"send_proxy": "v2", "members": [member("m2", m2.address)]}})
        for port, version in ((p1, 1), (p2, 2)):
            for source in ("127.0.0.3", "127.0.0.9"):
                header = self.answer(port, source)
                self.assertEqual(header["version"], version)
                self.assertEqual(header["command"], "TCP4" if version == 1 else "PROXY")
                self.assertEqual(header["source"], header["client"])
                self.assertEqual(header["destination"], f"{LOOPBACK}:{port}")
        self.assertBackendsClean(m1, m2)

    def test_ipv6_clients_in_v1_and_v2(self):
        m = self.backend(header_member, "m")
        p1, p2 = harness.free_port(), harness.free_port()
        self.start([{"name": "a", "bind": f"[::1]:{p1}", "pool": "one"},
                    {"name": "b", "bind": f"[::1]:{p2}", "pool": "two"}],
                   {"one": {"send_proxy": "v1", "members": [member("m1", m.address)]},
                    "two": {"send_proxy": "v2", "members": [member("m2", m.address)]}})
        for port, command in ((p1, "TCP6"), (p2, "PROXY")):
            with socket.create_connection(("::1", port), timeout=WAIT) as s:
                header = json.loads(harness.read_line(s))
                self.assertEqual(header["command"], command)
                self.assertEqual(header["source"], f"[::1]:{s.getsockname()[1]}")
                self.assertEqual(header["destination"], f"[::1]:{port}")

    def test_the_address_from_an_incoming_header_is_sent_on(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        self.start([listener("l", port, "p", accept_proxy="any", proxy_from=["127.0.0.0/8"])],
                   {"p": {"send_proxy": "v2", "members": [member("m", m.address)]}})
        with self.connect(port) as s:
            s.sendall(b"PROXY TCP4 198.51.100.7 203.0.113.9 4444 443\r\nhello\n")
            header = json.loads(harness.read_line(s))
            self.assertEqual(harness.read_line(s), b"hello\n")
        self.assertEqual((header["source"], header["destination"]), ("198.51.100.7:4444", "203.0.113.9:443"))
        with self.connect(port) as s:  # LOCAL: the connection's own addresses
            s.sendall(V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00]))
            header = json.loads(harness.read_line(s))
            self.assertEqual((header["source"], header["destination"]),
                             (harness.client_name(s), f"{LOOPBACK}:{port}"))

    def test_a_wildcard_listener_sends_the_address_the_client_connected_to(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        self.start([{"name": "any", "bind": f"0.0.0.0:{port}", "pool": "p"}],
                   {"p": {"send_proxy": "v2", "members": [member("m", m.address)]}})
        for target in ("127.0.0.1", "127.0.0.5"):
            with socket.create_connection((target, port), timeout=WAIT) as s:
                header = json.loads(harness.read_line(s))
                self.assertEqual(header["destination"], f"{target}:{port}")
                self.assertEqual(header["source"], harness.client_name(s))

    def test_a_member_that_speaks_first_gets_the_header_without_client_bytes(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        self.start([listener("l", port, "p")], {"p": {"send_proxy": "v1", "members": [member("m", m.address)]}})
        with self.connect(port) as s:  # sends nothing
            header = json.loads(harness.read_line(s))
            self.assertEqual(header["source"], harness.client_name(s))

    def test_a_refused_member_is_retried_and_the_next_gets_exactly_one_header(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        lb = self.start([listener("l", port, "p")],
                        {"p": {"send_proxy": "v2", "retries": 1,
                               "members": [member("dead", harness.dead_address()), member("m", m.address)]}})
        for _ in range(2):
            header = self.answer(port, payload=b"PROXY looks like a header but is payload\n")
            self.assertEqual(lb.entry_for(header["client"])["member"], "m")
        self.assertEqual(len(headers_of(m)), 2)
        self.assertTrue(any(e["attempts"] == 2 for e in lb.access_log()), lb.access_log())

    def test_a_reload_changes_the_header_of_new_connections(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        pools = {"p": {"send_proxy": "v1", "members": [member("m", m.address)]}}
        lb = self.start([listener("l", port, "p")], pools)
        kept = mh.connect_from(port)
        self.addCleanup(kept.close)
        self.assertEqual(json.loads(harness.read_line(kept))["version"], 1)
        self.assertEqual(self.answer(port)["version"], 1)
        pools["p"]["members"] = [member("m", m.address, send_proxy="v2")]
        self.write_config(config([listener("l", port, "p")], pools, admin_port=self.admin))
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded")
        self.assertEqual(self.answer(port)["version"], 2)
        kept.sendall(b"the old session goes on\n")
        self.assertEqual(harness.read_line(kept), b"the old session goes on\n")

    def test_bulk_transfer_through_the_splice_path_arrives_intact_after_the_header(self):
        m = self.backend(header_sink, "sink")
        port = harness.free_port()
        self.start([listener("l", port, "p")], {"p": {"send_proxy": "v2", "members": [member("m", m.address)]}})
        stream = harness.Stream(24 * MiB, seed=11)
        with self.connect(port) as s:
            for chunk in stream.chunks():
                s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            answer, _ = harness.recv_all(s)
        self.assertEqual(answer.decode(), f"{24 * MiB} {stream.sha256()}\n")
        self.assertEqual([h["version"] for h in headers_of(m)], [2])
        self.assertBackendsClean(m)


# --------------------------------------------------------------------------
# TLS: the v2 TLVs of a terminated session, a peeked SNI, origination


class TlsSessions(EdgeOutboundTest):
    def setUp(self):
        super().setUp()
        self.pki = Pki(self.tmp.name, "edge")
        self.front = self.pki.issue("a.test", ["a.test"])

    def test_terminated_tls_sends_alpn_authority_and_ssl_tlvs(self):
        clients = Pki(self.tmp.name, "clients")
        client_cert = clients.issue("someone", client=True)
        m = self.backend(header_member, "m")
        port = harness.free_port()
        tls = {"certificates": [{"cert": self.front[0], "key": self.front[1]}], "alpn": ["h2", "http/1.1"],
               "client_ca": clients.ca, "verify_client": "optional"}
        self.start([listener("l", port, "p", tls=tls)],
                   {"p": {"send_proxy": "v2", "members": [member("m", m.address)]}})
        for cert in (None, client_cert):
            ctx = client_context(self.pki.ca, cert=cert, alpn=["http/1.1"])
            with socket.create_connection((LOOPBACK, port), timeout=WAIT) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                    header = json.loads(harness.read_line(s))
                    self.assertEqual(header["source"], harness.client_name(s))
                    self.assertEqual(header["alpn"], "http/1.1")
                    self.assertEqual(header["authority"], "a.test")
                    self.assertEqual(header["ssl"]["version"], s.version())
                    self.assertEqual(header["ssl"]["cipher"], s.cipher()[0])
                    self.assertTrue(header["ssl"]["client"] & PP2_CLIENT_SSL, header)
                    if cert:
                        self.assertTrue(header["ssl"]["client"] & PP2_CLIENT_CERT_CONN, header)
                        self.assertEqual(header["ssl"]["verify"], 0, header)
                    else:
                        self.assertFalse(header["ssl"]["client"] & PP2_CLIENT_CERT_CONN, header)
                        self.assertNotEqual(header["ssl"]["verify"], 0, header)
                    s.sendall(b"ping\n")
                    self.assertEqual(harness.read_line(s), b"ping\n")
        self.assertBackendsClean(m)

    def test_a_passthrough_route_sends_the_peeked_sni_as_authority(self):
        m = self.backend(header_member, "m")
        port = harness.free_port()
        self.start([listener("l", port, "other", routes=[(["api.test"], "api")])],
                   {"api": {"send_proxy": "v2", "members": [member("m", m.address)]},
                    "other": {"members": [member("x", harness.dead_address())]}})
        hello = client_hello("api.test")
        with self.connect(port) as s:
            s.sendall(hello)
            header = json.loads(harness.read_line(s))
            self.assertEqual(header["authority"], "api.test")
            self.assertNotIn("ssl", header)  # not terminated: nothing known of the session
            # The peeked ClientHello follows the header, once (it went out
            # in the header's send, or partly, and the rest after it).
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(harness.recv_all(s), (hello, False))

    def test_an_originating_pool_sends_the_header_before_its_handshake(self):
        cert = self.pki.issue("api.internal", ["api.internal"])
        m = self.backend(tls_header_member(*cert), "secure")
        port = harness.free_port()
        self.start([listener("l", port, "p")],
                   {"p": {"send_proxy": "v1", "tls": {"server_name": "api.internal", "ca": self.pki.ca},
                          "health": {"kind": "tls", "interval": "100ms", "timeout": "1s", "fall": 1},
                          "members": [member("m", m.address)]}})
        with mh.connect_from(port, "127.0.0.4") as s:
            header = json.loads(harness.read_line(s))
            self.assertEqual(header["source"], harness.client_name(s))
            s.sendall(b"over tls\n")
            self.assertEqual(harness.read_line(s), b"over tls\n")
        self.wait_probes_pass("p", "m", "tls handshake ok")
        self.assertIn("UNKNOWN", {h["command"] for h in headers_of(m)})


# --------------------------------------------------------------------------
# What health probes send


class Probes(EdgeOutboundTest):
    def test_tcp_and_http_probes_start_with_a_local_header(self):
        v1, v2 = self.backend(header_member, "v1"), self.backend(header_member, "v2")
        port = harness.free_port()
        tcp = {"kind": "tcp", "interval": "100ms", "timeout": "1s", "fall": 1}
        self.start([listener("a", port, "tcp"), listener("b", harness.free_port(), "http")],
                   {"tcp": {"send_proxy": "v1", "health": tcp, "members": [member("v1", v1.address)]},
                    "http": {"send_proxy": "v2", "health": dict(FAST_HTTP_HEALTH, fall=1),
                             "members": [member("v2", v2.address)]}})
        self.wait_probes_pass("tcp", "v1", "connected")
        self.wait_probes_pass("http", "v2", "status 200")
        self.assertEqual({h["command"] for h in headers_of(v1)}, {"UNKNOWN"})
        self.assertEqual({(h["version"], h["command"]) for h in headers_of(v2)}, {(2, "LOCAL")})
        self.assertBackendsClean(v1, v2)

    def test_a_separate_health_port_gets_no_header(self):
        m = self.backend(header_member, "m")
        plain = self.backend(lambda conn, b: _answer_probe(conn), "health-port")
        self.start([listener("a", harness.free_port(), "p")],
                   {"p": {"send_proxy": "v2", "health": dict(FAST_HTTP_HEALTH, fall=1),
                          "members": [member("m", m.address, health_port=plain.port)]}})
        self.wait_probes_pass("p", "m", "status 200")
        self.assertEqual(headers_of(m), [])


if __name__ == "__main__":
    harness.main()
