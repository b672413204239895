"""TLS on the data path: termination ([listener.tls]), routing by SNI without
terminating ([[listener.route]]), origination ([pool.NAME.tls]), and the bad
input each must survive. Clients and TLS members are programs nobody here
wrote: `openssl s_client`, `curl` and Python's ssl module. Certificates are
made by the `openssl` command line into the test's temporary directory."""

import hashlib
import os
import select
import socket
import ssl
import subprocess
import time

import harness
import more_harness
from harness import LOOPBACK, MiB, SCALE, WAIT, wait_until

harness.END_REASONS |= {"tls_handshake_failed", "tls_handshake_timeout", "preread_timeout",
                        "client_hello_too_large"}


# --------------------------------------------------------------------------
# Certificates


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=60 * SCALE, **kw)


class Pki:
    """A CA in `directory` and certificates it signs (ECDSA P-256)."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        self.ca = os.path.join(directory, f"{name}-ca.pem")
        self.ca_key = os.path.join(directory, f"{name}-ca.key")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", f"/CN={name} test CA")
        os.chmod(self.ca_key, 0o600)

    def issue(self, cn, names=(), client=False):
        """(cert, key) paths of a certificate for `cn` with DNS names `names`."""
        base = os.path.join(self.dir, f"{self.name}-{cn}")
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        os.chmod(key, 0o600)
        with open(ext, "w") as f:
            if names:
                f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
            f.write("extendedKeyUsage=" + ("clientAuth" if client else "serverAuth") + "\n")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


# --------------------------------------------------------------------------
# Config


def q(value):
    return harness.toml_value(value)


def config(listener_port, pools, *, tls=None, routes=(), listener=None, default_pool="web", admin_port=None):
    """pools: {name: {"members": [addresses], "tls": {...} or None, keys...}}.
    tls: the [listener.tls] table as a dict (certificates: [(cert, key)])."""
    lines = ["[global]", "workers = 1", 'access_log = "stdout"', 'shutdown_timeout = "5s"', ""]
    if admin_port:
        lines += ["[admin]", f'listen = "{LOOPBACK}:{admin_port}"', ""]
    lines += [
             "[[listener]]", 'name = "front"', f'bind = "{LOOPBACK}:{listener_port}"', f"pool = {q(default_pool)}"]
    for k, v in (listener or {}).items():
        lines.append(f"{k} = {q(v)}")
    if tls is not None:
        lines += ["", "[listener.tls]"]
        certs = ", ".join(f"{{ cert = {q(c)}, key = {q(k)} }}" for c, k in tls["certificates"])
        lines.append(f"certificates = [{certs}]")
        for k, v in tls.items():
            if k == "certificates":
                continue
            if isinstance(v, list):
                lines.append(f"{k} = [{', '.join(q(x) for x in v)}]")
            else:
                lines.append(f"{k} = {q(v)}")
    for names, pool in routes:
        lines += ["", "[[listener.route]]", f"server_names = [{', '.join(q(n) for n in names)}]",
                  f"pool = {q(pool)}"]
    for name, spec in pools.items():
        lines += ["", f"[pool.{name}]", 'balance = "round_robin"']
        for k, v in spec.items():
            if k not in ("members", "tls"):
                lines.append(f"{k} = {q(v)}")
        for i, address in enumerate(spec["members"]):
            lines += ["", f"[[pool.{name}.member]]", f'name = "{name}-{i + 1}"', f"address = {q(address)}"]
        if spec.get("tls"):
            lines += ["", f"[pool.{name}.tls]"]
            lines += [f"{k} = {q(v)}" for k, v in spec["tls"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Members and clients


def http_handler(conn, backend):
    """A plaintext HTTP/1.1 member: answers each request with its name."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        body = f"hello from {backend.name}\n".encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if b"connection: close" in head.lower():
            return


def tls_member(cert, key, client_ca=None, name="tls-member"):
    """A handler for a TLS member (Python ssl): answers its name, then echoes
    until close. With client_ca it requires a client certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED

    def handler(conn, backend):
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            backend.state["refused"] = backend.state.get("refused", 0) + 1
            return
        with backend.lock:
            backend.state.setdefault("reused", []).append(tls.session_reused)
        peer = tls.getpeercert()
        who = dict(x[0] for x in peer["subject"])["commonName"] if peer else "-"
        tls.sendall(f"{backend.name} peer={who}\n".encode())
        while True:
            try:
                data = tls.recv(65536)
            except (ssl.SSLError, OSError):
                return
            if not data:
                break
            tls.sendall(data)
        try:
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass
        tls.close()
    return handler


def closed_soon(sock, timeout=None):
    """Reads until the peer closes (EOF or reset), whatever it sends first
    (a TLS alert); fails when the deadline passes. Returns the seconds waited."""
    start = time.monotonic()
    deadline = start + (timeout or WAIT)
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except ConnectionResetError:
            return time.monotonic() - start
        except socket.timeout:
            raise AssertionError("the connection was not closed in time")


def tls_exchange(tls, payload, timeout=None):
    """Sends payload over an SSL socket while reading as many bytes back, in
    one thread (an SSL object is not for two threads); returns them."""
    tls.setblocking(False)
    view = memoryview(payload)
    sent = 0
    received = bytearray()
    deadline = time.monotonic() + (timeout or WAIT * 3)
    while len(received) < len(payload):
        if time.monotonic() > deadline:
            raise AssertionError(f"sent {sent}, received {len(received)} of {len(payload)} in time")
        select.select([tls], [tls] if sent < len(payload) else [], [], 0.05)
        if sent < len(payload):
            try:
                sent += tls.send(view[sent:sent + (1 << 16)])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        try:
            chunk = tls.recv(1 << 16)
            if not chunk:
                break
            received.extend(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
    tls.setblocking(True)
    tls.settimeout(WAIT)
    return bytes(received)


def client_context(ca, cert=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def s_client(port, *args, stdin=b"", timeout=None):
    """Runs openssl s_client against ringlb; returns its stdout+stderr."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"{LOOPBACK}:{port}", "-ign_eof", *args],
                          input=stdin, capture_output=True, timeout=(timeout or WAIT) * 2)
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


def client_hello(server_name, alpn=None):
    """The bytes of a real ClientHello (Python's ssl) for server_name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def peek_handler(conn, backend):
    """Reads the number of bytes the test set in backend.state["expect"]
    and answers its name, their count and their sha256."""
    data = b""
    expect = backend.state.get("expect", 0)
    while len(data) < expect:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.sendall(f"{backend.name} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode())
    harness.recv_all(conn)


class TlsTest(harness.RinglbTest):
    def setUp(self):
        super().setUp()
        self.pki = Pki(self.tmp.name, "main")
        self.admin = harness.free_port()

    def wait_metric(self, name, value, **labels):
        """Waits until the metric sample has `value`."""
        def reached():
            got = more_harness.scrape(self.admin).value(name, **labels)
            return got == value or None
        try:
            wait_until(reached, WAIT, f"{name}{labels} == {value}")
        except AssertionError:
            raise AssertionError(f"{name}{labels}: {more_harness.scrape(self.admin).samples(name)}")

    def handshake_failure_logged(self, lb, client):
        entry = lb.entry_for(client)
        self.assertEqual(entry["end"], "tls_handshake_failed", entry)
        self.assertFalse(entry["member"], "a failed handshake never reaches a member")
        return entry


# --------------------------------------------------------------------------
# Termination


class Termination(TlsTest):
    def start(self, tls_extra=None, backend_handler=http_handler, **pool_extra):
        self.a = self.pki.issue("a.test", ["a.test"])
        self.b = self.pki.issue("b.test", ["b.test", "*.b.test"])
        self.member = self.backend(backend_handler, name="plain-1")
        self.port = harness.free_port()
        tls = {"certificates": [self.a, self.b]}
        tls.update(tls_extra or {})
        pools = {"web": {"members": [self.member.address], **pool_extra}}
        self.lb = self.start_ringlb(config(self.port, pools, tls=tls, admin_port=self.admin))
        return self.lb

    def test_each_name_gets_its_own_certificate(self):
        self.start()
        for sni, subject in (("a.test", "CN = a.test"), ("b.test", "CN = b.test"), ("x.b.test", "CN = b.test"),
                             ("other.test", "CN = a.test")):
            out = s_client(self.port, "-servername", sni, "-CAfile", self.pki.ca, "-verify_return_error",
                           stdin=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertIn(subject, out, f"{sni}: {out}")
            self.assertIn("hello from plain-1", out, out)
        entries = self.lb.wait_entries(4)
        self.assertEqual(sorted(e.get("sni") for e in entries), ["a.test", "b.test", "other.test", "x.b.test"])
        for e in entries:
            self.assertEqual(e["member"], "web-1")
            self.assertIn(e["tls_version"], ("TLSv1.3", "TLSv1.2"))
            self.assertTrue(e["tls_cipher"])
            self.assertIs(e["tls_resumed"], False)

    def test_curl_over_https_to_a_plaintext_member(self):
        self.start()
        for name in ("a.test", "b.test"):
            out = subprocess.run(
                ["curl", "-sS", "--max-time", str(int(WAIT)), "--cacert", self.pki.ca, "--resolve",
                 f"{name}:{self.port}:{LOOPBACK}", f"https://{name}:{self.port}/"],
                capture_output=True, timeout=WAIT * 2)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout, b"hello from plain-1\n")

    def test_alpn_is_negotiated_and_logged(self):
        self.start({"alpn": ["h2", "http/1.1"]})
        ctx = client_context(self.pki.ca, alpn=["http/1.1", "h2"])
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
                self.assertEqual(tls.selected_alpn_protocol(), "h2", "the server's order wins")
                client = "%s:%d" % tls.getsockname()
                tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                self.assertIn(b"hello from plain-1", harness.recv_all(tls)[0])
        self.assertEqual(self.lb.entry_for(client)["alpn"], "h2")

    def test_a_session_is_resumed_on_the_next_connection(self):
        self.start()
        sess = os.path.join(self.tmp.name, "session.pem")
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        first = s_client(self.port, "-servername", "a.test", "-CAfile", self.pki.ca, "-sess_out", sess,
                         stdin=request)
        self.assertIn("hello from plain-1", first)
        second = s_client(self.port, "-servername", "a.test", "-CAfile", self.pki.ca, "-sess_in", sess,
                          stdin=request)
        self.assertIn("Reused", second, second)
        self.assertIn("hello from plain-1", second)
        entries = self.lb.wait_entries(2)
        self.assertEqual([e["tls_resumed"] for e in entries], [False, True])
        self.wait_metric("ringlb_tls_resumed_handshakes_total", 1, listener="front")

    def test_tls_1_2_and_its_session_resumption(self):
        self.start()
        sess = os.path.join(self.tmp.name, "session12.pem")
        request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for args in (("-sess_out", sess), ("-sess_in", sess)):
            out = s_client(self.port, "-tls1_2", "-servername", "a.test", "-CAfile", self.pki.ca, *args,
                           stdin=request)
            self.assertIn("hello from plain-1", out)
        self.assertIn("Reused, TLSv1.2", out, out)
        entries = self.lb.wait_entries(2)
        self.assertEqual([(e["tls_version"], e["tls_resumed"]) for e in entries],
                         [("TLSv1.2", False), ("TLSv1.2", True)])

    def test_a_key_update_the_client_asks_for_is_answered(self):
        self.key_update_is_answered()

    def key_update_is_answered(self, after_first=lambda: None):
        # "K" makes s_client send a KeyUpdate that requests ringlb's own;
        # ringlb seals it ahead of the next record it encrypts and moves to
        # its next keys, and the client must still decrypt everything after.
        self.start(backend_handler=harness.echo_handler)
        proc = subprocess.Popen(["openssl", "s_client", "-connect", f"{LOOPBACK}:{self.port}", "-servername",
                                 "a.test", "-CAfile", self.pki.ca],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(proc.kill)
        # Each line is written once the last one had its effect: s_client
        # takes a read of its input that starts with K as the command.
        for line in (b"first\n", b"K\n", b"second\n", b"K\n", b"third\n"):
            proc.stdin.write(line)
            proc.stdin.flush()
            expect = b"KEYUPDATE\n" if line == b"K\n" else line
            while True:  # s_client prints the session too
                got = proc.stdout.readline()
                self.assertTrue(got, f"s_client ended before {expect!r}")
                if got == expect:
                    break
            if line == b"first\n":
                after_first()
        proc.stdin.close()
        self.assertEqual(proc.wait(WAIT), 0)
        entry = self.lb.wait_entries(1)[0]
        self.assertEqual(entry["bytes_in"], len(b"first\nsecond\nthird\n"))

    def test_a_required_client_certificate(self):
        client_pki = Pki(self.tmp.name, "clients")
        self.start({"client_ca": client_pki.ca, "verify_client": "required"})
        good = client_pki.issue("client-one", client=True)
        ctx = client_context(self.pki.ca, cert=good)
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
                client = "%s:%d" % tls.getsockname()
                tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                self.assertIn(b"hello from plain-1", harness.recv_all(tls)[0])
        self.assertIn("client-one", self.lb.entry_for(client)["client_cert"])

        ctx = client_context(self.pki.ca)  # no certificate
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
            client = "%s:%d" % raw.getsockname()
            with self.assertRaises((ssl.SSLError, OSError)):
                with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
                    # TLS 1.3: the server's verdict comes after the client's Finished.
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    if not harness.recv_all(tls)[0]:
                        raise OSError("closed")
        self.handshake_failure_logged(self.lb, client)
        self.assertEqual(self.member.accepted, 1)
        self.wait_metric("ringlb_tls_handshakes_total", 1, listener="front", result="bad_certificate")
        self.wait_metric("ringlb_tls_handshakes_total", 1, listener="front", result="ok")

    def test_an_optional_client_certificate(self):
        client_pki = Pki(self.tmp.name, "clients")
        self.start({"client_ca": client_pki.ca, "verify_client": "optional"})
        for cert in (client_pki.issue("client-two", client=True), None):
            ctx = client_context(self.pki.ca, cert=cert)
            with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as tls:
                    client = "%s:%d" % tls.getsockname()
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    self.assertIn(b"hello from plain-1", harness.recv_all(tls)[0])
            entry = self.lb.entry_for(client)
            if cert:
                self.assertIn("client-two", entry["client_cert"])
            else:
                self.assertNotIn("client_cert", entry)

    def test_a_handshake_that_does_not_finish_is_cut_at_the_timeout(self):
        self.start({"handshake_timeout": "1s"})
        hello = client_hello("a.test")
        started = time.monotonic()
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        for byte in hello[:20]:  # dribbling, then nothing
            sock.sendall(bytes([byte]))
        closed_soon(sock)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        entry = self.lb.entry_for(client)
        self.assertEqual(entry["end"], "tls_handshake_timeout")
        self.assertEqual(self.member.accepted, 0)
        self.wait_metric("ringlb_tls_handshakes_total", 1, listener="front", result="timeout")

    def test_garbage_and_plain_http_are_closed_without_a_member(self):
        self.start()
        # A session in the middle of its life, which the bad ones must not disturb.
        good = client_context(self.pki.ca).wrap_socket(
            socket.create_connection((LOOPBACK, self.port), timeout=WAIT), server_hostname="a.test")
        self.addCleanup(good.close)

        def ask_good():
            good.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            answer = b""
            while not answer.endswith(b"hello from plain-1\n"):
                chunk = good.recv(4096)
                self.assertTrue(chunk, f"the good session ended: {answer!r}")
                answer += chunk
        ask_good()
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(3000), client_hello("a.test")[:30]):
            sock = self.connect(self.port)
            client = harness.client_name(sock)
            sock.sendall(data)
            if len(data) == 30:
                sock.shutdown(socket.SHUT_WR)  # a truncated ClientHello
            closed_soon(sock)
            self.handshake_failure_logged(self.lb, client)
        self.assertEqual(self.member.accepted, 1, "only the good session reached the member")
        ask_good()
        self.wait_metric("ringlb_tls_handshakes_total", 3, listener="front", result="protocol")
        # The listener still serves.
        out = s_client(self.port, "-servername", "a.test", "-CAfile", self.pki.ca,
                       stdin=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertIn("hello from plain-1", out)

    def test_clients_that_leave_at_every_step(self):
        # Resets mid-handshake, right after it, mid-request and mid-answer,
        # many at once: nothing may leak or crash, and service goes on.
        self.start(backend_handler=harness.echo_handler)
        hello = client_hello("a.test")
        ctx = client_context(self.pki.ca)

        def reset(sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            sock.close()

        def one(step):
            raw = socket.create_connection((LOOPBACK, self.port), timeout=WAIT)
            if step == 0:
                raw.sendall(hello[: len(hello) // 2])
                return reset(raw)
            tls = ctx.wrap_socket(raw, server_hostname="a.test")
            if step == 1:
                return reset(tls)
            tls.sendall(os.urandom(100000))
            if step == 2:
                return reset(tls)
            tls.recv(1000)
            reset(tls)

        errors = []

        def worker(i):
            try:
                for round_ in range(5):
                    one((i + round_) % 4)
            except (OSError, ssl.SSLError) as e:  # noqa: PERF203 - recorded
                errors.append(repr(e))
        threads = [harness.threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 3)
        self.assertFalse(errors)
        self.lb.wait_entries(40)
        payload = os.urandom(300000)
        with ctx.wrap_socket(socket.create_connection((LOOPBACK, self.port), timeout=WAIT),
                             server_hostname="a.test") as tls:
            self.assertEqual(tls_exchange(tls, payload), payload)

    def test_a_big_transfer_both_ways_keeps_every_byte(self):
        self.start(backend_handler=harness.echo_handler)
        payload = os.urandom(8 * MiB)
        ctx = client_context(self.pki.ca)
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT * 3) as raw:
            with ctx.wrap_socket(raw, server_hostname="b.test") as tls:
                client = "%s:%d" % tls.getsockname()
                received = tls_exchange(tls, payload)
                # close_notify: the member sees EOF and closes; its FIN comes
                # back as ringlb's close_notify, which ends unwrap().
                tls.unwrap()
        self.assertEqual(hashlib.sha256(received).hexdigest(), hashlib.sha256(payload).hexdigest())
        entry = self.lb.entry_for(client)
        self.assertEqual(entry["bytes_in"], len(payload))
        self.assertEqual(entry["bytes_out"], len(payload))


class TerminationWithKernelTxOffered(Termination):
    """Every termination test again with client legs offering OpenSSL to hand
    over their transmit keys (RINGLB_KTLS_OFFER=always). Without a tls module
    the kernel refuses each hand-over and the leg seals records itself; with
    one, the kernel encrypts. Either way every byte must arrive."""

    def setUp(self):
        super().setUp()
        previous = os.environ.get("RINGLB_KTLS_OFFER")
        os.environ["RINGLB_KTLS_OFFER"] = "always"
        self.addCleanup(lambda: os.environ.__setitem__("RINGLB_KTLS_OFFER", previous) if previous is not None
                        else os.environ.pop("RINGLB_KTLS_OFFER", None))

    def test_a_key_update_the_client_asks_for_is_answered(self):
        # Refused by the kernel, the leg seals, and answers the update as it
        # does without the offer. Handed over, the kernel's keys could not
        # follow (the leg fails at the update): no kernel here takes them.
        def skip_if_handed_over():
            metrics = more_harness.scrape(self.admin)
            if metrics.value("ringlb_tls_kernel_tx_total", listener="front", result="ok") == 1:
                self.skipTest("the kernel took the keys: a requested key update ends the session")

        self.key_update_is_answered(skip_if_handed_over)

    def test_every_session_tried_the_kernel(self):
        self.start()
        for _ in range(3):
            out = subprocess.run(
                ["curl", "-sS", "--max-time", str(int(WAIT)), "--cacert", self.pki.ca, "--resolve",
                 f"a.test:{self.port}:{LOOPBACK}", f"https://a.test:{self.port}/"],
                capture_output=True, timeout=WAIT * 2)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout, b"hello from plain-1\n")
        self.lb.wait_entries(3)
        metrics = more_harness.scrape(self.admin)
        handed = metrics.value("ringlb_tls_kernel_tx_total", listener="front", result="ok")
        refused = metrics.value("ringlb_tls_kernel_tx_total", listener="front", result="refused")
        self.assertEqual(handed + refused, 3, metrics.samples("ringlb_tls_kernel_tx_total"))


# --------------------------------------------------------------------------
# Routing by SNI without terminating


class Routing(TlsTest):
    def start(self, handler=peek_handler, preread_timeout="5s"):
        self.web = self.backend(handler, name="web-member")
        self.api = self.backend(handler, name="api-member")
        self.port = harness.free_port()
        pools = {"web": {"members": [self.web.address]}, "api": {"members": [self.api.address]}}
        self.lb = self.start_ringlb(config(self.port, pools, routes=[(["api.internal", "*.svc.internal"], "api")],
                                           listener={"preread_timeout": preread_timeout}, admin_port=self.admin))

    def exchange(self, data, one_byte_at_a_time=False):
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        if one_byte_at_a_time:
            for byte in data:
                sock.sendall(bytes([byte]))
        else:
            sock.sendall(data)
        answer = harness.read_line(sock).decode()
        sock.close()
        return answer, self.lb.entry_for(client)

    def test_the_client_hello_chooses_the_pool_byte_by_byte(self):
        self.start()
        for sni, pool, route in (("api.internal", "api", "sni"), ("x.svc.internal", "api", "sni"),
                                 ("www.example", "web", "default_no_match")):
            hello = client_hello(sni, alpn=["h2", "http/1.1"])
            for backend in (self.web, self.api):
                backend.state["expect"] = len(hello)
            answer, entry = self.exchange(hello, one_byte_at_a_time=True)
            name, count, digest = answer.split()
            self.assertEqual(name, f"{pool}-member", sni)
            self.assertEqual((int(count), digest), (len(hello), hashlib.sha256(hello).hexdigest()),
                             "every peeked byte reaches the member")
            self.assertEqual((entry["sni"], entry["route"], entry["pool"]), (sni, route, pool))
            self.assertEqual(entry["alpn"], "h2,http/1.1")
        self.wait_metric("ringlb_listener_routed_total", 2, listener="front", route="sni")
        self.wait_metric("ringlb_listener_routed_total", 1, listener="front", route="default")

    def test_no_sni_and_not_tls_go_to_the_default_pool(self):
        self.start()
        hello = client_hello(None)
        self.web.state["expect"] = len(hello)
        answer, entry = self.exchange(hello)
        self.assertTrue(answer.startswith("web-member"), answer)
        self.assertEqual(entry["route"], "default_no_sni")
        data = b"PING plain text\n"
        self.web.state["expect"] = len(data)
        answer, entry = self.exchange(data)
        self.assertEqual(answer.split()[1:], [str(len(data)), hashlib.sha256(data).hexdigest()])
        self.assertEqual((entry["route"], entry["pool"]), ("default_not_tls", "web"))

    def test_a_server_first_protocol_reaches_the_default_pool_after_the_timeout(self):
        def greeter(conn, backend):
            conn.sendall(f"220 {backend.name} ready\n".encode())
            line = harness.read_line(conn)
            conn.sendall(b"echo " + line)
            harness.recv_all(conn)
        self.start(handler=greeter, preread_timeout="1s")
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        started = time.monotonic()
        self.assertEqual(harness.read_line(sock), b"220 web-member ready\n")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        sock.sendall(b"hello\n")
        self.assertEqual(harness.read_line(sock), b"echo hello\n")
        sock.close()
        self.assertEqual(self.lb.entry_for(client)["route"], "default_timeout")

    def test_a_client_hello_over_16_kib_is_closed(self):
        self.start()
        # A handshake record announcing a 20,000-byte ClientHello, then filler.
        body_length = 20000
        record = bytes([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]) + body_length.to_bytes(3, "big")
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        try:
            sock.sendall(record + b"\x03\x03" + b"\0" * (17 * 1024))
        except OSError:
            pass
        harness.wait_closed_by_peer(sock, timeout=WAIT)
        entry = self.lb.entry_for(client)
        self.assertEqual(entry["end"], "client_hello_too_large")
        self.assertEqual(self.web.accepted + self.api.accepted, 0)

    def test_a_dribbled_client_hello_is_closed_at_the_timeout(self):
        self.start(preread_timeout="1s")
        hello = client_hello("api.internal")
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        sock.sendall(hello[:10])
        harness.wait_closed_by_peer(sock, timeout=WAIT)
        self.assertEqual(self.lb.entry_for(client)["end"], "preread_timeout")
        self.assertEqual(self.web.accepted + self.api.accepted, 0)

    def test_tls_passes_through_untouched(self):
        cert = self.pki.issue("api.internal", ["api.internal"])
        self.api = self.backend(tls_member(*cert), name="api-tls")
        self.web = self.backend(http_handler, name="web")
        self.port = harness.free_port()
        pools = {"web": {"members": [self.web.address]}, "api": {"members": [self.api.address]}}
        self.lb = self.start_ringlb(config(self.port, pools, routes=[(["api.internal"], "api")]))
        ctx = client_context(self.pki.ca)
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="api.internal") as tls:
                self.assertEqual(harness.read_line(tls), b"api-tls peer=-\n")
                tls.sendall(b"through\n")
                self.assertEqual(harness.read_line(tls), b"through\n")


# --------------------------------------------------------------------------
# Origination


class Origination(TlsTest):
    def start(self, members, pool_tls, listener_tls=None, retries=2):
        self.port = harness.free_port()
        pools = {"web": {"members": [m.address for m in members], "retries": retries, "tls": pool_tls}}
        self.lb = self.start_ringlb(config(self.port, pools, tls=listener_tls, admin_port=self.admin))

    def talk(self, sock):
        greeting = harness.read_line(sock)
        sock.sendall(b"ping\n")
        echo = harness.read_line(sock)
        return greeting.decode(), echo

    def test_a_verified_member(self):
        cert = self.pki.issue("api.internal", ["api.internal"])
        m = self.backend(tls_member(*cert), name="secure-1")
        self.start([m], {"server_name": "api.internal", "ca": self.pki.ca})
        for _ in range(3):
            sock = self.connect(self.port)
            greeting, echo = self.talk(sock)
            self.assertEqual(greeting, "secure-1 peer=-\n")
            self.assertEqual(echo, b"ping\n")
            client = harness.client_name(sock)
            sock.close()
            self.assertEqual(self.lb.entry_for(client)["member"], "web-1")
        reused = m.state["reused"]
        self.assertFalse(reused[0])
        self.assertTrue(all(reused[1:]), f"later connections resume the member's session: {reused}")

    def test_a_member_whose_certificate_does_not_verify_is_skipped(self):
        stranger = Pki(self.tmp.name, "stranger")
        bad = self.backend(tls_member(*stranger.issue("api.internal", ["api.internal"])), name="bad")
        good = self.backend(tls_member(*self.pki.issue("api.internal", ["api.internal"])), name="good")
        self.start([bad, good], {"server_name": "api.internal", "ca": self.pki.ca})
        for _ in range(2):  # round robin tries the bad one first once
            sock = self.connect(self.port)
            greeting, echo = self.talk(sock)
            self.assertEqual(greeting, "good peer=-\n")
            client = harness.client_name(sock)
            sock.close()
            entry = self.lb.entry_for(client)
            self.assertEqual(entry["member"], "web-2")
        self.assertTrue(any(e["attempts"] == 2 for e in self.lb.access_log()), self.lb.access_log())
        wait_until(lambda: bad.state.get("refused", 0) >= 1, WAIT, "the bad member's failed handshake")
        self.wait_metric("ringlb_member_tls_failures_total", 1, pool="web", member="web-1")
        self.wait_metric("ringlb_member_connect_failures_total", 1, pool="web", member="web-1", reason="refused")
        self.wait_metric("ringlb_member_tls_failures_total", 0, pool="web", member="web-2")

    def test_a_member_with_the_wrong_name_is_skipped(self):
        wrong = self.backend(tls_member(*self.pki.issue("other.internal", ["other.internal"])), name="wrong")
        self.start([wrong], {"server_name": "api.internal", "ca": self.pki.ca}, retries=0)
        sock = self.connect(self.port)
        client = harness.client_name(sock)
        harness.wait_closed_by_peer(sock, timeout=WAIT)
        entry = self.lb.entry_for(client)
        self.assertEqual(entry["end"], "connect_refused")
        self.assertFalse(entry["member"])

    def test_mutual_tls_to_a_member_that_requires_a_client_certificate(self):
        clients = Pki(self.tmp.name, "lbclients")
        lb_cert = clients.issue("ringlb", client=True)
        m = self.backend(tls_member(*self.pki.issue("api.internal", ["api.internal"]), client_ca=clients.ca),
                         name="mtls")
        self.start([m], {"server_name": "api.internal", "ca": self.pki.ca, "cert": lb_cert[0], "key": lb_cert[1]})
        sock = self.connect(self.port)
        greeting, echo = self.talk(sock)
        self.assertEqual(greeting, "mtls peer=ringlb\n")
        self.assertEqual(echo, b"ping\n")

    def test_both_legs_tls(self):
        m = self.backend(tls_member(*self.pki.issue("api.internal", ["api.internal"])), name="secure")
        front = self.pki.issue("front.test", ["front.test"])
        self.start([m], {"server_name": "api.internal", "ca": self.pki.ca}, listener_tls={"certificates": [front]})
        ctx = client_context(self.pki.ca)
        payload = os.urandom(2 * MiB)
        with socket.create_connection((LOOPBACK, self.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="front.test") as tls:
                self.assertEqual(harness.read_line(tls), b"secure peer=-\n")
                received = tls_exchange(tls, payload)
        self.assertEqual(hashlib.sha256(received).hexdigest(), hashlib.sha256(payload).hexdigest())


# --------------------------------------------------------------------------
# The bench's in-memory handshake tool (scripts/bench, TLS section)


class HandshakeTool(TlsTest):
    def test_threads_complete_handshakes_on_worker_contexts(self):
        tool = os.path.join(os.path.dirname(harness.RINGLB), "ringlb-handshake-threads")
        path = os.path.join(self.tmp.name, "tool.toml")
        with open(path, "w") as f:
            f.write(config(harness.free_port(), {"web": {"members": [f"{LOOPBACK}:9"]}},
                           tls={"certificates": [self.pki.issue("a.test", ["a.test"])]}))
        for extra in ([], ["--shared-library"]):
            run = subprocess.run([tool, path, "front", "2", "0.3", *extra], capture_output=True, text=True,
                                 timeout=WAIT * 4)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertRegex(run.stdout, r"^handshakes/s [1-9][0-9]*\n$", extra)
        run = subprocess.run([tool, path, "no-such-listener", "1", "0.1"], capture_output=True, text=True,
                             timeout=WAIT)
        self.assertEqual(run.returncode, 1)
        self.assertIn("no TLS listener no-such-listener", run.stderr)


if __name__ == "__main__":
    harness.main()
