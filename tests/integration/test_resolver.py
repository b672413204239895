"""lb::discovery::Resolver (c-ares on an io_uring) against a real dnsmasq.

tests/tools/resolve_main runs the lookups (path in $RESOLVE_MAIN) and prints
one JSON line per result; dnsmasq is started here on a free loopback port
with hosts files, host-records, SRV records and CNAMEs this test writes.
Skipped when dnsmasq is not installed (scripts/setup --test installs it).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RESOLVE_MAIN = os.environ.get("RESOLVE_MAIN") or os.path.join(harness.REPO, "build", "tests", "resolve_main")
DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK) else None)
NO_DNSMASQ = "dnsmasq is not installed (scripts/setup --test installs dnsmasq-base)"

BIG_COUNT = 60  # A records of big.test: more than a 512-byte UDP answer holds

HOSTS = "\n".join(
    ["10.0.0.1 multi.test", "10.0.0.2 multi.test", "10.0.0.3 multi.test",
     "10.0.0.9 v4only.test",
     "2001:db8::1 v6.test", "2001:db8::2 v6.test",
     "10.1.0.1 node1.svc.test", "2001:db8:1::1 node1.svc.test",
     "10.1.0.2 node2.svc.test"]
    + [f"10.2.{i // 250}.{i % 250 + 1} big.test" for i in range(BIG_COUNT)]) + "\n"


def dns_query(name, qtype=1):
    """A minimal query (id 0x4242, RD) for `name`."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def free_dns_port():
    """A port free for both UDP and TCP on loopback."""
    for _ in range(100):
        port = harness.free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((harness.LOOPBACK, port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port for dnsmasq")


@unittest.skipUnless(DNSMASQ, NO_DNSMASQ)
class ResolverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(RESOLVE_MAIN, os.X_OK):
            raise AssertionError(f"resolve_main not found at {RESOLVE_MAIN} (set $RESOLVE_MAIN)")
        cls.tmp = tempfile.TemporaryDirectory()
        hosts = os.path.join(cls.tmp.name, "hosts")
        with open(hosts, "w") as f:
            f.write(HOSTS)
        cls.log_path = os.path.join(cls.tmp.name, "dnsmasq.log")
        cls.port = free_dns_port()
        args = [
            DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file=",
            f"--port={cls.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local=/test/",
            "--local-ttl=60", "--log-queries", f"--log-facility={cls.log_path}",
            # Targets dnsmasq knows (node1, node2) come with additional records.
            "--srv-host=_http._tcp.svc.test,node1.svc.test,8080,10,60",
            "--srv-host=_http._tcp.svc.test,node2.svc.test,9090,20,5",
            # Targets that are CNAMEs: dnsmasq adds no additional records
            # for them, so the resolver looks them up (the CNAMEs' TTL of 5
            # is not the one that counts).
            "--host-record=real-far1.test,10.3.0.1,120",
            "--host-record=real-far2.test,10.3.0.2,2001:db8:3::2,30",
            "--cname=far1.svc.test,real-far1.test,5",
            "--cname=far2.svc.test,real-far2.test,5",
            "--srv-host=_far._tcp.svc.test,far1.svc.test,7001,1,10",
            "--srv-host=_far._tcp.svc.test,far2.svc.test,7002,2,20",
            # A CNAME chain whose hops have short TTLs; the address's TTL is 300.
            "--host-record=target.test,10.4.0.1,300",
            "--cname=alias.test,middle.test,5",
            "--cname=middle.test,target.test,7",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        cls.dnsmasq = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        cls.server = f"127.0.0.1:{cls.port}"
        harness.wait_until(cls._answers, what="dnsmasq to answer")

    @classmethod
    def _answers(cls):
        if cls.dnsmasq.poll() is not None:
            raise AssertionError("dnsmasq exited: " + cls.dnsmasq.stderr.read().decode("utf-8", "replace"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(dns_query("multi.test"), (harness.LOOPBACK, cls.port))
                return s.recv(4096)[:2] == b"\x42\x42"
            except OSError:
                return False

    @classmethod
    def tearDownClass(cls):
        cls.dnsmasq.terminate()
        cls.dnsmasq.wait(harness.WAIT)
        cls.dnsmasq.stderr.close()
        cls.tmp.cleanup()

    def resolve(self, *names, type_="A", port=80, server=None, timeout_ms=2000, attempts=2, extra=()):
        servers = [] if "--server" in extra else ["--server", server or self.server]
        args = [RESOLVE_MAIN, *servers, "--type", type_, "--port", str(port),
                "--timeout-ms", str(timeout_ms), "--attempts", str(attempts), *extra, *names]
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=harness.WAIT + timeout_ms * attempts / 1000)
        stderr = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, f"resolve_main failed:\n{stderr}")
        for mark in harness.SANITIZER_MARKS:
            self.assertNotIn(mark, stderr)
        return [json.loads(line) for line in proc.stdout.decode().splitlines()]

    def resolve_one(self, name, **kwargs):
        results = self.resolve(name, **kwargs)
        self.assertEqual(len(results), 1, results)
        return results[0]

    def endpoints(self, result):
        return [(r["address"], r["port"]) for r in result["records"]]

    def queries_logged(self, name, qtype):
        with open(self.log_path) as f:
            return sum(1 for line in f if f"query[{qtype}] {name} from" in line)

    def test_a_with_several_addresses(self):
        result = self.resolve_one("multi.test", port=8443)
        self.assertEqual(result["status"], "ok", result)
        endpoints = self.endpoints(result)
        self.assertEqual(sorted(endpoints), [("10.0.0.1", 8443), ("10.0.0.2", 8443), ("10.0.0.3", 8443)])
        self.assertEqual(result["ttl"], 60)
        self.assertTrue(all(r["priority"] == 0 and r["weight"] == 0 for r in result["records"]))

    def test_aaaa(self):
        result = self.resolve_one("v6.test", type_="AAAA", port=53)
        self.assertEqual(result["status"], "ok", result)
        self.assertEqual(sorted(self.endpoints(result)), [("2001:db8::1", 53), ("2001:db8::2", 53)])

    def test_name_with_no_aaaa_is_no_data(self):
        result = self.resolve_one("v4only.test", type_="AAAA")
        self.assertEqual(result["status"], "no_data", result)
        self.assertEqual(result["records"], [])

    def test_nxdomain_is_no_such_name(self):
        result = self.resolve_one("nowhere.test")
        self.assertEqual(result["status"], "no_such_name", result)
        self.assertEqual(result["records"], [])

    def test_cname_chain_reports_the_address_records_ttl(self):
        result = self.resolve_one("alias.test", port=1)
        self.assertEqual(result["status"], "ok", result)
        self.assertEqual(self.endpoints(result), [("10.4.0.1", 1)])
        self.assertEqual(result["ttl"], 300)

    def test_srv_with_addresses_in_the_additional_section(self):
        before = self.queries_logged("node1.svc.test", "A")
        result = self.resolve_one("_http._tcp.svc.test", type_="SRV", port=0)
        self.assertEqual(result["status"], "ok", result)
        records = sorted((r["address"], r["port"], r["priority"], r["weight"]) for r in result["records"])
        self.assertEqual(records, [("10.1.0.1", 8080, 10, 60), ("10.1.0.2", 9090, 20, 5),
                                   ("2001:db8:1::1", 8080, 10, 60)])
        # Taken from the additional section: no lookup of the target was made.
        self.assertEqual(self.queries_logged("node1.svc.test", "A"), before)
        self.assertEqual(result["ttl"], 60)

    def test_srv_whose_targets_are_looked_up(self):
        before = self.queries_logged("far2.svc.test", "AAAA")
        result = self.resolve_one("_far._tcp.svc.test", type_="SRV")
        self.assertEqual(result["status"], "ok", result)
        records = sorted((r["address"], r["port"], r["priority"], r["weight"]) for r in result["records"])
        self.assertEqual(records, [("10.3.0.1", 7001, 1, 10), ("10.3.0.2", 7002, 2, 20),
                                   ("2001:db8:3::2", 7002, 2, 20)])
        self.assertGreater(self.queries_logged("far2.svc.test", "AAAA"), before)
        self.assertEqual(result["ttl"], 30)  # far2's records; the SRV records say 60

    def test_truncated_udp_answer_is_asked_again_over_tcp(self):
        before = self.queries_logged("big.test", "A")
        result = self.resolve_one("big.test")
        self.assertEqual(result["status"], "ok", result)
        # Asked twice: over UDP (truncated), then over TCP.
        self.assertEqual(self.queries_logged("big.test", "A"), before + 2)
        self.assertEqual(len(result["records"]), BIG_COUNT)
        self.assertEqual(len(set(self.endpoints(result))), BIG_COUNT)

    def test_several_lookups_at_once(self):
        results = self.resolve("multi.test", "nowhere.test", "alias.test", "big.test")
        self.assertEqual({r["name"]: r["status"] for r in results},
                         {"multi.test": "ok", "nowhere.test": "no_such_name", "alias.test": "ok", "big.test": "ok"})

    def test_dead_server_times_out_within_timeout_times_attempts(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind((harness.LOOPBACK, 0))  # bound: no port unreachable, never an answer
            server = f"127.0.0.1:{dead.getsockname()[1]}"
            started = time.monotonic()
            result = self.resolve_one("multi.test", server=server, timeout_ms=400, attempts=2)
            took = time.monotonic() - started
        self.assertEqual(result["status"], "timeout", result)
        self.assertGreaterEqual(result["elapsed_ms"], 800 - 50)
        self.assertLess(result["elapsed_ms"], 800 + 2000 * harness.SCALE, result)
        self.assertLess(took, harness.WAIT)

    def test_a_dead_first_server_is_passed_over(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind((harness.LOOPBACK, 0))
            result = self.resolve_one("multi.test", timeout_ms=400, attempts=2,
                                      extra=("--server", f"127.0.0.1:{dead.getsockname()[1]}", "--server", self.server))
        self.assertEqual(result["status"], "ok", result)
        self.assertEqual(len(result["records"]), 3)
        self.assertGreaterEqual(result["elapsed_ms"], 400 - 50)  # the first server had its attempt

    def test_destroying_the_resolver_with_lookups_in_flight(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind((harness.LOOPBACK, 0))
            server = f"127.0.0.1:{dead.getsockname()[1]}"
            lines = self.resolve("a.test", "b.test", "c.test", server=server, timeout_ms=5000,
                                 extra=("--destroy-after-ms", "200"))
        # No callback ran (resolve_main aborts if one does), the lookups were
        # pending, and the polls' late completions were dropped.
        self.assertEqual(lines[0], {"destroyed": True, "pending": 3}, lines)
        # The poll on c-ares's socket was removed: its completion (-ECANCELED) came.
        self.assertGreaterEqual(lines[-1].get("late_completions", 0), 1, lines)


if __name__ == "__main__":
    unittest.main(verbosity=2)
