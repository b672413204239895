"""Hosts that agree (issue 12): two ringlb processes with the same members,
under consistent_hash, send each of 40 client addresses (sources
127.1.0.1..40) to the same member, and when one of them stops every client
keeps its member on the other (what ECMP or DNS does when a host goes away:
its clients move to another host).

The two processes differ in everything that must not matter: listen port,
number of workers, the order of the members in the file, the listener's
address family (a "[::]" listener sees IPv4 clients as ::ffff:a.b.c.d), and,
with members from DNS, the order of the answers, which a dnsmasq on a
loopback port rotates (hosts file rewritten in another order, SIGHUP) while
the clients check.
"""

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import hosts_harness  # noqa: E402
import more_harness  # noqa: E402
from harness import LOOPBACK, RINGLB, WAIT, wait_until  # noqa: E402
from hosts_harness import LOOPBACK_SOURCES, differences  # noqa: E402

MEMBER_ADDRESSES = [f"127.0.0.{i}" for i in range(21, 26)]
DNS_NAME = "svc.hosts.test"


def host_config(bind, *, workers, members=(), dns_port=None, member_port=None, admin_port=None):
    """One listener on `bind` in front of pool "app" (consistent_hash on
    the source address): static members [(name, address)], or (dns_port
    given) members discovered from DNS_NAME's A records on member_port."""
    lines = ["[global]", f"workers = {workers}", 'log_level = "info"',
             'access_log = "stdout"', 'shutdown_timeout = "5s"']
    if admin_port is not None:
        lines += ["", "[admin]", f'listen = "{LOOPBACK}:{admin_port}"']
    if dns_port is not None:
        lines += ["", "[global.dns]", f'servers = ["{LOOPBACK}:{dns_port}"]']
    lines += ["", "[[listener]]", 'name = "front"', f'bind = "{bind}"', 'pool = "app"']
    lines += ["", "[pool.app]", 'balance = "consistent_hash"', 'hash_key = "source_ip"']
    for name, address in members:
        lines += ["", "[[pool.app.member]]", f'name = "{name}"', f'address = "{address}"']
    if dns_port is not None:
        lines += ["", "[[pool.app.discover]]", f'name = "{DNS_NAME}"', 'type = "A"',
                  f"port = {member_port}", 'interval = "1s"']
    return "\n".join(lines) + "\n"


def member_name(address):
    """m21 for 127.0.0.21."""
    return f"m{address.rsplit('.', 1)[1]}"


def ipv6_loopback_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::", 0))
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# dnsmasq


def dns_query_a(port, name):
    """The A records of `name` from the DNS server on 127.0.0.1:port, in
    answer order (a minimal stdlib client, to see what ringlb is told)."""
    query_id = random.randrange(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2 * harness.SCALE)
        s.sendto(packet, (LOOPBACK, port))
        data = s.recv(4096)
    if struct.unpack(">H", data[:2])[0] != query_id:
        raise AssertionError("DNS answer with another id")
    answers = struct.unpack(">H", data[6:8])[0]
    at = len(packet)
    addresses = []
    for _ in range(answers):
        if data[at] & 0xC0 == 0xC0:
            at += 2
        else:
            while data[at]:
                at += data[at] + 1
            at += 1
        rtype, _, _, length = struct.unpack(">HHIH", data[at:at + 10])
        at += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(data[at:at + 4]))
        at += length
    return addresses


class Dnsmasq:
    """dnsmasq in the foreground on 127.0.0.1:port answering DNS_NAME from a
    hosts file the test rewrites (then SIGHUP: dnsmasq re-reads it). Its
    query log is kept, to count how often ringlb asked."""

    def __init__(self, directory, addresses):
        self.hosts_path = os.path.join(directory, "dns-hosts")
        self.write_hosts(addresses)
        self.port = self._free_udp_tcp_port()
        args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", f"--port={self.port}",
                f"--listen-address={LOOPBACK}", "--bind-interfaces", "--no-resolv", "--no-hosts",
                f"--addn-hosts={self.hosts_path}", "--local-ttl=1", "--pid-file=",
                "--log-queries", "--log-facility=-"]
        if os.geteuid() == 0:
            args.append("--user=root")  # else it reads the hosts file as nobody
        self.lines = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(self._answers, what=f"dnsmasq answering on port {self.port}; log:\n{self.log()}")

    @staticmethod
    def _free_udp_tcp_port():
        for _ in range(100):
            port = harness.free_port()
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((LOOPBACK, port))
                return port
            except OSError:
                continue
        raise AssertionError("no port free for both UDP and TCP")

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"dnsmasq exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return bool(dns_query_a(self.port, DNS_NAME))
        except OSError:
            return False

    def _read(self):
        for line in self.proc.stderr:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def log(self):
        with self.lock:
            return "\n".join(self.lines)

    def queries(self):
        """How many A queries for DNS_NAME dnsmasq has logged."""
        with self.lock:
            return sum(1 for line in self.lines if f"query[A] {DNS_NAME} from" in line)

    def write_hosts(self, addresses):
        """Replaces the hosts file at once (dnsmasq may be reading it)."""
        partial = self.hosts_path + ".new"
        with open(partial, "w") as f:
            f.writelines(f"{address} {DNS_NAME}\n" for address in addresses)
        os.chmod(partial, 0o644)
        os.replace(partial, self.hosts_path)

    def reread(self):
        self.proc.send_signal(signal.SIGHUP)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._reader.join(WAIT)
        self.proc.stderr.close()


class Rotator:
    """Rewrites dnsmasq's hosts file in another order and SIGHUPs it, over
    and over, until stopped; notes the answer orders a client sees."""

    def __init__(self, dns, addresses, period=0.2):
        self.dns = dns
        self.addresses = list(addresses)
        self.period = period
        self.orders = set()
        self.rotations = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        shuffler = random.Random(12)
        while not self._stop.wait(self.period):
            order = list(self.addresses)
            shuffler.shuffle(order)
            try:
                self.dns.write_hosts(order)
                self.dns.reread()
                self.rotations += 1
                self.orders.add(tuple(dns_query_a(self.dns.port, DNS_NAME)))
            except (OSError, AssertionError) as e:
                self.errors.append(repr(e))

    def stop(self):
        self._stop.set()
        self._thread.join(WAIT)


# --------------------------------------------------------------------------


class HostsAgreeTest(harness.RinglbTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.tmp.name, 0o755)  # dnsmasq may read its hosts file as another user
        self.member_port = hosts_harness.free_port_on(MEMBER_ADDRESSES)
        self.members = hosts_harness.NamedMembers(
            [(address, self.member_port, member_name(address)) for address in MEMBER_ADDRESSES])
        self.addCleanup(self.members.close)

    def start_host(self, name, text):
        """A ringlb with its own config file NAME.toml (the other host's is
        never overwritten, so a reload would read the right one)."""
        lb = harness.Ringlb(self.write_config(text, f"{name}.toml"))
        self.addCleanup(self._finish_ringlb, lb, True)
        lb.wait_ready(timeout=3 * WAIT)
        return lb

    def static_members(self):
        return [(member_name(address), f"{address}:{self.member_port}") for address in MEMBER_ADDRESSES]

    def assertAgree(self, reference, answers, what):
        self.assertEqual(differences(reference, answers), [], f"{what}: clients whose member differs")

    def assertSpread(self, mapping):
        # 40 clients over 5 members: a test where all land on one or two
        # members would not show agreement.
        self.assertGreaterEqual(len(set(mapping.values())), 3, mapping)

    def check_two_hosts(self, bind_a, bind_b, connect_b):
        port_a = harness.free_port()
        port_b = harness.free_port()
        members = self.static_members()
        host_a = self.start_host("a", host_config(f"{bind_a}:{port_a}", workers=1, members=members))
        self.start_host("b", host_config(f"{bind_b}:{port_b}", workers=2,
                                         members=list(reversed(members))))
        through_a = hosts_harness.ask_all(LOOPBACK, port_a, LOOPBACK_SOURCES)
        self.assertSpread(through_a)
        self.assertAgree(through_a, hosts_harness.ask_all(connect_b, port_b, LOOPBACK_SOURCES), "host b")
        self.assertEqual(host_a.stop(), 0, host_a.stderr_text())
        self.assertAgree(through_a, hosts_harness.ask_all(connect_b, port_b, LOOPBACK_SOURCES),
                         "host b once host a stopped")
        self.assertEqual(self.members.errors, [])

    def test_static_members_in_another_order(self):
        self.check_two_hosts(LOOPBACK, LOOPBACK, LOOPBACK)

    def test_dual_stack_listener_agrees_with_an_ipv4_one(self):
        # Host b listens on "[::]": it sees the clients as ::ffff:127.1.0.x.
        if not ipv6_loopback_works():
            self.skipTest("no IPv6 here: a \"[::]\" listener cannot be made")
        self.check_two_hosts(LOOPBACK, "[::]", LOOPBACK)

    @staticmethod
    def pool_members(admin_port):
        """The names of pool "app"'s members in the host's /status."""
        for pool in more_harness.status_json(admin_port)["pools"]:
            if pool["name"] == "app":
                return sorted(member["name"] for member in pool["members"])
        return None

    def discovery_supported(self, text):
        """Skips the test when this ringlb cannot parse [[pool.NAME.discover]]
        (issue 12's discovery not merged yet); any other --check failure
        fails the test."""
        path = self.write_config(text, "check.toml")
        check = subprocess.run([RINGLB, "--check", path], capture_output=True, text=True, timeout=WAIT)
        if check.returncode != 0:
            output = check.stdout + check.stderr
            if "discover" in output or "dns" in output:
                self.skipTest(f"this ringlb has no DNS discovery yet: {output.strip()}")
            self.fail(f"ringlb --check refused the config:\n{output}")

    def test_dns_members_agree_while_the_answer_order_rotates(self):
        if shutil.which("dnsmasq") is None:
            self.skipTest("dnsmasq is not installed (Debian: dnsmasq-base)")
        port_a = harness.free_port()
        port_b = harness.free_port()
        # --check resolves nothing: any port will do here.
        self.discovery_supported(host_config(f"{LOOPBACK}:{port_a}", workers=1, dns_port=53,
                                             member_port=self.member_port))
        dns = Dnsmasq(self.tmp.name, MEMBER_ADDRESSES)
        self.addCleanup(dns.close)
        config = dict(dns_port=dns.port, member_port=self.member_port)
        admin_a = harness.free_port()
        admin_b = harness.free_port()
        host_a = self.start_host("a", host_config(f"{LOOPBACK}:{port_a}", workers=1,
                                                  admin_port=admin_a, **config))
        self.start_host("b", host_config(f"{LOOPBACK}:{port_b}", workers=2, admin_port=admin_b, **config))

        # Both hosts must have every member before the comparison means
        # anything.
        expected = sorted(f"{DNS_NAME}/{address}:{self.member_port}" for address in MEMBER_ADDRESSES)
        for host, admin in (("a", admin_a), ("b", admin_b)):
            wait_until(lambda: self.pool_members(admin) == expected, 3 * WAIT,
                       f"host {host} with the five discovered members {expected}")
        reference = hosts_harness.ask_all(LOOPBACK, port_a, LOOPBACK_SOURCES)
        self.assertSpread(reference)

        rotator = Rotator(dns, MEMBER_ADDRESSES)
        self.addCleanup(rotator.stop)
        queries_before = dns.queries()
        started = time.monotonic()
        rounds = 0
        # At least 4 s: with interval = "1s" and a TTL of 1 s each host
        # resolves about four times while the order keeps changing.
        while rounds < 3 or time.monotonic() - started < 4.0 * harness.SCALE:
            rounds += 1
            self.assertAgree(reference, hosts_harness.ask_all(LOOPBACK, port_a, LOOPBACK_SOURCES),
                             f"host a, round {rounds}")
            self.assertAgree(reference, hosts_harness.ask_all(LOOPBACK, port_b, LOOPBACK_SOURCES),
                             f"host b, round {rounds}")
        resolutions = dns.queries() - queries_before
        self.assertGreaterEqual(resolutions, 4,
                                f"the hosts did not re-resolve while the order changed:\n{dns.log()}")
        self.assertGreaterEqual(len(rotator.orders), 2, "dnsmasq's answer order never changed")

        self.assertEqual(host_a.stop(), 0, host_a.stderr_text())
        self.assertAgree(reference, hosts_harness.ask_all(LOOPBACK, port_b, LOOPBACK_SOURCES),
                         "host b once host a stopped")
        rotator.stop()
        self.assertEqual(rotator.errors, [])
        self.assertEqual(self.members.errors, [])


if __name__ == "__main__":
    harness.main()
