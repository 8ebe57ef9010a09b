"""Autobahn-style permessage-deflate conformance (categories 12 and 13)
against /echo, with Python's zlib as the client's compressor.

12.K.N: one default offer (`permessage-deflate; client_max_window_bits`),
payload kind K (1 text JSON, 2 binary JSON, 3 text prose, 4 binary random,
5 binary mixed), size and fragmentation N (Autobahn's 16 B to 128 KiB,
whole and in fragments of 256 B to 64 KiB of the compressed payload).
13.C: every combination of client_max_window_bits (absent, without a value,
8-15), client_no_context_takeover (yes/no) and server_max_window_bits
(absent, 8-15), each echoing messages of 16 B to 128 KiB whole and
fragmented; 13.multi.*: several offers in one header.

The client checks what the server promised (pmd_client.py): every server
message inflates with a fresh decompressor of exactly the agreed window,
and the server inflates the client's messages with the agreed client
window (kept between messages unless client_no_context_takeover)."""
import os
import random
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmd_client import offer, parse_answer  # noqa: E402
from rawws import OP_BINARY, OP_TEXT, open_ws  # noqa: E402
from test_conformance import Server  # noqa: E402 (conftest's, loaded by path)


TIMEOUT = 20.0


@pytest.fixture(scope="module")
def srv():
    d = tempfile.TemporaryDirectory(prefix="wsmill-pmd-")
    s = Server(d.name, max_message_size="16M", max_backpressure="64M", permessage_deflate="on",
               deflate_client_window_bits=10, max_messages_per_second=0, max_bytes_per_second=0)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        d.cleanup()


WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing "
         "matches in the old town square near the river").split()


def payload(kind, n, seed):
    rnd = random.Random(seed * 1000 + n)
    if kind in (1, 2):
        out, i = [], 0
        while sum(map(len, out)) < n:
            out.append('{"seq":%d,"user":"%s","text":"%s"},' % (
                i, rnd.choice(WORDS), " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 6)))))
            i += 1
        return "".join(out)[:n].encode()
    if kind == 3:
        return " ".join(rnd.choice(WORDS) for _ in range(n)).encode()[:n]
    if kind == 4:
        return bytes(rnd.getrandbits(8) for _ in range(n))
    half = payload(1, n // 2, seed)
    return half + bytes(rnd.getrandbits(8) for _ in range(n - len(half)))


SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]
FRAGMENTED = [(8192, 256), (16384, 256), (32768, 256), (65536, 256), (65536, 1024),
              (131072, 1024), (131072, 4096), (131072, 65536)]
SHAPES = [(n, None) for n in SIZES] + FRAGMENTED


def count_for(n):
    """Messages per case: Autobahn sends 1000; fewer keep the run short."""
    return 40 if n <= 1024 else 8 if n <= 16384 else 3


def echo_round(c, op, msgs, frag):
    for m in msgs:
        assert c.send_message(op, m, frag=frag)
    for i, m in enumerate(msgs):
        ev = c.read_event(TIMEOUT)
        assert ev[0] == "message" and ev[1] == op, f"message {i}: {ev[:2]}"
        assert ev[2] == m, f"message {i}: echo differs (lengths {len(ev[2])} vs {len(m)})"


def close(c):
    c.send_close(1000)
    events = c.events_until_close(TIMEOUT)
    assert events[-1][0] == "close" and events[-1][1] in (1000, None), events[-1]
    c.wait_tcp_close(TIMEOUT)


CASES12 = [(k, i + 1, n, frag) for k in range(1, 6) for i, (n, frag) in enumerate(SHAPES)]


@pytest.mark.parametrize("kind,num,n,frag", CASES12, ids=[f"12.{k}.{i}" for k, i, _, _ in CASES12])
def test_12(srv, kind, num, n, frag):
    c = open_ws(srv.port, "/echo", timeout=TIMEOUT, extensions=offer(client_bits=True))
    try:
        assert c.pmd, "permessage-deflate not accepted"
        assert c.pmd.client_bits == 10, c.pmd.params
        op = OP_TEXT if kind in (1, 3) else OP_BINARY
        msgs = [payload(kind, n, s) for s in range(count_for(n))]
        echo_round(c, op, msgs, frag)
        if kind in (1, 2, 3) and n >= 256:
            # Compressible and over deflate_min_size: the server compresses.
            assert c.pmd.compressed_in == len(msgs), (c.pmd.compressed_in, c.pmd.plain_in)
        if kind in (1, 2, 3) and n == 64:
            # Tried: some 64-byte messages shrink, some do not (sent plain).
            assert c.pmd.compressed_in > 0, (c.pmd.compressed_in, c.pmd.plain_in)
        if kind == 4 or n < 64:
            # Random bytes do not shrink, short ones are not tried: uncompressed.
            assert c.pmd.plain_in == len(msgs), (c.pmd.compressed_in, c.pmd.plain_in)
        close(c)
    finally:
        c.close()


CLIENT_BITS = [None, True] + list(range(8, 16))
SERVER_BITS = [None] + list(range(8, 16))
CASES13 = [(cb, nct, sb) for nct in (False, True) for cb in CLIENT_BITS for sb in SERVER_BITS]


def _id13(cb, nct, sb):
    return (f"13.c{'-' if cb is None else 'x' if cb is True else cb}"
            f".{'nct' if nct else 'ct'}.s{'-' if sb is None else sb}")


SIZES13 = [16, 64, 256, 1024, 4096, 32768, 131072]


@pytest.mark.parametrize("cb,nct,sb", CASES13, ids=[_id13(*c) for c in CASES13])
def test_13(srv, cb, nct, sb):
    o = offer(client_bits=cb, client_nct=nct, server_bits=sb)
    c = open_ws(srv.port, "/echo", timeout=TIMEOUT, extensions=o)
    try:
        p = c.pmd
        assert p, f"offer {o!r} not accepted"
        want_cb = 15 if cb is None else 10 if cb is True else min(cb, 10)
        assert p.client_bits == want_cb, (o, p.params)
        assert ("client_max_window_bits" in p.params) == (cb is not None), p.params
        assert p.server_bits == (sb or 15), (o, p.params)
        assert p.client_takeover == (not nct), p.params
        for n in SIZES13:
            msgs = [payload(1, n, s) for s in range(3)]
            echo_round(c, OP_TEXT, msgs, None)
            echo_round(c, OP_BINARY, msgs, max(n // 3, 1))
        # Every server message inflated with a fresh decompressor of
        # exactly the agreed window (pmd_client.inflate); those of 256 bytes
        # and more were compressed (16 is under deflate_min_size, 64 may not shrink).
        assert p.compressed_in >= 6 * (len(SIZES13) - 2), (p.compressed_in, p.plain_in)
        close(c)
    finally:
        c.close()


MULTI = {
    # Autobahn 13.7's list: the first acceptable offer wins.
    "13.multi.1": ("permessage-deflate; client_no_context_takeover; client_max_window_bits=8, "
                   "permessage-deflate; client_no_context_takeover, permessage-deflate",
                   {"client_no_context_takeover": None, "client_max_window_bits": "8"}),
    # Refused offers (unknown, repeated, out of range) are skipped.
    "13.multi.2": ("permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=7, "
                   "permessage-deflate; client_max_window_bits; client_max_window_bits, "
                   "permessage-deflate; server_max_window_bits=9",
                   {"server_max_window_bits": "9"}),
    # Another extension first, quoted values.
    "13.multi.3": ('x-webkit-deflate-frame, permessage-deflate; client_max_window_bits="12"',
                   {"client_max_window_bits": "10"}),
}


@pytest.mark.parametrize("cid", sorted(MULTI))
def test_13_multi(srv, cid):
    o, want = MULTI[cid]
    c = open_ws(srv.port, "/echo", timeout=TIMEOUT, extensions=o)
    try:
        assert c.pmd
        got = dict(c.pmd.params)
        assert got.pop("server_no_context_takeover", 1) is None
        assert got == want, (o, c.pmd.params)
        # The offer the server took is not necessarily the first one in the
        # header: use the answer's own values for the client's compressor.
        for n in (64, 4096, 131072):
            echo_round(c, OP_TEXT, [payload(1, n, s) for s in range(3)], None)
        close(c)
    finally:
        c.close()


def test_answer_parses():
    assert parse_answer("permessage-deflate; a; b=\"1\"") == {"a": None, "b": "1"}
    with pytest.raises(AssertionError):
        parse_answer("permessage-deflate; a; a")
