#!/usr/bin/env python3
"""Writes the seeds of the client_hello fuzz target into
tests/fuzz/corpus/client_hello/: real ClientHellos that Python's ssl
module (OpenSSL) writes to a memory BIO, some re-split into small records,
and a few inputs that are not TLS. Each seed's first byte seeds how the
target cuts the rest into feeds. Run it again to refresh them; the random
fields differ from run to run, nothing else does."""

import os
import ssl
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "client_hello")


def client_hello(server_name=None, alpn=None, max_version=ssl.TLSVersion.TLSv1_3):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = max_version
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def message_of(records):
    """The handshake bytes inside a sequence of records."""
    out, at = b"", 0
    while at < len(records):
        length = struct.unpack(">H", records[at + 3:at + 5])[0]
        out += records[at + 5:at + 5 + length]
        at += 5 + length
    return out


def resplit(records, size):
    message = message_of(records)
    return b"".join(b"\x16\x03\x01" + struct.pack(">H", len(message[i:i + size])) + message[i:i + size]
                    for i in range(0, len(message), size))


def main():
    os.makedirs(OUT, exist_ok=True)
    tls13 = client_hello("api.internal", ["h2", "http/1.1"])
    seeds = {
        "tls13_sni_alpn": (0, tls13),
        "tls12_sni_alpn": (1, client_hello("Web.Example.", ["http/1.1"], ssl.TLSVersion.TLSv1_2)),
        "tls13_no_sni": (2, client_hello(None, ["h2"])),
        "tls12_no_sni_no_alpn": (3, client_hello(None, None, ssl.TLSVersion.TLSv1_2)),
        "tls13_records_of_7": (4, resplit(tls13, 7)),
        "tls13_records_of_1": (5, resplit(tls13, 1)),
        "tls13_with_early_bytes": (6, tls13 + b"\x17\x03\x03\x00\x03abc"),
        "tls13_truncated": (7, tls13[:-9]),
        "big_alpn": (8, client_hello("big.example", ["p%03d-%s" % (i, "x" * 60) for i in range(240)])),
        "too_large": (12, client_hello("big.example", ["p%03d-%s" % (i, "x" * 60) for i in range(280)])),
        "http_get": (9, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"),
        "sslv2_hello": (10, bytes.fromhex("802e0103010015000000100000390000380000350000160000130000"
                                          "0a0700c000003300003200002f0300800000050000040100800000"
                                          "150000120000090600400000140000110000080000060400800000"
                                          "03020080")),
        "record_version_2": (11, b"\x16\x02\x00\x00\x05hello"),
    }
    for name, (cut_seed, data) in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([cut_seed]) + data)
    print("wrote %d seeds to %s" % (len(seeds), OUT))


if __name__ == "__main__":
    main()
