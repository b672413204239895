#!/usr/bin/env python3
"""Writes the seeds of the tls_records fuzz target into
tests/fuzz/corpus/tls_records/: a seed is a byte that seeds the cuts, then
records as (kind, length, content): kind bit 7 raw (unsealed), bits 0-1 the
type (0 data, 1 alert, 2 handshake, 3 other). Run it again to refresh them;
the output is always the same."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "tls_records")


def record(kind, content):
    return bytes([kind, len(content)]) + content


DATA, ALERT, HANDSHAKE, OTHER, RAW = 0, 1, 2, 3, 0x80
SEEDS = {
    "data": b"\x07" + record(DATA, b"GET / HTTP/1.1\r\n\r\n"),
    "data_empty_then_data": b"\x11" + record(DATA, b"") + record(DATA, b"x" * 200),
    "close_notify": b"\x03" + record(DATA, b"bye") + record(ALERT, b"\x01\x00"),
    "fatal_alert": b"\x05" + record(ALERT, b"\x02\x28"),
    "key_update": b"\x09" + record(DATA, b"a") + record(HANDSHAKE, b"\x18\x00\x00\x01\x00") + record(DATA, b"b"),
    "key_update_requested": b"\x0b" + record(HANDSHAKE, b"\x18\x00\x00\x01\x01") + record(DATA, b"after"),
    "new_session_ticket": b"\x0d" + record(HANDSHAKE, b"\x04\x00\x00\x01\x00"),
    "change_cipher_spec": b"\x0f" + record(OTHER, b"\x01"),
    "raw_header_too_long": b"\x13" + record(DATA, b"ok") + record(RAW, b"\x17\x03\x03\x48\x00"),
    "raw_garbage": b"\x17" + record(RAW, b"GET / HTTP/1.1\r\n\r\n"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, seed in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    main()
