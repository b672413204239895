"""The backends every contender shares, and the contenders: no proxy
("direct"), HAProxy, nginx stream and ringlb, each with the same two
listeners: "http" in front of the three nginx HTTP servers and "bulk" in
front of the iperf3 server.

A proxy's worker count of None means its own default for the machine:
ringlb without `workers` (one per online CPU), HAProxy without `nbthread`
(one thread per CPU it may run on), nginx `worker_processes auto`."""

import os
import subprocess

from procs import Daemon, set_affinity, wait_for_port

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
# libnginx-mod-http-echo, a dependency of nginx-light.
NGINX_ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

# Every timeout that could end an idle proxied connection during a run.
IDLE_TIMEOUT_S = 3600


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Backends:
    """One nginx (one worker) serving `ok\\n` on three ports, and one
    iperf3 server. Both run on the load CPUs.

    The TLS section adds, before start(): a large body at /bulk (a file in
    bulk_root), /upload, which reads the whole request body before it
    answers (with upload set), and TLS servers of the same nginx
    (tls_servers, on tls_ports)."""

    def __init__(self, tmp, http_ports, iperf_port, cpus):
        self.tmp = tmp
        self.http_ports = http_ports
        self.iperf_port = iperf_port
        self.cpus = cpus
        self.nginx = None
        self.iperf = None
        self.bulk_root = os.path.join(tmp, "backend", "www")
        self.tls_ports = ()
        self.tls_servers = ""
        self.upload = False

    def start(self):
        d = os.path.join(self.tmp, "backend")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        servers = "".join(
            f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
        location = /bulk {{ root {self.bulk_root}; }}{self.upload_location()}
    }}""" for port in self.http_ports) + self.tls_servers
        conf = write(os.path.join(d, "nginx.conf"), f"""
{f"load_module {NGINX_ECHO_MODULE};" if self.upload else ""}
daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout {IDLE_TIMEOUT_S}s;
    client_header_timeout {IDLE_TIMEOUT_S}s;
    client_max_body_size 0;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{servers}
}}
""")
        self.nginx = Daemon("backend-nginx",
                            ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", conf],
                            self.tmp, self.cpus)
        self.start_iperf()
        for port in (*self.http_ports, *self.tls_ports):
            wait_for_port(port, self.nginx)

    def upload_location(self):
        """A location that answers only once the whole body is in: nginx's
        own `return` answers first and drops the body later, which a client
        still sending it (wrk) does not expect."""
        if not self.upload:
            return ""
        return """
        location = /upload {
            client_body_buffer_size 8m;
            echo_read_request_body;
            echo "ok";
        }"""

    def start_iperf(self):
        self.iperf = Daemon("backend-iperf3",
                            ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.iperf_port)],
                            self.tmp, self.cpus)
        wait_for_port(self.iperf_port, self.iperf)

    def pin(self, cpus):
        """Moves the running backends (and any iperf3 -s started later) to CPUS."""
        self.cpus = cpus
        for d in (self.nginx, self.iperf):
            if d is not None:
                set_affinity(d.pids(), cpus)

    def restart_iperf(self):
        """iperf3 -s can stay busy after a client that failed mid-test."""
        self.iperf.stop()
        self.start_iperf()

    def stop(self):
        for d in (self.iperf, self.nginx):
            if d is not None:
                d.stop()


class Contender:
    """No proxy: the client talks to the backends itself."""

    name = "direct"
    is_proxy = False

    def __init__(self, tmp, backends):
        self.tmp = tmp
        self.backends = backends
        self.daemon = None

    @property
    def http_port(self):
        return self.backends.http_ports[0]

    @property
    def bulk_port(self):
        return self.backends.iperf_port

    def start(self):
        pass

    def stop(self):
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def pids(self):
        return self.daemon.pids() if self.daemon else []

    def describe(self):
        return "no proxy: clients connect to the backends"


class Proxy(Contender):
    is_proxy = True

    def __init__(self, tmp, backends, ports, workers, cpus):
        super().__init__(tmp, backends)
        self.ports = ports          # (http, bulk)
        self.workers = workers      # None: the proxy's own default
        self.cpus = cpus            # a taskset list, or None: inherit the driver's
        self.dir = os.path.join(tmp, self.name)
        os.makedirs(self.dir, exist_ok=True)

    @property
    def http_port(self):
        return self.ports[0]

    @property
    def bulk_port(self):
        return self.ports[1]

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.daemon = Daemon(self.name, self.argv(), self.tmp, self.cpus)
        for port in self.ports:
            wait_for_port(port, self.daemon)


class HAProxy(Proxy):
    name = "haproxy"

    def argv(self):
        b = self.backends
        servers = "\n".join(f"    server s{i} 127.0.0.1:{p}"
                            for i, p in enumerate(b.http_ports, 1))
        nbthread = "" if self.workers is None else f"    nbthread {self.workers}\n"
        # maxconn 9000 proxied connections = 18,000 fds, plus 500 pipes
        # (1,000 fds): within the 20,000 hard limit of these machines.
        conf = write(os.path.join(self.dir, "haproxy.cfg"), f"""
global
{nbthread}    maxconn 9000
    maxpipes 500

defaults
    mode tcp
    option splice-auto
    timeout connect 2s
    timeout client {IDLE_TIMEOUT_S}s
    timeout server {IDLE_TIMEOUT_S}s

frontend http
    bind 127.0.0.1:{self.ports[0]}
    default_backend http

backend http
    balance leastconn
{servers}

frontend bulk
    bind 127.0.0.1:{self.ports[1]}
    default_backend bulk

backend bulk
    balance leastconn
    server iperf 127.0.0.1:{b.iperf_port}
""")
        return ["haproxy", "-db", "-f", conf]

    def describe(self):
        threads = ("nbthread unset (one thread per CPU)" if self.workers is None
                   else f"nbthread {self.workers}")
        return f"HAProxy: mode tcp, balance leastconn, option splice-auto, {threads}"


class NginxStream(Proxy):
    name = "nginx"

    def argv(self):
        b = self.backends
        servers = "".join(f"\n        server 127.0.0.1:{p};" for p in b.http_ports)
        conf = write(os.path.join(self.dir, "nginx.conf"), f"""
load_module {NGINX_STREAM_MODULE};
daemon off;
worker_processes {self.worker_processes()};
worker_rlimit_nofile 20000;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log error;
events {{ worker_connections 19000; }}
stream {{
    upstream http {{
        least_conn;{servers}
    }}
    upstream bulk {{
        least_conn;
        server 127.0.0.1:{b.iperf_port};
    }}
    server {{
        listen 127.0.0.1:{self.ports[0]} backlog=4096;
        proxy_pass http;
        proxy_connect_timeout 2s;
        proxy_timeout {IDLE_TIMEOUT_S}s;
    }}
    server {{
        listen 127.0.0.1:{self.ports[1]};
        proxy_pass bulk;
        proxy_connect_timeout 2s;
        proxy_timeout {IDLE_TIMEOUT_S}s;
    }}
}}
""")
        return ["nginx", "-p", self.dir, "-e", f"{self.dir}/error.log", "-c", conf]

    def worker_processes(self):
        return "auto" if self.workers is None else self.workers

    def describe(self):
        return f"nginx stream: least_conn, worker_processes {self.worker_processes()}"


class Ringlb(Proxy):
    name = "ringlb"

    def __init__(self, tmp, backends, ports, workers, cpus, binary):
        super().__init__(tmp, backends, ports, workers, cpus)
        self.binary = binary
        self.balance = "least_conn"

    def config(self, balance):
        b = self.backends
        members = "".join(f'\n[[pool.http.member]]\naddress = "127.0.0.1:{p}"\n'
                          for p in b.http_ports)
        workers = "" if self.workers is None else f"workers = {self.workers}\n"
        return f"""
[global]
{workers}access_log = "off"
log_level = "warn"
shutdown_timeout = "2s"

[[listener]]
name = "http"
bind = "127.0.0.1:{self.ports[0]}"
pool = "http"
max_connections = 100000
idle_timeout = "{IDLE_TIMEOUT_S}s"

[[listener]]
name = "bulk"
bind = "127.0.0.1:{self.ports[1]}"
pool = "bulk"
max_connections = 100000
idle_timeout = "{IDLE_TIMEOUT_S}s"

[pool.http]
balance = "{balance}"
connect_timeout = "2s"
retries = 2
{members}
[pool.bulk]
balance = "{balance}"
connect_timeout = "2s"
retries = 2

[[pool.bulk.member]]
address = "127.0.0.1:{b.iperf_port}"
"""

    def choose_balance(self):
        """least_conn when this build accepts it, else round_robin."""
        for balance in ("least_conn", "round_robin"):
            path = write(os.path.join(self.dir, "ringlb-check.toml"), self.config(balance))
            check = subprocess.run([self.binary, "--check", path],
                                   capture_output=True, text=True)
            if check.returncode == 0:
                self.balance = balance
                return balance
            last_error = check.stdout + check.stderr
        raise RuntimeError(f"ringlb --check rejects the bench config:\n{last_error}")

    def argv(self):
        return [self.binary, write(os.path.join(self.dir, "ringlb.toml"),
                                   self.config(self.balance))]

    def describe(self):
        workers = ("workers unset (one per online CPU)" if self.workers is None
                   else f"workers {self.workers}")
        return f'ringlb: balance "{self.balance}", {workers}'
