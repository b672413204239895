#!/usr/bin/env python3
"""Writes the seeds of the dns_answer fuzz target into
tests/fuzz/corpus/dns_answer/: responses of each kind discovery reads (A,
AAAA, SRV with additional records, a CNAME chain, compressed names, NXDOMAIN,
a truncated answer, a pointer loop). Each seed's first byte is the target's
selector: the asked type, 0 A, 1 AAAA, 2 SRV. Run it again to refresh them;
the output is always the same."""

import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "dns_answer")
A, CNAME, AAAA, SRV = 1, 5, 28, 33


def name(dotted):
    return b"".join(bytes([len(l)]) + l.encode() for l in dotted.split(".") if l) + b"\0"


def header(an, ns=0, ar=0, flags=0x8180):
    return struct.pack(">HHHHHH", 0x1234, flags, 1, an, ns, ar)


def question(dotted, qtype):
    return name(dotted) + struct.pack(">HH", qtype, 1)


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a(owner, ttl, ip):
    return rr(owner, A, ttl, socket.inet_pton(socket.AF_INET, ip))


def aaaa(owner, ttl, ip):
    return rr(owner, AAAA, ttl, socket.inet_pton(socket.AF_INET6, ip))


def srv(owner, ttl, priority, weight, port, target):
    return rr(owner, SRV, ttl, struct.pack(">HHH", priority, weight, port) + target)


QPTR = b"\xc0\x0c"  # a pointer to the question name

SEEDS = {
    "a": b"\0" + header(2) + question("api.test", A) + a(QPTR, 60, "10.0.0.1") + a(QPTR, 30, "10.0.0.2"),
    "aaaa": b"\1" + header(1) + question("v6.test", AAAA) + aaaa(QPTR, 90, "2001:db8::7"),
    "srv": b"\2" + header(2, 0, 2) + question("_http._tcp.svc.test", SRV)
    + srv(QPTR, 120, 10, 60, 8080, name("node1.svc.test"))
    + srv(QPTR, 100, 20, 5, 9090, b"\x05node2\xc0\x17")
    + a(name("node1.svc.test"), 50, "192.0.2.1") + aaaa(name("node1.svc.test"), 40, "2001:db8::1"),
    "cname_chain": b"\0" + header(3) + question("www.test", A)
    + rr(QPTR, CNAME, 5, name("a.test")) + rr(name("a.test"), CNAME, 3, name("b.test"))
    + a(name("b.test"), 300, "10.1.1.1"),
    "nxdomain": b"\0" + header(0, 1, 0, 0x8183) + question("nx.test", A)
    + rr(name("test"), 6, 60, name("ns.test") + name("root.test") + struct.pack(">IIIII", 1, 2, 3, 4, 5)),
    "truncated": b"\0" + header(0, 0, 0, 0x8380) + question("big.test", A),
    "pointer_loop": b"\0" + header(1) + question("t.test", A) + b"\xc0\x18" + struct.pack(">HHIH", A, 1, 1, 4) + b"\1\2\3\4",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, data in SEEDS.items():
        with open(os.path.join(OUT, seed), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
