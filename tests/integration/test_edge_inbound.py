"""The accept side of the edge (issue 11): PROXY headers from a front
balancer (HAProxy 2.6 with send-proxy-v2 and send-proxy, and hand-made
headers: malformed, dribbled, never finished), allow/deny over IPv4, IPv6
and IPv4-mapped sources, per-source limits across two workers, and a flood
of one-shot sources against a small source table."""

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import more_harness as mh  # noqa: E402
import test_tls  # noqa: E402
from harness import LOOPBACK, SCALE, WAIT, member, wait_until  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1_header(source, source_port, destination="127.0.0.1", destination_port=80):
    return f"PROXY TCP4 {source} {destination} {source_port} {destination_port}\r\n".encode()


def v2_header(source, source_port, destination="127.0.0.1", destination_port=80):
    body = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack(
        "!HH", source_port, destination_port)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def exchange(port, payload, source=None, family=socket.AF_INET, host=LOOPBACK, pace=None):
    """Sends payload (one write, or byte by byte with `pace` seconds between
    bytes), half-closes and reads until EOF. Returns (bytes read, the client address)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    with s:
        s.settimeout(WAIT)
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
        client = harness.client_name(s)
        try:
            if pace is None:
                s.sendall(payload)
            else:
                for i in range(len(payload)):
                    s.sendall(payload[i:i + 1])
                    time.sleep(pace)  # the pace of a slow sender, not a wait for ringlb
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused: ringlb closed first; what it sent (nothing) is read below
        data, _ = harness.recv_all(s)
    return data, client


def served_by(data):
    """The member name a name_handler answer starts with, or None (closed)."""
    if not data:
        return None
    return data.split(b"\n", 1)[0].decode()


class EdgeTest(harness.RinglbTest):
    def setUp(self):
        super().setUp()
        self.members = [self.backend(harness.name_handler, name=f"m{i}") for i in range(3)]
        self.admin_port = harness.free_port()

    def config(self, port, listener, *, pool=None, workers=1, global_=None, bind=None):
        pool_spec = {"balance": "round_robin", "members": [member(b.name, b.address) for b in self.members]}
        pool_spec.update(pool or {})
        text = mh.build_config([("front", port, "pool", listener)], {"pool": pool_spec}, workers=workers,
                               global_=global_, admin={"listen": f"127.0.0.1:{self.admin_port}"})
        if bind:
            text = text.replace(f'bind = "{LOOPBACK}:{port}"', f'bind = "{bind}"')
        return text

    def accepted_by_members(self):
        return sum(b.accepted for b in self.members)

    def refused(self, reason):
        return mh.scrape(self.admin_port).value("ringlb_listener_refused_total", listener="front", reason=reason)

    def entry(self, lb, client):
        return lb.entry_for(client)


class ProxyProtocolTest(EdgeTest):
    def start_haproxy(self, ringlb_port, option):
        port = harness.free_port()
        path = os.path.join(self.tmp.name, f"haproxy-{option}.cfg")
        with open(path, "w") as f:
            f.write(f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:{port}
    default_backend ringlb
backend ringlb
    server lb 127.0.0.1:{ringlb_port} {option}
""")
        proc = subprocess.Popen([HAPROXY, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (proc.kill(), proc.wait(), proc.stderr.close()))

        def listening():
            try:
                socket.create_connection((LOOPBACK, port), timeout=1).close()
                return True
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"haproxy exited: {proc.stderr.read().decode()}")
                return False
        wait_until(listening, what="haproxy listening")
        return port

    def sticky_through(self, option, sources):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "any", "proxy_from": ["127.0.0.1/32"]},
                                          pool={"balance": "consistent_hash", "hash_key": "source_ip"}))
        front = self.start_haproxy(port, option)
        chosen = {}
        for round_ in range(6):
            for source in sources:
                data, client = exchange(front, b"hello\n", source=source)
                name = served_by(data)
                self.assertIsNotNone(name, f"{option}: no answer for {source}")
                chosen.setdefault(source, set()).add(name)
                e = self.entry(lb, client)
                self.assertEqual(e["client"], client)
                self.assertEqual(e.get("proxy_client"), client)
                self.assertTrue(e.get("proxy_peer", "").startswith("127.0.0.1:"), e)
                self.assertEqual(e["member"], name)
        for source, names in chosen.items():
            self.assertEqual(len(names), 1, f"{option}: {source} moved between members: {names}")
        self.assertGreater(len(set().union(*chosen.values())), 1, f"{option}: every source on one member")
        self.assertEqual(self.refused("proxy_header_invalid"), 0)

    def test_haproxy_send_proxy_v2_keeps_clients_sticky_by_their_own_address(self):
        self.sticky_through("send-proxy-v2", [f"127.0.0.{i}" for i in range(2, 12)])

    def test_haproxy_send_proxy_v1_keeps_clients_sticky_by_their_own_address(self):
        self.sticky_through("send-proxy", [f"127.0.0.{i}" for i in range(2, 12)])

    def test_sender_outside_proxy_from_is_closed_and_never_reaches_a_member(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "v2", "proxy_from": ["127.0.0.9/32"]}))
        data, client = exchange(port, v2_header("10.1.2.3", 4000) + b"hello\n", source="127.0.0.2")
        self.assertEqual(data, b"")
        e = self.entry(lb, client)
        self.assertEqual(e["end"], "denied")
        self.assertIsNone(e["member"])
        self.assertNotIn("proxy_client", e)
        self.assertEqual(self.refused("proxy_not_allowed"), 1)
        self.assertEqual(self.accepted_by_members(), 0)
        # From inside proxy_from the same bytes are served, as 10.1.2.3.
        data, client = exchange(port, v2_header("10.1.2.3", 4000) + b"hello\n", source="127.0.0.9")
        self.assertIsNotNone(served_by(data))
        e = lb.wait_entries(1, where=lambda e: e.get("proxy_peer") == client)[0]
        self.assertEqual((e["client"], e["proxy_client"]), ("10.1.2.3:4000", "10.1.2.3:4000"))

    def test_malformed_headers_are_closed_and_counted(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "any", "proxy_from": ["127.0.0.0/8"]}))
        bad = [
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\nhello\n",             # leading zero
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                       # no header at all
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 100 + b"\r\n",   # longer than 107 bytes
            V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]) + b"\0" * 12,     # version nibble 3
        ]
        for payload in bad:
            data, client = exchange(port, payload)
            self.assertEqual(data, b"", payload)
            self.assertEqual(self.entry(lb, client)["end"], "proxy_header_invalid", payload)
        self.assertEqual(self.refused("proxy_header_invalid"), len(bad))
        self.assertEqual(self.accepted_by_members(), 0)
        # One log line per connection, never one per byte.
        self.assertEqual(len(lb.wait_entries(len(bad))), len(bad))

    def test_header_dribbled_byte_by_byte_works(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "any", "proxy_from": ["127.0.0.1/32"]}))
        for header in (v2_header("192.0.2.7", 5555), v1_header("192.0.2.8", 5556)):
            data, client = exchange(port, header + b"hello\n", pace=0.01)
            self.assertEqual(data.split(b"\n", 1)[1], b"hello\n", header)
            e = lb.wait_entries(1, where=lambda e, c=client: e.get("proxy_peer") == c)[0]
            self.assertIn(e["client"], ("192.0.2.7:5555", "192.0.2.8:5556"))
            self.assertIsNotNone(e["member"])
        self.assertEqual(self.refused("proxy_header_invalid"), 0)

    def test_header_never_completed_times_out(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "v1", "proxy_from": ["127.0.0.1/32"],
                                                  "proxy_timeout": "500ms"}))
        s = self.connect(port)
        client = harness.client_name(s)
        s.sendall(b"PROXY TCP4 ")
        harness.wait_closed_by_peer(s)
        e = self.entry(lb, client)
        self.assertEqual(e["end"], "proxy_header_timeout")
        self.assertEqual(self.refused("proxy_header_timeout"), 1)
        self.assertEqual(self.accepted_by_members(), 0)

    def test_a_close_inside_the_header_is_invalid_at_once(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "v2", "proxy_from": ["127.0.0.1/32"],
                                                  "proxy_timeout": "60s"}))
        started = time.monotonic()
        data, client = exchange(port, v2_header("192.0.2.1", 1)[:20])  # then FIN
        self.assertEqual(data, b"")
        self.assertEqual(self.entry(lb, client)["end"], "proxy_header_invalid")
        self.assertLess(time.monotonic() - started, 30, "waited for proxy_timeout instead")

    def test_the_header_sent_on_carries_the_received_addresses(self):
        def proxy_line_handler(conn, backend):
            header = harness.read_line(conn)
            payload = harness.read_line(conn)
            conn.sendall(header + payload)
            conn.shutdown(socket.SHUT_WR)
            harness.recv_all(conn)

        self.members = [self.backend(proxy_line_handler, name="pp")]
        port = harness.free_port()
        self.start_ringlb(self.config(port, {"accept_proxy": "v2", "proxy_from": ["127.0.0.1/32"]},
                                      pool={"send_proxy": "v1"}))
        data, _ = exchange(port, v2_header("203.0.113.5", 4444, "198.51.100.1", 443) + b"hello\n")
        self.assertEqual(data, b"PROXY TCP4 203.0.113.5 198.51.100.1 4444 443\r\nhello\n")

    def test_local_header_keeps_the_connection_addresses(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "any", "proxy_from": ["127.0.0.1/32"]}))
        local = V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
        data, client = exchange(port, local + b"hello\n")
        self.assertEqual(data.split(b"\n", 1)[1], b"hello\n")
        e = self.entry(lb, client)
        self.assertNotIn("proxy_client", e)


class ProxyBeforeTlsTest(test_tls.TlsTest):
    """PROXY comes first on the wire; the bytes after it go into the TLS
    handshake, or into the ClientHello preread, as a client's first bytes."""

    def test_tls_handshake_after_the_header(self):
        self.a = self.pki.issue("a.test", ["a.test"])
        member_ = self.backend(test_tls.http_handler, name="plain-1")
        port = harness.free_port()
        lb = self.start_ringlb(test_tls.config(
            port, {"web": {"members": [member_.address]}}, tls={"certificates": [self.a]},
            listener={"accept_proxy": "v2"}).replace(
            'accept_proxy = "v2"', 'accept_proxy = "v2"\nproxy_from = ["127.0.0.1/32"]'))
        raw = socket.create_connection((LOOPBACK, port), timeout=WAIT)
        raw.sendall(v2_header("203.0.113.9", 7777))
        with test_tls.client_context(self.pki.ca).wrap_socket(raw, server_hostname="a.test") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            self.assertIn(b"hello from plain-1", harness.recv_all(tls)[0])
        e = lb.wait_entries(1)[0]
        self.assertEqual((e["client"], e["proxy_client"], e["sni"]), ("203.0.113.9:7777",) * 2 + ("a.test",))
        self.assertTrue(e["tls_version"])

    def test_client_hello_preread_after_the_header_in_the_same_segment(self):
        web = self.backend(test_tls.peek_handler, name="web-member")
        api = self.backend(test_tls.peek_handler, name="api-member")
        port = harness.free_port()
        lb = self.start_ringlb(test_tls.config(
            port, {"web": {"members": [web.address]}, "api": {"members": [api.address]}},
            routes=[(["api.internal"], "api")],
            listener={"accept_proxy": "v1"}).replace(
            'accept_proxy = "v1"', 'accept_proxy = "v1"\nproxy_from = ["127.0.0.1/32"]'))
        hello = test_tls.client_hello("api.internal")
        api.state["expect"] = len(hello)
        s = self.connect(port)
        s.sendall(v1_header("198.51.100.20", 4321) + hello)
        name, count, digest = harness.read_line(s).decode().split()
        self.assertEqual(name, "api-member")
        self.assertEqual((int(count), digest), (len(hello), hashlib.sha256(hello).hexdigest()),
                         "the member gets the ClientHello, and not a byte of the header")
        s.close()
        e = lb.wait_entries(1)[0]
        self.assertEqual((e["client"], e["route"]), ("198.51.100.20:4321", "sni"))


class AccessControlTest(EdgeTest):
    def test_ipv4_allow_and_deny(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"allow": ["127.0.0.0/24"], "deny": ["127.0.0.3/32"]}))
        data, _ = exchange(port, b"hello\n", source="127.0.0.2")
        self.assertIsNotNone(served_by(data))
        for source in ("127.0.0.3", "127.0.1.5"):
            data, client = exchange(port, b"hello\n", source=source)
            self.assertEqual(data, b"", source)
            e = self.entry(lb, client)
            self.assertEqual(e["end"], "denied")
            self.assertIsNone(e["member"])
        self.assertEqual(self.refused("denied"), 2)
        self.assertEqual(self.accepted_by_members(), 1)

    def test_ipv6_sources(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"deny": ["::1/128"]}, bind=f"[::1]:{port}"))
        data, client = exchange(port, b"hello\n", family=socket.AF_INET6, host="::1")
        self.assertEqual(data, b"")
        self.assertEqual(lb.wait_entries(1)[0]["end"], "denied")
        self.assertEqual(self.accepted_by_members(), 0)

    def test_ipv6_allowed(self):
        port = harness.free_port()
        self.start_ringlb(self.config(port, {"allow": ["::1/128"]}, bind=f"[::1]:{port}"))
        data, _ = exchange(port, b"hello\n", family=socket.AF_INET6, host="::1")
        self.assertIsNotNone(served_by(data))

    def test_ipv4_mapped_source_on_a_dual_stack_listener_matches_ipv4_rules(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"deny": ["127.0.0.7/32"]}, bind=f"[::]:{port}"))
        data, _ = exchange(port, b"hello\n", source="127.0.0.2")
        self.assertIsNotNone(served_by(data))
        data, _ = exchange(port, b"hello\n", source="127.0.0.7")
        self.assertEqual(data, b"")
        e = lb.wait_entries(1, where=lambda e: e["end"] == "denied")[0]
        self.assertIn("127.0.0.7", e["client"])
        self.assertEqual(self.accepted_by_members(), 1)

    def test_deny_applies_to_the_proxy_header_source(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"accept_proxy": "v1", "proxy_from": ["127.0.0.1/32"],
                                                  "deny": ["198.51.100.0/24"]}))
        data, _ = exchange(port, v1_header("198.51.100.4", 1000) + b"hello\n")
        self.assertEqual(data, b"")
        data, _ = exchange(port, v1_header("203.0.113.4", 1000) + b"hello\n")
        self.assertIsNotNone(served_by(data))
        e = lb.wait_entries(1, where=lambda e: e["end"] == "denied")[0]
        self.assertEqual(e["client"], "198.51.100.4:1000")
        self.assertEqual(self.accepted_by_members(), 1)


class SourceLimitTest(EdgeTest):
    def setUp(self):
        harness.RinglbTest.setUp(self)
        self.members = [self.backend(mh.session_handler, name=f"m{i}") for i in range(2)]
        self.admin_port = harness.free_port()

    def test_concurrent_limit_per_source_across_two_workers(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"max_connections_per_source": 3}, workers=2))
        held = [mh.Session(port, "127.0.0.2") for _ in range(3)]
        self.addCleanup(lambda: [h.close() for h in held])
        for _ in range(4):  # whichever worker accepts it
            data, client = exchange(port, b"hello\n", source="127.0.0.2")
            self.assertEqual(data, b"")
            self.assertEqual(self.entry(lb, client)["end"], "source_limit")
        others = [mh.Session(port, f"127.0.0.{i}") for i in (3, 4)]
        for o in others:
            o.echo()
            o.close()
        closed = held.pop()
        closed.close()
        self.entry(lb, closed.client)  # logged when it ended, after its source was released
        again = mh.Session(port, "127.0.0.2")  # its share came back
        again.close()
        self.assertEqual(self.refused("source_limit"), 4)

    def test_a_reload_keeping_the_limits_keeps_the_counts(self):
        port = harness.free_port()
        text = self.config(port, {"max_connections_per_source": 2}, workers=2)
        lb = self.start_ringlb(text)
        held = [mh.Session(port, "127.0.0.2") for _ in range(2)]
        self.addCleanup(lambda: [h.close() for h in held])

        def reload(new_text, count):
            self.write_config(new_text)
            lb.signal(signal.SIGHUP)
            wait_until(lambda: lb.stderr_text().count("info reloaded") >= count, what="reloaded")

        reload(text.replace('log_level = "info"', 'log_level = "info"\nremoved_member_timeout = "1h"'), 1)
        data, client = exchange(port, b"hello\n", source="127.0.0.2")
        self.assertEqual(data, b"", "the reload forgot the two sessions open")
        self.assertEqual(self.entry(lb, client)["end"], "source_limit")
        # New limits, a new table: the sessions admitted to the old one are
        # not counted in it, and still end cleanly (released to the old one).
        reload(text.replace("max_connections_per_source = 2", "max_connections_per_source = 1"), 2)
        extra = mh.Session(port, "127.0.0.2")
        extra.echo()
        data, client = exchange(port, b"hello\n", source="127.0.0.2")
        self.assertEqual(self.entry(lb, client)["end"], "source_limit")
        extra.close()
        for h in held:
            h.echo()

    def test_global_max_connections_counts_every_listener(self):
        ports = [harness.free_port(), harness.free_port()]
        pool = {"balance": "round_robin", "members": [member(b.name, b.address) for b in self.members]}
        lb = self.start_ringlb(mh.build_config(
            [("a", ports[0], "pool", {}), ("b", ports[1], "pool", {})], {"pool": pool}, workers=2,
            global_={"max_connections": 2}, admin={"listen": f"127.0.0.1:{self.admin_port}"}))
        held = [mh.Session(ports[0]), mh.Session(ports[1])]
        self.addCleanup(lambda: [h.close() for h in held])
        for port in ports:
            data, client = exchange(port, b"hello\n")
            self.assertEqual(data, b"")
            self.assertEqual(self.entry(lb, client)["end"], "limit")
        closed = held.pop()
        closed.close()
        self.entry(lb, closed.client)
        data, _ = exchange(ports[0], b"hello\n")
        self.assertIsNotNone(served_by(data))
        wait_until(lambda: mh.scrape(self.admin_port).value("ringlb_connections_active") == 1,
                   what="one session open in the process")

    def test_rate_per_source_across_two_workers(self):
        port = harness.free_port()
        lb = self.start_ringlb(self.config(port, {"connection_rate_per_source": 2}, workers=2))
        results = [exchange(port, b"hello\n", source="127.0.0.5") for _ in range(12)]
        served = [c for d, c in results if served_by(d)]
        refused = [c for d, c in results if not d]
        self.assertGreaterEqual(len(served), 2)
        self.assertTrue(refused, "12 connections at once from one source all passed a rate of 2/s")
        for client in refused:
            self.assertEqual(self.entry(lb, client)["end"], "source_rate")
        # Another source is unaffected.
        data, _ = exchange(port, b"hello\n", source="127.0.0.6")
        self.assertIsNotNone(served_by(data))
        self.assertEqual(self.refused("source_rate"), len(refused))

    def test_flood_of_one_shot_sources_keeps_the_table_bounded(self):
        port = harness.free_port()
        cap = 64
        lb = self.start_ringlb(self.config(port, {"max_connections_per_source": 4}, workers=2,
                                          global_={"source_table_size": cap}))
        sources = [f"127.{1 + i // 250 // 250}.{i // 250 % 250}.{1 + i % 250}" for i in range(3000)]
        answered = []
        peaks = []
        lock = threading.Lock()

        def client(chunk):
            for source in chunk:
                data, _ = exchange(port, b"hello\n", source=source)
                with lock:
                    answered.append(bool(data))

        def watch(stop):
            while not stop.is_set():
                m = mh.scrape(self.admin_port)
                peaks.append(m.value("ringlb_listener_sources_tracked", listener="front"))
                stop.wait(0.02)  # a scrape every 20 ms while the flood runs

        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(stop,))
        watcher.start()
        threads = [threading.Thread(target=client, args=(sources[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        self.assertEqual(len(answered), len(sources))
        entries = lb.wait_entries(len(sources), timeout=WAIT * 3)
        self.assertEqual(len(entries), len(sources))
        self.assertTrue(peaks)
        self.assertLessEqual(max(peaks), cap)
        self.assertLessEqual(mh.scrape(self.admin_port).value("ringlb_listener_sources_tracked", listener="front"),
                             cap)
        # Sessions end at once, so every new source finds an idle entry to evict.
        self.assertEqual(sum(answered), len(sources))
        self.assertEqual(self.refused("source_table_full"), 0)


if __name__ == "__main__":
    harness.main()
