"""DNS discovery end to end: a real dnsmasq on a loopback port answers for
disc.test from a hosts file it re-reads on SIGHUP (and SRV records from its
command line); members are small TCP servers on 127.0.0.x addresses, each
answering with its own name. Skipped when dnsmasq is not installed."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness  # noqa: E402
from harness import LOOPBACK, SCALE, WAIT, wait_until  # noqa: E402
from more_harness import Session, ask, build_config, get, parse_metrics, session_handler, status_json  # noqa: E402

DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None)
ZONE = "disc.test"
WEB = f"web.{ZONE}"
SRV = f"_web._tcp.{ZONE}"
SLOW = 30 * SCALE  # deadlines that span several resolution intervals


def dns_query(port, name, qtype):
    """One UDP query to 127.0.0.1:port: (rcode, answer count), or None."""
    tid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        try:
            s.sendto(packet, (LOOPBACK, port))
            reply = s.recv(4096)
        except OSError:
            return None
    flags, _, answers = struct.unpack(">HHH", reply[2:8])
    return flags & 15, answers


def free_udp_and_tcp_port():
    for _ in range(100):
        port = harness.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((LOOPBACK, port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port for dnsmasq")


class Dnsmasq:
    """dnsmasq in the foreground: only locally known names under disc.test
    (others there are NXDOMAIN), A records from a hosts file, SRV records
    from srv (tuples: target, port, priority, weight)."""

    def __init__(self, directory, hosts, srv=()):
        self.hosts_path = os.path.join(directory, "dns-hosts")
        self.write_hosts(hosts)
        self.port = free_udp_and_tcp_port()
        cmd = [DNSMASQ, "--keep-in-foreground", f"--port={self.port}", f"--listen-address={LOOPBACK}",
               "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts_path}",
               f"--local=/{ZONE}/", "--log-facility=-", f"--pid-file={os.path.join(directory, 'dnsmasq.pid')}"]
        if os.geteuid() == 0:
            cmd += ["--user=root", "--group=root"]  # the hosts file is in a directory only root reads
        cmd += [f"--srv-host={SRV},{target},{port},{priority},{weight}" for target, port, priority, weight in srv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_until(lambda: self.proc.poll() is not None or dns_query(self.port, f"probe.{ZONE}", 1),
                   what="dnsmasq answering")
        if self.proc.poll() is not None:
            raise AssertionError(f"dnsmasq exited: {self.proc.stderr.read().decode()}")

    def write_hosts(self, hosts):
        """hosts: [(address, name)]."""
        with open(self.hosts_path + ".new", "w") as f:
            f.write("".join(f"{address} {name}\n" for address, name in hosts))
        os.replace(self.hosts_path + ".new", self.hosts_path)

    def set_hosts(self, hosts, name=WEB):
        """New records, read by dnsmasq before this returns."""
        self.write_hosts(hosts)
        self.proc.send_signal(signal.SIGHUP)
        wanted = sum(1 for _, n in hosts if n == name)
        want = (0, wanted) if wanted else (3, 0)
        wait_until(lambda: dns_query(self.port, name, 1) == want, what=f"dnsmasq serving {want} for {name}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.proc.stderr.close()


class AddressBackend(harness.Backend):
    """A session_handler backend on a chosen address (any 127.x works on
    Linux loopback): answers its name, then echoes until EOF."""

    def __init__(self, ip, port, name):
        self.name = name
        self.handler = session_handler
        self.lock = threading.Lock()
        self.accepted = 0
        self.errors = []
        self.state = {}
        self._conns = set()
        self._threads = []
        self._stopping = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((ip, port))
        self.listener.listen(128)
        self.port = port
        self.address = f"{ip}:{port}"
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()


def log_time(line):
    """The timestamp of one of ringlb's log lines, in seconds."""
    stamp = line.split(" ", 1)[0]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class Traffic(threading.Thread):
    """Short sessions one after another until stopped: members that answered
    (in order) and failures."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.answers = []
        self.failures = []

    def run(self):
        while not self.stop_event.is_set():
            try:
                name, _ = ask(self.port)
                with self.lock:
                    self.answers.append(name)
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.failures.append(repr(e))

    def count(self):
        with self.lock:
            return len(self.answers)

    def answered_since(self, start):
        with self.lock:
            return set(self.answers[start:])

    def stop(self):
        self.stop_event.set()
        self.join(WAIT)


class HeldDns:
    """A DNS server that answers A queries for WEB with `address`, but only
    once released: until then queries wait unanswered."""

    def __init__(self, address):
        self.address = socket.inet_aton(address)
        self.released = threading.Event()
        self.asked = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.asked.set()
            self.released.wait()
            # The question ends 4 bytes (type, class) after its name's zero byte.
            end = query.index(b"\0", 12) + 5
            qtype = struct.unpack(">H", query[end - 4:end - 2])[0]
            answer = b""
            if qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + self.address
            header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if answer else 0, 0, 0)
            try:
                self.sock.sendto(header + query[12:end] + answer, peer)
            except OSError:
                return

    def close(self):
        self.released.set()
        self.sock.close()


@unittest.skipIf(DNSMASQ is None, "dnsmasq is not installed (Debian: dnsmasq-base); DNS discovery tests skipped")
class DiscoveryTest(harness.RinglbTest):
    def setUp(self):
        super().setUp()
        self.member_port = self.common_port([11, 12, 13, 14, 15])
        self.backends = {}

    def common_port(self, hosts):
        """A port free on every 127.0.0.N of hosts (A records carry no port)."""
        for _ in range(50):
            port = harness.free_port()
            taken = []
            try:
                for n in hosts:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    taken.append(s)
                    s.bind((f"127.0.0.{n}", port))
                return port
            except OSError:
                continue
            finally:
                for s in taken:
                    s.close()
        raise AssertionError("no port free on every member address")

    def member(self, n, port=None):
        """The backend on 127.0.0.n, answering "mN"."""
        b = AddressBackend(f"127.0.0.{n}", port or self.member_port, f"m{n}")
        self.addCleanup(b.close)
        self.backends[n] = b
        return b

    def dns(self, hosts, srv=()):
        d = Dnsmasq(self.tmp.name, hosts, srv)
        self.addCleanup(d.kill)
        return d

    def web_hosts(self, *ns):
        """Hosts-file lines giving web.disc.test the addresses 127.0.0.N."""
        return [(f"127.0.0.{n}", WEB) for n in ns]

    def config(self, dns, discover, members=(), pool=None, dns_extra=None, admin_port=None, listener_port=None):
        self.port = listener_port or harness.free_port()
        self.admin_port = admin_port or harness.free_port()
        spec = {"balance": "round_robin", "members": list(members)}
        spec.update(pool or {})
        text = build_config([("front", self.port, "web", None)], {"web": spec}, workers=2,
                            admin={"listen": f"{LOOPBACK}:{self.admin_port}"})
        settings = {"servers": [f"{LOOPBACK}:{dns.port}"], "timeout": "500ms", "attempts": 1,
                    "min_interval": "200ms"}
        settings.update(dns_extra or {})
        text += "\n[global.dns]\n" + "".join(f"{k} = {more_harness._value(v)}\n" for k, v in settings.items())
        for entry in discover:
            text += "\n[[pool.web.discover]]\n" + "".join(
                f"{k} = {more_harness._value(v)}\n" for k, v in entry.items())
        return text

    def a_entry(self, **extra):
        entry = {"name": WEB, "type": "A", "port": self.member_port, "interval": "500ms"}
        entry.update(extra)
        return entry

    def pool_members(self):
        for pool in status_json(self.admin_port)["pools"]:
            if pool["name"] == "web":
                return {m["name"]: m for m in pool["members"]}
        raise AssertionError("no pool web in /status")

    def discovery_status(self, name=WEB):
        for entry in status_json(self.admin_port)["discovery"]:
            if entry["name"] == name:
                return entry
        raise AssertionError(f"no discovery {name} in /status")

    def metric(self, name, **labels):
        """The one sample of `name` for pool web's web.disc.test with `labels`
        (Metrics.value() cannot take a label called name)."""
        metrics = parse_metrics(get(self.admin_port, "/metrics").body.decode())
        labels.update(pool="web", name=WEB)
        found = [v for ls, v in metrics.samples(name) if all(ls.get(k) == v for k, v in labels.items())]
        self.assertEqual(len(found), 1, f"{name}{labels}: {found}")
        return found[0]

    def name_of(self, n, port=None, dns_name=WEB):
        return f"{dns_name}/127.0.0.{n}:{port or self.member_port}"

    def session_on(self, name):
        """A long session that landed on member `name` (others are closed)."""
        for _ in range(40):
            session = Session(self.port)
            if session.member == name:
                self.addCleanup(session.close)
                return session
            session.close()
        raise AssertionError(f"no session landed on {name}")

    def answers(self, count=24):
        return {ask(self.port)[0] for _ in range(count)}

    def test_a_connection_made_before_the_first_answer_waits_for_it(self):
        self.member(11)
        held = HeldDns("127.0.0.11")
        self.addCleanup(held.close)
        fake = type("Server", (), {"port": held.port})()
        text = self.config(fake, [self.a_entry()], dns_extra={"timeout": "10s"})
        rl = self.start_ringlb(text, wait_ready=False)
        self.assertTrue(held.asked.wait(WAIT), "ringlb asked no DNS question")
        # The listening socket is open: the kernel completes the handshake
        # and the connection waits in the backlog, not in an empty pool.
        with harness.connect(self.port) as s:
            s.sendall(b"early\n")
            self.assertFalse(any("ready:" in line for line in rl.stderr_lines))
            held.released.set()
            rl.wait_ready()
            data = more_harness.read_lines(s, 2)
        self.assertEqual(data, b"m11\nearly\n")
        self.assertFalse([e for e in rl.access_log() if e.get("end") == "no_member"])

    def test_an_admin_weight_survives_a_change_of_the_records(self):
        for n in (11, 12, 13):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12))
        self.start_ringlb(self.config(dns, [self.a_entry()]))
        path = "/pools/web/members/" + urllib.parse.quote(self.name_of(11), safe="") + "/weight"
        self.assertEqual(more_harness.post(self.admin_port, path, b"7").status, 200)
        dns.set_hosts(self.web_hosts(11, 12, 13))
        wait_until(lambda: self.name_of(13) in self.pool_members(), timeout=SLOW, what="m13 discovered")
        members = self.pool_members()
        self.assertEqual(members[self.name_of(11)]["weight"], 7)
        self.assertEqual(members[self.name_of(13)]["weight"], 1)

    def test_a_pool_of_only_a_dns_name_balances_across_the_records(self):
        for n in (11, 12, 13):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12, 13))
        self.start_ringlb(self.config(dns, [self.a_entry()]))
        # The first round of lookups came before "ready": the members are there.
        self.assertEqual(set(self.pool_members()), {self.name_of(n) for n in (11, 12, 13)})
        self.assertEqual(self.answers(), {"m11", "m12", "m13"})

        entry = self.discovery_status()
        self.assertEqual((entry["pool"], entry["type"], entry["records"], entry["members"]), ("web", "A", 3, 3))
        self.assertEqual(entry["last_result"], "ok")
        self.assertRegex(entry["last_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        page = get(self.admin_port, "/")
        self.assertEqual(page.status, 200)
        self.assertIn(f'data-discovery="{WEB}" data-result="ok"', page.body.decode())
        self.assertEqual(self.metric("ringlb_discovery_members"), 3)
        self.assertGreaterEqual(self.metric("ringlb_discovery_lookups_total", result="ok"), 1)
        last = self.metric("ringlb_discovery_last_success_seconds")
        self.assertLess(abs(last - time.time()), 120)

    def test_records_added_and_removed_while_traffic_flows(self):
        for n in (11, 12, 13):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12))
        lb = self.start_ringlb(self.config(dns, [self.a_entry()]))
        on_12 = self.session_on("m12")
        traffic = Traffic(self.port)
        traffic.start()
        self.addCleanup(traffic.stop)
        wait_until(lambda: traffic.count() >= 10, what="traffic flowing")

        dns.set_hosts(self.web_hosts(11, 13))  # 13 added, 12 removed
        removed = f"discovery: member {self.name_of(12)} of pool web removed"
        wait_until(lambda: removed in lb.stderr_text(), SLOW, "the removal of m12")
        added = f"discovery: member {self.name_of(13)} of pool web added at 127.0.0.13:{self.member_port}"
        wait_until(lambda: added in lb.stderr_text(), what="the log line of m13's addition")
        # Both are events too (GET /events), with the pool and member.
        changes = {(e["pool"], e["member"]): e["message"] for e in get(self.admin_port, "/events").json()["events"]
                   if e["kind"] == "discovery"}
        self.assertTrue(changes[("web", self.name_of(12))].startswith("removed"), changes)
        self.assertEqual(changes[("web", self.name_of(13))], f"added at 127.0.0.13:{self.member_port}")
        mark = traffic.count()
        before = more_harness.sessions(self.backends[12])
        wait_until(lambda: traffic.count() >= mark + 30, SLOW, "30 sessions after the change")
        self.assertEqual(traffic.answered_since(mark), {"m11", "m13"})
        self.assertEqual(more_harness.sessions(self.backends[12]), before, "a removed member got a new session")
        on_12.echo(b"the removed member's session still flows\n")
        traffic.stop()
        self.assertEqual(traffic.failures, [])
        self.assertEqual(lb.stderr_text().count(removed), 1)

        # Added back: traffic again.
        dns.set_hosts(self.web_hosts(11, 12, 13))
        wait_until(lambda: "m12" in self.answers(6), SLOW, "m12 back in the answers")
        on_12.echo()

    def test_a_dead_dns_server_keeps_the_last_good_set(self):
        for n in (11, 12):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12))
        lb = self.start_ringlb(self.config(dns, [self.a_entry()]))
        dns.kill()
        wait_until(lambda: self.discovery_status()["last_result"] not in (None, "ok"), SLOW,
                   "a failed lookup in /status")
        failed = self.discovery_status()["last_result"]

        wait_until(lambda: self.metric("ringlb_discovery_lookups_total", result=failed) >= 3, SLOW,
                   "three failed lookups")
        self.assertEqual(self.answers(), {"m11", "m12"})
        self.assertEqual(self.discovery_status()["members"], 2)
        # Logged once per change of status, not once per failed lookup.
        self.assertEqual(lb.stderr_text().count("keeping the last good set"), 1, lb.stderr_text())

    def test_srv_records_with_different_ports(self):
        ports = {n: self.common_port([n]) for n in (13, 14, 15)}
        for n in (13, 14, 15):
            self.member(n, ports[n])
        srv = [(f"t13.{ZONE}", ports[13], 10, 5), (f"t14.{ZONE}", ports[14], 10, 0),
               (f"t15.{ZONE}", ports[15], 20, 1000)]
        dns = self.dns([(f"127.0.0.{n}", f"t{n}.{ZONE}") for n in (13, 14, 15)], srv)
        self.start_ringlb(self.config(dns, [{"name": SRV, "type": "SRV", "interval": "1s"}]))
        members = self.pool_members()
        self.assertEqual(set(members), {f"{SRV}/127.0.0.{n}:{ports[n]}" for n in (13, 14, 15)})
        m13, m14, m15 = (members[f"{SRV}/127.0.0.{n}:{ports[n]}"] for n in (13, 14, 15))
        self.assertEqual((m13["weight"], m13["backup"]), (5, False))
        self.assertEqual((m14["weight"], m14["backup"]), (1, False))  # SRV weight 0 -> 1
        self.assertEqual((m15["weight"], m15["backup"]), (256, True))  # lower priority: backup
        self.assertEqual(self.answers(), {"m13", "m14"})

    def test_nxdomain_removes_the_members_after_the_grace(self):
        self.member(11)
        dns = self.dns(self.web_hosts(11))
        lb = self.start_ringlb(self.config(dns, [self.a_entry(remove_grace="3s")]))
        dns.set_hosts([])  # web.disc.test is now NXDOMAIN
        wait_until(lambda: self.discovery_status()["last_result"] not in (None, "ok"), SLOW, "NXDOMAIN in /status")
        # Within the grace the member still serves.
        self.assertEqual(self.pool_members().keys(), {self.name_of(11)})
        self.assertEqual(ask(self.port)[0], "m11")
        removed = f"discovery: member {self.name_of(11)} of pool web removed"
        wait_until(lambda: removed in lb.stderr_text(), SLOW, "the removal after the grace")
        self.assertEqual(self.pool_members(), {})
        lines = lb.stderr_text().splitlines()
        grace_start = next(line for line in lines if "unless a good answer comes first" in line)
        gone = next(line for line in lines if removed in line)
        self.assertGreaterEqual(log_time(gone) - log_time(grace_start), 2.9)

    def test_static_and_discovered_members_in_one_pool(self):
        self.member(11)
        static = self.backend(session_handler, name="static")
        dns = self.dns(self.web_hosts(11))
        self.start_ringlb(self.config(dns, [self.a_entry()], members=[{"name": "fixed", "address": static.address}]))
        self.assertEqual(set(self.pool_members()), {"fixed", self.name_of(11)})
        self.assertEqual(self.answers(), {"static", "m11"})

    def test_a_reload_keeps_the_discovered_members(self):
        for n in (11, 12):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12))
        text = self.config(dns, [self.a_entry()])
        lb = self.start_ringlb(text)
        session = Session(self.port)
        self.addCleanup(session.close)
        # Without DNS the reload could not find the members again.
        dns.kill()
        self.write_config(text.replace("[pool.web]\n", "[pool.web]\nretries = 1\n"))
        lb.signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in lb.stderr_text(), what="the reload")
        self.assertEqual(set(self.pool_members()), {self.name_of(11), self.name_of(12)})
        self.assertEqual(self.answers(), {"m11", "m12"})
        session.echo()
        self.assertNotIn("removed", lb.stderr_text())

    def test_a_generation_that_cannot_be_built_keeps_the_running_one(self):
        # Another pool originates TLS with a CA file read at every build: while
        # it is gone, a change in the answers cannot be applied.
        ca_key, ca = os.path.join(self.tmp.name, "ca.key"), os.path.join(self.tmp.name, "ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=discovery test CA"],
                       check=True, capture_output=True, timeout=60 * SCALE)
        with open(ca) as f:
            ca_text = f.read()
        for n in (11, 12, 13):
            self.member(n)
        dns = self.dns(self.web_hosts(11, 12))
        text = self.config(dns, [self.a_entry()])
        text += (f'\n[pool.other]\n\n[[pool.other.member]]\naddress = "{LOOPBACK}:{harness.free_port()}"\n'
                 f'\n[pool.other.tls]\nca = "{ca}"\n')
        lb = self.start_ringlb(text)
        os.remove(ca)
        dns.set_hosts(self.web_hosts(11, 12, 13))
        wait_until(lambda: "new generation cannot be built" in lb.stderr_text(), SLOW, "the failed build's log line")
        self.assertEqual(set(self.pool_members()), {self.name_of(11), self.name_of(12)})
        self.assertEqual(self.answers(), {"m11", "m12"})
        # The file back: the change is applied at the next try.
        with open(ca, "w") as f:
            f.write(ca_text)
        added = f"discovery: member {self.name_of(13)} of pool web added"
        wait_until(lambda: added in lb.stderr_text(), SLOW, "m13 added once the CA file is back")
        wait_until(lambda: "m13" in self.answers(6), what="m13 in the answers")


if __name__ == "__main__":
    harness.main()
