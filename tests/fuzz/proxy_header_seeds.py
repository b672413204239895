#!/usr/bin/env python3
"""Writes the seeds of the proxy_header fuzz target into
tests/fuzz/corpus/proxy_header/: the edge cases of HAProxy's
doc/proxy-protocol.txt for both versions, valid and not. Each seed's first
byte is the target's selector: the small v2 cap is 16 + that byte, its bits
also pick the round-trip addresses' families and extras. Run it again to
refresh them; the output is always the same."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "proxy_header")

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FFFF = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
INET4_BLOCK = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack(">HH", 51234, 443)
INET6_BLOCK = (bytes.fromhex("20010db8000000000000000000000001") + bytes.fromhex("00000000000000000000ffff0a000007")
               + struct.pack(">HH", 80, 65535))


def v2(version_command, family_protocol, body, length=None):
    return SIGNATURE + bytes([version_command, family_protocol]) + struct.pack(
        ">H", len(body) if length is None else length) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


SSL_TLV = tlv(0x20, b"\x03" + struct.pack(">I", 0) + tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_128_GCM_SHA256"))


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        # v1, valid
        "v1_tcp4_payload": (0x00, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n\r\n"),
        "v1_tcp6": (0x41, b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n"),
        "v1_tcp6_longest": (0xC2, ("PROXY TCP6 %s %s 65535 65535\r\n" % (FFFF, FFFF)).encode()),
        "v1_tcp4_longest": (0x03, b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
        "v1_unknown": (0x04, b"PROXY UNKNOWN\r\npayload"),
        "v1_unknown_107": (0x05, ("PROXY UNKNOWN %s %s 65535 65535\r\n" % (FFFF, FFFF)).encode()),
        "v1_zeros": (0x06, b"PROXY TCP4 0.0.0.0 10.0.0.0 0 0\r\n"),
        # v1, invalid
        "v1_no_crlf_in_107": (0x07, b"PROXY UNKNOWN " + b"x" * 94 + b"\r\n"),
        "v1_lone_cr": (0x08, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
        "v1_lone_lf": (0x09, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
        "v1_unknown_lone_cr": (0x0A, b"PROXY UNKNOWN a\rb\r\n"),
        "v1_leading_zero_address": (0x0B, b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
        "v1_leading_zero_port": (0x0C, b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"),
        "v1_port_65536": (0x0D, b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
        "v1_tcp4_with_v6": (0x0E, b"PROXY TCP4 ::1 ::1 1 2\r\n"),
        "v1_tcp6_with_v4": (0x0F, b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
        "v1_double_space": (0x10, b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
        "v1_two_gaps": (0x11, b"PROXY TCP6 1::2::3 ::1 1 2\r\n"),
        "v1_tcp6_too_long": (0x12, ("PROXY TCP6 %s %s 65535 65535\r\n" % (
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")).encode()),
        # v2, valid
        "v2_inet4_payload": (0x20, v2(0x21, 0x11, INET4_BLOCK) + b"payload"),
        "v2_inet6_tlvs": (0xFF, v2(0x21, 0x21, INET6_BLOCK + tlv(0x01, b"h2") + tlv(0x02, b"example.com") + SSL_TLV)
                          + b"\x16\x03\x01"),
        "v2_local_empty": (0x00, v2(0x20, 0x00, b"")),
        "v2_local_with_length": (0x30, v2(0x20, 0x11, INET4_BLOCK) + b"GET"),
        "v2_local_unix": (0xFF, v2(0x20, 0x31, b"/run/a.sock".ljust(108, b"\0") + b"/run/b.sock".ljust(108, b"\0"))),
        "v2_proxy_unspec": (0x31, v2(0x21, 0x00, b"\x00" * 5)),
        "v2_tlv_exact_end": (0x32, v2(0x21, 0x11, INET4_BLOCK + tlv(0x04, b"") + tlv(0xE0, b"x"))),
        # v2, invalid
        "v2_signature_mismatch": (0x33, SIGNATURE[:6] + b"\x0b" + SIGNATURE[7:] + b"\x21\x11\x00\x0c" + INET4_BLOCK),
        "v2_version_1": (0x34, v2(0x11, 0x11, INET4_BLOCK)),
        "v2_version_3": (0x35, v2(0x31, 0x11, INET4_BLOCK)),
        "v2_unknown_command": (0x36, v2(0x22, 0x11, INET4_BLOCK)),
        "v2_proxy_unix": (0xFF, v2(0x21, 0x31, b"\x00" * 216)),
        "v2_proxy_udp": (0x37, v2(0x21, 0x12, INET4_BLOCK)),
        "v2_unknown_family": (0x38, v2(0x21, 0x41, INET4_BLOCK)),
        "v2_short_of_block": (0x39, v2(0x21, 0x21, INET6_BLOCK[:35])),
        "v2_tlv_past_header": (0x3A, v2(0x21, 0x11, INET4_BLOCK + b"\x04\x00\x05\x01\x02\x03\x04") + b"payload"),
        "v2_tlv_header_cut": (0x3B, v2(0x21, 0x11, INET4_BLOCK + b"\x04\x00")),
        "v2_over_small_cap": (0x08, v2(0x21, 0x11, INET4_BLOCK + tlv(0x04, b"\x00" * 40))),
        "v2_length_ffff": (0x3C, v2(0x20, 0x00, b"\x00" * 64, 0xFFFF)),
        # neither
        "http_get": (0x3D, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        "tls_record": (0x3E, b"\x16\x03\x01\x00\x05hello"),
        "lower_case": (0x3F, b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    }
    for name, (selector, data) in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([selector]) + data)
    print("wrote %d seeds to %s" % (len(seeds), OUT))


if __name__ == "__main__":
    main()
