"""Hosts that agree across real network hops (issue 12): two ringlb
instances, each in its own network namespace, reach the same members in a
third; clients in a fourth, from 40 source addresses, get the same member
through either instance, and keep it on the other when one instance stops.

    clients (c)  10.77.100.1-40 on lo
      |-- 10.77.1.0/24 --  ringlb a  -- 10.77.3.0/24 --|
      |-- 10.77.2.0/24 --  ringlb b  -- 10.77.4.0/24 --+-- members (m)  10.77.50.1-4:9000 on lo

Both instances also hold a service address, 10.77.200.1, which the clients'
namespace reaches by an ECMP route over both (hashing each connection's
addresses and ports, as routers in front of several hosts do); the second
test sends the clients there and withdraws a's next hop before stopping it.

The instances differ in workers, member order and listener family ("[::]"
on b when IPv6 is there). Namespaces get names unique to this run and are
deleted even when the test fails. Needs root and iproute2; skipped with the
reason otherwise.
"""

import json
import os
import selectors
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WAIT  # noqa: E402
from hosts_harness import differences  # noqa: E402

HOSTS_HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hosts_harness.py")
SOURCES = [f"10.77.100.{i}" for i in range(1, 41)]
MEMBERS = [(f"m{i}", f"10.77.50.{i}") for i in range(1, 5)]
MEMBER_PORT = 9000
LISTEN_PORT = 8080
ADDRESS_A = "10.77.1.2"
ADDRESS_B = "10.77.2.2"
SERVICE_ADDRESS = "10.77.200.1"  # on both instances; ECMP from the clients


def run(*args):
    """Runs a command; its stderr becomes the AssertionError on failure."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=WAIT)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def config(bind, workers, members):
    lines = ["[global]", f"workers = {workers}", 'log_level = "info"', 'access_log = "stdout"',
             'shutdown_timeout = "5s"', "", "[[listener]]", 'name = "front"', f'bind = "{bind}"',
             'pool = "app"', "", "[pool.app]", 'balance = "consistent_hash"']
    for name, address in members:
        lines += ["", "[[pool.app.member]]", f'name = "{name}"', f'address = "{address}:{MEMBER_PORT}"']
    return "\n".join(lines) + "\n"


def source_of(client):
    """The IPv4 source of an access log's client ("10.77.100.7:41000", or
    "[::ffff:10.77.100.7]:41000" from a "[::]" listener)."""
    address = client.rsplit(":", 1)[0].strip("[]")
    return address.removeprefix("::ffff:")


class Namespaces:
    """Four namespaces for one test run (a, b, m, c), wired as in the module
    docstring. close() deletes them, which also removes their veths."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.names = {role: f"ringlb-{tag}-{role}" for role in "abmc"}
        self.made = []

    def make(self):
        for name in self.names.values():
            run("ip", "netns", "add", name)
            self.made.append(name)
            run("ip", "-n", name, "link", "set", "dev", "lo", "up")
        # One veth pair per hop, made straight into its two namespaces.
        # Devices are named "v" + own role + peer role; always after "dev" or
        # "name" (a bare "ma" would be read as the keyword "master").
        self.link("c", "10.77.1.1/24", "a", "10.77.1.2/24")
        self.link("c", "10.77.2.1/24", "b", "10.77.2.2/24")
        self.link("a", "10.77.3.1/24", "m", "10.77.3.2/24")
        self.link("b", "10.77.4.1/24", "m", "10.77.4.2/24")
        for source in SOURCES:
            self.ip("c", "addr", "add", f"{source}/32", "dev", "lo")
        for _, address in MEMBERS:
            self.ip("m", "addr", "add", f"{address}/32", "dev", "lo")
        self.ip("a", "route", "add", "10.77.100.0/24", "via", "10.77.1.1")
        self.ip("a", "route", "add", "10.77.50.0/24", "via", "10.77.3.2")
        self.ip("b", "route", "add", "10.77.100.0/24", "via", "10.77.2.1")
        self.ip("b", "route", "add", "10.77.50.0/24", "via", "10.77.4.2")
        for role in "ab":
            self.ip(role, "addr", "add", f"{SERVICE_ADDRESS}/32", "dev", "lo")
        # The members answer a and b over the hop each came in by (both
        # hops are directly connected networks of m).

    def ip(self, role, *args):
        return run("ip", "-n", self.names[role], *args)

    def link(self, role, address, peer_role, peer_address):
        device, peer_device = f"v{role}{peer_role}", f"v{peer_role}{role}"
        self.ip(role, "link", "add", "name", device, "type", "veth", "peer", "name", peer_device,
                "netns", self.names[peer_role])
        self.ip(role, "addr", "add", address, "dev", device)
        self.ip(role, "link", "set", "dev", device, "up")
        self.ip(peer_role, "addr", "add", peer_address, "dev", peer_device)
        self.ip(peer_role, "link", "set", "dev", peer_device, "up")

    def exec_prefix(self, role):
        return ["ip", "netns", "exec", self.names[role]]

    def close(self):
        errors = []
        for name in reversed(self.made):
            result = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
            if result.returncode != 0:
                errors.append(f"{name}: {result.stderr.strip()}")
        self.made = []
        if errors:
            raise AssertionError("namespaces not deleted: " + "; ".join(errors))


def namespaces_unavailable():
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns add)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip command"
    probe = f"ringlb-probe-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    # ip -n enters the namespace with a mount namespace of its own, which a
    # chroot (a container without its own mounts) refuses.
    entered = subprocess.run(["ip", "-n", probe, "link", "set", "dev", "lo", "up"], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if entered.returncode != 0:
        return f"cannot enter a network namespace (ip -n): {entered.stderr.strip()}"
    return None


class MemberProcess:
    """hosts_harness.py serve inside the members' namespace."""

    def __init__(self, prefix):
        endpoints = [f"{address}:{MEMBER_PORT}={name}" for name, address in MEMBERS]
        self.proc = subprocess.Popen([*prefix, sys.executable, HOSTS_HARNESS, "serve", *endpoints],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            ready = selector.select(WAIT)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.kill()
            raise AssertionError(f"members did not start: {line!r} {self.proc.stderr.read()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()


class HostsNetnsTest(harness.RinglbTest):
    def setUp(self):
        why = namespaces_unavailable()
        if why:
            self.skipTest(why)
        super().setUp()
        self.namespaces = Namespaces()
        self.addCleanup(self.namespaces.close)  # runs last: after every process in them ended
        self.namespaces.make()
        members = MemberProcess(self.namespaces.exec_prefix("m"))
        self.addCleanup(members.kill)

    def start_instance(self, role, text):
        path = self.write_config(text, f"{role}.toml")
        lb = harness.Ringlb(path, wrapper=self.namespaces.exec_prefix(role))
        self.addCleanup(self._finish_ringlb, lb, True)
        lb.wait_ready(timeout=3 * WAIT)
        return lb

    def ask_all(self, address):
        """{source: member} for one session from each client source to
        address:LISTEN_PORT, asked from the clients' namespace."""
        output = run(*self.namespaces.exec_prefix("c"), sys.executable, HOSTS_HARNESS, "ask", address,
                     str(LISTEN_PORT), *SOURCES)
        answers = json.loads(output)
        failed = {source: answer for source, answer in answers.items() if answer.startswith("error")}
        self.assertEqual(failed, {}, f"clients through {address} failed")
        return answers

    def start_pair(self):
        """Instance a (1 worker, members in order, 0.0.0.0) and b (2
        workers, members reversed, "[::]" where IPv6 exists)."""
        dual_stack = os.path.exists("/proc/sys/net/ipv6")
        instance_a = self.start_instance("a", config(f"0.0.0.0:{LISTEN_PORT}", 1, MEMBERS))
        bind_b = f"[::]:{LISTEN_PORT}" if dual_stack else f"0.0.0.0:{LISTEN_PORT}"
        instance_b = self.start_instance("b", config(bind_b, 2, list(reversed(MEMBERS))))
        return instance_a, instance_b

    def test_two_instances_agree_and_one_leaving_moves_nobody(self):
        instance_a, _ = self.start_pair()
        through_a = self.ask_all(ADDRESS_A)
        self.assertGreaterEqual(len(set(through_a.values())), 3, f"40 clients on few members: {through_a}")
        self.assertEqual(differences(through_a, self.ask_all(ADDRESS_B)), [],
                         "clients whose member differs")

        self.assertEqual(instance_a.stop(), 0, instance_a.stderr_text())
        self.assertEqual(differences(through_a, self.ask_all(ADDRESS_B)), [],
                         "clients whose member changed on b once a stopped")

    def test_ecmp_spreads_connections_and_a_withdrawn_host_moves_nobody(self):
        c = self.namespaces
        # Layer-4 hashing: one client's connections (other source ports)
        # reach both instances, so every round checks that they agree.
        run(*c.exec_prefix("c"), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy")
        c.ip("c", "route", "add", f"{SERVICE_ADDRESS}/32", "nexthop", "via", ADDRESS_A,
             "nexthop", "via", ADDRESS_B)
        instance_a, instance_b = self.start_pair()

        reference = self.ask_all(SERVICE_ADDRESS)
        self.assertGreaterEqual(len(set(reference.values())), 3, f"40 clients on few members: {reference}")
        for round_ in range(1, 4):
            self.assertEqual(differences(reference, self.ask_all(SERVICE_ADDRESS)), [],
                             f"round {round_}: clients whose member changed")
        served = {name: {source_of(e["client"]) for e in instance.wait_entries(1)}
                  for name, instance in (("a", instance_a), ("b", instance_b))}
        self.assertTrue(served["a"] and served["b"], f"ECMP did not spread the clients: {served}")
        self.assertTrue(served["a"] & served["b"], f"no client reached both instances: {served}")

        # The routers withdraw a (as when its announcement stops), then a stops.
        c.ip("c", "route", "replace", f"{SERVICE_ADDRESS}/32", "via", ADDRESS_B)
        self.assertEqual(instance_a.stop(), 0, instance_a.stderr_text())
        self.assertEqual(differences(reference, self.ask_all(SERVICE_ADDRESS)), [],
                         "clients whose member changed once a was withdrawn")


if __name__ == "__main__":
    harness.main()
