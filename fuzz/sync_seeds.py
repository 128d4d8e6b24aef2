#!/usr/bin/env python3
"""Writes the seeds of the `sync_decode` fuzz target to fuzz/seeds/sync_decode:
hand-encoded protobuf (crates/smp-groups-sync/proto/sync.proto) in the
target's input framing, `u16 length (LE) || message` per message."""
import os, struct

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload

def stamp(wall, counter, dev):
    return field(1, 0, wall) + field(2, 0, counter) + field(3, 2, dev)

def entry(ns, name, wall, counter, dev, value=None, extra=b""):
    e = field(1, 0, ns) + field(2, 2, name.encode()) + field(3, 2, stamp(wall, counter, dev))
    if value is not None:
        e += field(4, 2, value)
    return e + extra

def update(*entries):
    return field(1, 2, b"".join(field(1, 2, e) for e in entries))

def snapshot(part, parts, *entries):
    body = b"".join(field(1, 2, e) for e in entries) + field(2, 0, part) + field(3, 0, parts)
    return field(2, 2, body)

def request(dev):
    return field(3, 2, field(1, 2, dev))

def state(dev, wall, counter, *entries):
    return field(1, 0, 1) + field(2, 2, dev) + field(3, 2, stamp(wall, counter, b"")) + \
        b"".join(field(4, 2, e) for e in entries)

def frame(*msgs):
    return b"".join(struct.pack("<H", len(m)) + m for m in msgs)

T = 1_700_000_000_000
A, B, C, ME = b"\x02" * 16, b"\x03" * 16, b"\x04" * 32, b"\x01" * 16
seeds = {
    "update_profile": frame(update(
        entry(1, "display_name", T + 5, 0, A, b"Ada (phone)"),
        entry(1, "bio", T + 5, 0, A, b"Counting engines"))),
    "concurrent_same_key": frame(
        update(entry(1, "display_name", T + 5, 0, A, b"Ada (a)")),
        update(entry(1, "display_name", T + 5, 0, B, b"Ada (b)")),
        update(entry(1, "display_name", T + 5, 0, B, b"Ada (b2)"))),
    "tombstones": frame(
        update(entry(2, "theme", T + 9, 1, A)),
        update(entry(3, "notes/last-opened", T + 1, 0, B, b"2024-05-01"),
               entry(3, "notes/last-opened", T + 2, 0, C))),
    "snapshot_parts": frame(
        snapshot(0, 2, entry(1, "image", T + 3, 0, A, bytes(range(200))),
                 entry(2, "language", T + 4, 7, B, b"en")),
        snapshot(1, 2, entry(99, "future", T + 4, 0, C, b"v2"))),
    "snapshot_request_for_me": frame(request(ME), request(A)),
    "future_clock_and_bad_entries": frame(update(
        entry(1, "display_name", 2**64 - 1, 2**32 - 1, A, b"far future"),
        entry(0, "unspecified", T, 0, A, b"x"),
        entry(1, "bio", T, 0, b"", b"no device"),
        entry(1, "bio", T, 0, A, b"\xff\xfe not utf-8"),
        entry(3, "", T, 0, A, b"empty name"))),
    "unknown_fields": frame(
        update(entry(3, "k", T, 0, A, b"v", extra=field(15, 2, b"new field") + field(16, 0, 7)))
        + field(9, 2, b"unknown body field"),
        field(4, 2, b"a message kind of a newer version")),
    "state": state(ME, T + 10, 3,
                   entry(1, "display_name", T + 10, 3, ME, b"Ada"),
                   entry(2, "theme", T + 2, 0, A)),
    "state_duplicate_key": state(ME, T, 0,
                                 entry(3, "k", T, 0, A, b"1"),
                                 entry(3, "k", T + 1, 0, B, b"2")),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "sync_decode")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
