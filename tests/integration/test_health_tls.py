"""Health probes over TLS: kind "tls" (a handshake that verifies, with the
pool's [pool.NAME.tls] settings) and kind "https" (the http check over TLS),
against members that are real TLS servers (Python's ssl, openssl s_server).
Certificates are made by the openssl CLI into the test's temporary directory."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
from harness import LOOPBACK, SCALE, member  # noqa: E402

DEADLINE = 30 * SCALE  # probes every 200ms; the machine may be busy


# --------------------------------------------------------------------------
# Certificates


def openssl(cwd, *args):
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


class Pki:
    """Two CAs and certificates from the first: the member's (api.internal
    and 127.0.0.1), an expired one for the same names, and a client's."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = self._ca("ca")
        self.other_ca = self._ca("other-ca")
        self.member = self._leaf("member", "subjectAltName=DNS:api.internal,IP:127.0.0.1")
        self.expired = self._leaf("expired", "subjectAltName=DNS:api.internal",
                                  dates=("20200101000000Z", "20200102000000Z"))
        self.client = self._leaf("client", None)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name):
        openssl(self.dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=ringlb test {name}",
                "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return self.path(f"{name}.pem")

    def _leaf(self, name, extension, dates=None):
        openssl(self.dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + (extension + "\n" if extension else ""))
        if dates is None:
            openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
        else:  # only `openssl ca` takes dates in the past
            with open(self.path("ca.cnf"), "w") as f:
                f.write("[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
                        "serial = serial.txt\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n")
            open(self.path("index.txt"), "w").close()
            with open(self.path("serial.txt"), "w") as f:
                f.write("1000\n")
            openssl(self.dir, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                    "-in", f"{name}.csr", "-out", f"{name}.pem", "-startdate", dates[0], "-enddate", dates[1],
                    "-extfile", f"{name}.ext", "-notext")
        return (self.path(f"{name}.pem"), self.path(f"{name}.key"))


# --------------------------------------------------------------------------
# Members


def tls_member_handler(conn, backend):
    """A TLS server on one connection: the handshake, then either an HTTP
    answer (state "status") or reading until the client closes. Handshake
    failures are counted, not raised."""
    context = backend.state["context"]
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        with backend.lock:
            backend.state.setdefault("refused", []).append(str(e))
        return
    with backend.lock:
        backend.state["handshakes"] = backend.state.get("handshakes", 0) + 1
        backend.state["client_cert"] = tls.getpeercert() or backend.state.get("client_cert")
    try:
        status = backend.state.get("status")
        if status is None:
            while tls.recv(4096):
                pass
            return
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = tls.recv(4096)
            if not chunk:
                return
            request += chunk
        with backend.lock:
            backend.state["request"] = request.decode("latin-1")
        tls.sendall(f"HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    except (ssl.SSLError, OSError):
        pass
    finally:
        tls.close()


def silent_handler(conn, backend):
    """Accepts TCP, reads, never answers."""
    while conn.recv(4096):
        pass


def handshakes(backend):
    with backend.lock:
        return backend.state.get("handshakes", 0)


class OpensslServer:
    """`openssl s_server -www` on a free port: answers any GET with
    "HTTP/1.0 200 ok" and a page about the session."""

    def __init__(self, cert, key):
        self.port = harness.free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-quiet", "-www", "-accept", f"{LOOPBACK}:{self.port}",
             "-cert", cert, "-key", key],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(self._listening, what="openssl s_server listening")

    def _listening(self):
        try:
            socket.create_connection((LOOPBACK, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def close(self):
        self.proc.kill()
        self.proc.wait()


# --------------------------------------------------------------------------
# Config


def _values(values):
    return [f"{k} = {mh._value(v)}" for k, v in values.items()]


def tls_config(port, admin, pools):
    """pools: {name: {"tls": {...}, "health": {...}, "members": [...]}}"""
    lines = ["[global]", "workers = 1", 'log_level = "info"', 'access_log = "off"', 'shutdown_timeout = "5s"',
             "", "[admin]", f'listen = "{LOOPBACK}:{admin}"',
             "", "[[listener]]", 'name = "front"', f'bind = "{LOOPBACK}:{port}"', f'pool = "{next(iter(pools))}"']
    for name, spec in pools.items():
        lines += ["", f"[pool.{name}]", "retries = 0"]
        lines += ["", f"[pool.{name}.tls]"] + _values(spec["tls"])
        lines += ["", f"[pool.{name}.health]"] + _values(spec["health"])
        for m in spec["members"]:
            lines += ["", f"[[pool.{name}.member]]"] + _values(m)
    return "\n".join(lines) + "\n"


def health(kind="tls", timeout="2s", **extra):
    h = {"kind": kind, "interval": "200ms", "timeout": timeout, "rise": 2, "fall": 2}
    h.update(extra)
    return h


class HealthTlsTest(harness.RinglbTest):

    def setUp(self):
        super().setUp()
        self.pki = Pki(self.tmp.name)

    def tls_member(self, identity, name, client_ca=None, status=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*identity)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        names = []
        context.sni_callback = lambda sock, server_name, ctx: names.append(server_name) and None
        b = self.backend(tls_member_handler, name=name)
        b.state.update(context=context, status=status, server_names=names)
        return b

    def wait_passing(self, admin, pool, name, backend, reason):
        """Up, its last probe passed with `reason`, after at least rise
        probes the member answered; never taken down."""
        def passed():
            health = mh.member_status(admin, pool, name)["health"]
            return health["last_result"] == "passed" and handshakes(backend) >= 2 and health
        health = harness.wait_until(passed, DEADLINE, f"passing probes of {pool}/{name}")
        self.assertEqual(health["state"], "up", health)
        self.assertEqual(health["last_reason"], reason, health)
        self.assertEqual(mh.member_status(admin, pool, name)["state"], "up")

    def wait_down(self, lb, admin, pool, name, reason):
        line = mh.wait_log(lb, mh.transition(pool, name), timeout=DEADLINE)
        self.assertIn(f"(last: {reason})", line)
        status = mh.member_status(admin, pool, name)
        self.assertEqual(status["state"], "down", status)
        self.assertEqual(status["health"]["last_reason"], reason, status)

    # ----------------------------------------------------------------------
    def test_tls_probes_verify_the_member(self):
        pki = self.pki
        good = self.tls_member(pki.member, "good")
        by_ip = self.tls_member(pki.member, "by_ip")
        expired = self.tls_member(pki.expired, "expired")
        mtls = self.tls_member(pki.member, "mtls", client_ca=pki.ca)
        silent = self.backend(silent_handler, name="silent")
        cert, key = pki.client
        verified = {"server_name": "api.internal", "ca": pki.ca}
        pools = {
            "good": {"tls": verified, "health": health(), "members": [member("m", good.address)]},
            "by_ip": {"tls": {"server_name": "127.0.0.1", "ca": pki.ca}, "health": health(),
                      "members": [member("m", by_ip.address)]},
            "other_ca": {"tls": {"server_name": "api.internal", "ca": pki.other_ca}, "health": health(),
                         "members": [member("m", good.address)]},
            "wrong_name": {"tls": {"server_name": "web.internal", "ca": pki.ca}, "health": health(),
                           "members": [member("m", good.address)]},
            "expired": {"tls": verified, "health": health(), "members": [member("m", expired.address)]},
            "unverified": {"tls": {"server_name": "web.internal", "ca": pki.other_ca, "verify": False},
                           "health": health(), "members": [member("m", expired.address)]},
            "no_client_cert": {"tls": verified, "health": health(), "members": [member("m", mtls.address)]},
            "client_cert": {"tls": dict(verified, cert=cert, key=key), "health": health(),
                            "members": [member("m", mtls.address)]},
            "silent": {"tls": verified, "health": health(timeout="500ms"),
                       "members": [member("m", silent.address)]},
        }
        port, admin = harness.free_port(), harness.free_port()
        lb = self.start_ringlb(tls_config(port, admin, pools))

        self.wait_down(lb, admin, "other_ca", "m",
                       "tls: certificate verify failed: unable to get local issuer certificate")
        self.wait_down(lb, admin, "wrong_name", "m", "tls: certificate verify failed: hostname mismatch")
        self.wait_down(lb, admin, "expired", "m", "tls: certificate verify failed: certificate has expired")
        self.wait_down(lb, admin, "no_client_cert", "m",
                       "tls: handshake failed: tlsv13 alert certificate required")
        self.wait_down(lb, admin, "silent", "m", "timeout after 500ms")

        self.wait_passing(admin, "good", "m", good, "tls handshake ok")
        self.wait_passing(admin, "by_ip", "m", by_ip, "tls handshake ok")
        self.wait_passing(admin, "unverified", "m", expired, "tls handshake ok")
        self.wait_passing(admin, "client_cert", "m", mtls, "tls handshake ok")
        for pool in ("good", "by_ip", "unverified", "client_cert"):
            self.assertFalse(mh.log_lines(lb, f"pool {pool} member m: up -> down"), lb.stderr_text())
        # SNI is the server name, never an IP literal; the member requiring a
        # client certificate got ringlb's.
        self.assertEqual(set(good.state["server_names"]), {"api.internal", "web.internal"})  # wrong_name's
        self.assertEqual(set(by_ip.state["server_names"]), {None})
        with mtls.lock:
            subject = dict(x[0] for x in mtls.state["client_cert"]["subject"])
        self.assertEqual(subject["commonName"], "client")
        self.assertBackendsClean(good, by_ip, expired, mtls, silent)

    # ----------------------------------------------------------------------
    def test_https_probes(self):
        pki = self.pki
        server = OpensslServer(*pki.member)
        self.addCleanup(server.close)
        ok = self.tls_member(pki.member, "ok", status=204)
        failing = self.tls_member(pki.member, "failing", status=503)
        verified = {"server_name": "api.internal", "ca": pki.ca}
        pools = {
            "s_server": {"tls": verified, "health": health("https", path="/"),
                         "members": [member("m", server.address)]},
            "ok": {"tls": verified, "health": health("https", path="/ready", host="ready.internal",
                                                     expect_status=[200, 204]),
                   "members": [member("m", ok.address)]},
            "failing": {"tls": verified, "health": health("https", path="/ready"),
                        "members": [member("m", failing.address)]},
            "other_ca": {"tls": {"server_name": "api.internal", "ca": pki.other_ca},
                         "health": health("https", path="/ready"), "members": [member("m", ok.address)]},
        }
        port, admin = harness.free_port(), harness.free_port()
        lb = self.start_ringlb(tls_config(port, admin, pools))

        self.wait_down(lb, admin, "failing", "m", "status 503")
        self.wait_down(lb, admin, "other_ca", "m",
                       "tls: certificate verify failed: unable to get local issuer certificate")
        with failing.lock:
            head = failing.state["request"]
        self.assertIn("\r\nHost: api.internal\r\n", head)  # https: server_name is the default Host
        self.wait_passing(admin, "ok", "m", ok, "status 204")
        with ok.lock:
            head = ok.state["request"]
        self.assertTrue(head.startswith("GET /ready HTTP/1.1\r\n"), head)
        self.assertIn("\r\nHost: ready.internal\r\n", head)
        self.assertIn("api.internal", ok.state["server_names"])

        def s_server_passed():
            h = mh.member_status(admin, "s_server", "m")["health"]
            return h["last_result"] == "passed" and h
        h = harness.wait_until(s_server_passed, DEADLINE, "a passing https probe of openssl s_server")
        self.assertEqual(h["last_reason"], "status 200", h)
        self.assertFalse(mh.log_lines(lb, "pool ok member m: up -> down"), lb.stderr_text())
        self.assertFalse(mh.log_lines(lb, "pool s_server member m: up -> down"), lb.stderr_text())

    # ----------------------------------------------------------------------
    def test_member_fixed_comes_back_up(self):
        """A member whose certificate stops verifying goes down, and comes
        back up once it serves a good one again (probes keep running)."""
        pki = self.pki
        b = self.tls_member(pki.expired, "m")
        port, admin = harness.free_port(), harness.free_port()
        pools = {"p": {"tls": {"server_name": "api.internal", "ca": pki.ca}, "health": health(),
                       "members": [member("m", b.address)]}}
        lb = self.start_ringlb(tls_config(port, admin, pools))
        self.wait_down(lb, admin, "p", "m", "tls: certificate verify failed: certificate has expired")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*pki.member)
        with b.lock:
            b.state["context"] = context
        line = mh.wait_log(lb, mh.transition("p", "m", down=False), timeout=DEADLINE)
        self.assertIn("tls handshake ok", line)
        self.assertEqual(mh.member_status(admin, "p", "m")["state"], "up")

    # ----------------------------------------------------------------------
    def test_reload_brings_the_new_tls_settings_to_probes(self):
        """Probes use the context of the running generation: a reload that
        fixes the pool's CA brings the member back up."""
        pki = self.pki
        b = self.tls_member(pki.member, "m")
        port, admin = harness.free_port(), harness.free_port()

        def config(ca):
            return tls_config(port, admin, {"p": {"tls": {"server_name": "api.internal", "ca": ca},
                                                  "health": health(), "members": [member("m", b.address)]}})
        lb = self.start_ringlb(config(pki.other_ca))
        self.wait_down(lb, admin, "p", "m", "tls: certificate verify failed: unable to get local issuer certificate")
        self.write_config(config(pki.ca))
        lb.signal(signal.SIGHUP)
        mh.wait_log(lb, "reloaded", timeout=DEADLINE)
        line = mh.wait_log(lb, mh.transition("p", "m", down=False), timeout=DEADLINE)
        self.assertIn("tls handshake ok", line)


if __name__ == "__main__":
    harness.main()
