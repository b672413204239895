"""The TLS section's certificates and contenders: the same ECDSA P-256 and
RSA-2048 certificates, made with the openssl CLI at bench time, served by
the backend nginx itself ("direct"), HAProxy (`bind ... ssl crt`), nginx
stream (`listen ... ssl`) and ringlb ([listener.tls]), each terminating TLS
in front of the plaintext HTTP backends. Every contender has two TLS
listeners: "ecdsa" and "rsa"."""

import os
import subprocess

from contenders import (IDLE_TIMEOUT_S, NGINX_STREAM_MODULE, HAProxy, NginxStream,
                        Ringlb, write)
from procs import Daemon, wait_for_port

KEY_KINDS = ("ecdsa", "rsa")
SERVER_NAME = "bench.ringlb.test"


class Certificate:
    def __init__(self, directory, kind):
        self.kind = kind
        self.cert = os.path.join(directory, f"{kind}.pem")
        self.key = os.path.join(directory, f"{kind}.key")
        self.bundle = os.path.join(directory, f"{kind}-bundle.pem")  # HAProxy: cert then key


def make_certificates(tmp):
    """{kind: Certificate}: a self-signed ECDSA P-256 and an RSA-2048
    certificate for SERVER_NAME, in TMP/tls."""
    d = os.path.join(tmp, "tls")
    os.makedirs(d, exist_ok=True)
    keys = {"ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "rsa": ["-newkey", "rsa:2048"]}
    certs = {}
    for kind in KEY_KINDS:
        c = Certificate(d, kind)
        run = subprocess.run(
            ["openssl", "req", "-x509", *keys[kind], "-nodes", "-days", "30",
             "-keyout", c.key, "-out", c.cert, "-subj", f"/CN={SERVER_NAME}",
             "-addext", f"subjectAltName=DNS:{SERVER_NAME}"],
            capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"openssl req ({kind}) failed:\n{run.stderr}")
        os.chmod(c.key, 0o600)
        with open(c.bundle, "w") as out:
            for part in (c.cert, c.key):
                with open(part) as f:
                    out.write(f.read())
        os.chmod(c.bundle, 0o600)
        certs[kind] = c
    return certs


def build_wrk_shim(tmp):
    """Compiles wrk_tls_shim.c into TMP; the path of the shared object."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(tmp, "wrk_tls_shim.so")
    run = subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", out,
                          os.path.join(here, "wrk_tls_shim.c"), "-lssl", "-ldl"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"compiling the wrk TLS shim failed (gcc and libssl-dev "
                           f"needed):\n{run.stderr}")
    return out


def backend_tls_servers(certs, ports, backends):
    """nginx http server blocks for the backend: TLS on PORTS (ecdsa, rsa),
    the same `ok`, /bulk and /upload as its plaintext servers ("direct" over
    TLS)."""
    return "".join(f"""
    server {{
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {certs[kind].cert};
        ssl_certificate_key {certs[kind].key};
        location / {{ return 200 "ok\\n"; }}
        location = /bulk {{ root {backends.bulk_root}; }}{backends.upload_location()}
    }}""" for kind, port in zip(KEY_KINDS, ports))


class TlsDirect:
    """No proxy: the backend nginx terminates TLS itself (same core as the
    client, as plaintext "direct" shares it)."""

    name = "direct"
    is_proxy = False

    def __init__(self, backends):
        self.backends = backends

    def port(self, kind):
        return self.backends.tls_ports[KEY_KINDS.index(kind)]

    def start(self):
        pass

    def stop(self):
        pass

    def pids(self):
        return []

    def describe(self):
        return ("no proxy: the backend nginx terminates TLS (ssl_certificate, "
                "ssl_protocols TLSv1.2 TLSv1.3)")


class _TlsProxy:
    """Mixed into a plaintext contender class: its listeners become the two
    TLS listeners, in front of the same HTTP backends."""

    is_proxy = True

    def setup_tls(self, certs):
        self.certs = certs
        self.daemon_name = f"{self.name}-tls-{self.workers}w"

    def port(self, kind):
        return self.ports[KEY_KINDS.index(kind)]

    def start(self):
        self.daemon = Daemon(self.daemon_name, self.argv(), self.tmp, self.cpus)
        for port in self.ports:
            wait_for_port(port, self.daemon)

    def _servers_http(self):
        return self.backends.http_ports


class TlsHAProxy(_TlsProxy, HAProxy):
    def __init__(self, tmp, backends, ports, workers, cpus, certs):
        HAProxy.__init__(self, tmp, backends, ports, workers, cpus)
        self.setup_tls(certs)

    def argv(self):
        servers = "\n".join(f"    server s{i} 127.0.0.1:{p}"
                            for i, p in enumerate(self._servers_http(), 1))
        frontends = "".join(f"""
frontend tls_{kind}
    bind 127.0.0.1:{self.port(kind)} ssl crt {self.certs[kind].bundle}
    default_backend http
""" for kind in KEY_KINDS)
        conf = write(os.path.join(self.dir, f"haproxy-tls-{self.workers}w.cfg"), f"""
global
    nbthread {self.workers}
    maxconn 9000

defaults
    mode tcp
    timeout connect 2s
    timeout client {IDLE_TIMEOUT_S}s
    timeout server {IDLE_TIMEOUT_S}s
{frontends}
backend http
    balance leastconn
{servers}
""")
        return ["haproxy", "-db", "-f", conf]

    def describe(self):
        return (f"HAProxy: mode tcp, `bind ... ssl crt` (defaults: tickets, "
                f"session cache), balance leastconn, nbthread {self.workers}")


class TlsNginxStream(_TlsProxy, NginxStream):
    def __init__(self, tmp, backends, ports, workers, cpus, certs):
        NginxStream.__init__(self, tmp, backends, ports, workers, cpus)
        self.setup_tls(certs)

    def argv(self):
        servers = "".join(f"\n        server 127.0.0.1:{p};" for p in self._servers_http())
        listeners = "".join(f"""
    server {{
        listen 127.0.0.1:{self.port(kind)} ssl backlog=4096;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {self.certs[kind].cert};
        ssl_certificate_key {self.certs[kind].key};
        proxy_pass http;
        proxy_connect_timeout 2s;
        proxy_timeout {IDLE_TIMEOUT_S}s;
    }}""" for kind in KEY_KINDS)
        conf = write(os.path.join(self.dir, f"nginx-tls-{self.workers}w.conf"), f"""
load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes {self.workers};
worker_rlimit_nofile 20000;
pid {self.dir}/nginx-tls.pid;
error_log {self.dir}/error-tls.log error;
events {{ worker_connections 19000; }}
stream {{
    upstream http {{
        least_conn;{servers}
    }}{listeners}
}}
""")
        return ["nginx", "-p", self.dir, "-e", f"{self.dir}/error-tls.log", "-c", conf]

    def describe(self):
        return (f"nginx stream: `listen ... ssl`, ssl_certificate, ssl_protocols "
                f"TLSv1.2 TLSv1.3 (1.22 leaves 1.3 out by default; otherwise defaults: "
                f"tickets), least_conn, worker_processes {self.workers}")


class TlsRinglb(_TlsProxy, Ringlb):
    def __init__(self, tmp, backends, ports, workers, cpus, binary, certs, balance):
        Ringlb.__init__(self, tmp, backends, ports, workers, cpus, binary)
        self.balance = balance
        self.setup_tls(certs)
        self.path = os.path.join(self.dir, f"ringlb-tls-{workers}w.toml")

    def tls_config(self):
        members = "".join(f'\n[[pool.http.member]]\naddress = "127.0.0.1:{p}"\n'
                          for p in self._servers_http())
        listeners = "".join(f"""
[[listener]]
name = "tls-{kind}"
bind = "127.0.0.1:{self.port(kind)}"
pool = "http"
max_connections = 100000
idle_timeout = "{IDLE_TIMEOUT_S}s"

[listener.tls]
certificates = [{{ cert = "{self.certs[kind].cert}", key = "{self.certs[kind].key}" }}]
""" for kind in KEY_KINDS)
        return f"""
[global]
workers = {self.workers}
access_log = "off"
log_level = "warn"
shutdown_timeout = "2s"
{listeners}
[pool.http]
balance = "{self.balance}"
connect_timeout = "2s"
retries = 2
{members}"""

    def check(self):
        """Raises when this ringlb build refuses the TLS config (for example
        a build without TLS termination yet)."""
        write(self.path, self.tls_config())
        check = subprocess.run([self.binary, "--check", self.path],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("ringlb --check refuses the TLS config: "
                               + (check.stdout + check.stderr).strip())

    def argv(self):
        self.check()
        return [self.binary, self.path]

    def describe(self):
        return f'ringlb: [listener.tls] (defaults), balance "{self.balance}", workers {self.workers}'
