"""rawws.py's own checks, against a fake server on 127.0.0.1: each rule
read_frame / read_event enforce must fire on a frame that breaks it, or the
conformance suite could pass without checking anything. No wsmill here."""
import os
import socket
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawws import ProtocolViolation, RawWS  # noqa: E402


@pytest.fixture
def fake():
    """Returns connect(): a (client, server-side socket) pair."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    opened = []

    def connect():
        c = RawWS(ls.getsockname()[1], timeout=2)
        s, _ = ls.accept()
        opened.extend([c, s])
        return c, s
    yield connect
    for x in opened:
        x.close()
    ls.close()


BREACHES = {
    "masked frame": b"\x81\x81abcd" + bytes([ord("x") ^ ord("a")]),
    "RSV bit": b"\xc1\x01x",
    "16-bit length under 126": b"\x81\x7e\x00\x01x",
    "64-bit length under 65536": b"\x82\x7f" + struct.pack("!Q", 10) + b"x" * 10,
    "reserved opcode": b"\x83\x00",
    "fragmented ping": b"\x09\x00",
    "close payload of 1 byte": b"\x88\x01\x03",
    "close code 1005": b"\x88\x02" + struct.pack("!H", 1005),
    "close reason not UTF-8": b"\x88\x03\x03\xe8\xff",
    "text not UTF-8": b"\x81\x01\xff",
    "continuation with nothing open": b"\x80\x01x",
    "new message inside a fragmented one": b"\x01\x01a\x81\x01b",
}


@pytest.mark.parametrize("name", sorted(BREACHES))
def test_breach_is_caught(fake, name):
    c, s = fake()
    s.sendall(BREACHES[name])
    with pytest.raises(ProtocolViolation):
        c.read_event(2)


def test_events_ping_fragments_close(fake):
    """Pings are answered and skipped, fragments joined, then the close and
    the TCP close are seen."""
    c, s = fake()
    s.sendall(b"\x89\x02hi" + b"\x01\x02he" + b"\x80\x03llo" + b"\x88\x02\x03\xe8")
    assert c.read_event(2) == ("message", 1, b"hello")
    assert c.server_pings == [b"hi"]
    assert c.read_event(2) == ("close", 1000, b"")
    s.settimeout(2)
    pong = b""
    while len(pong) < 8:  # 2 header bytes, the mask key, "hi" masked
        chunk = s.recv(8 - len(pong))
        assert chunk, f"EOF after {pong!r}"
        pong += chunk
    assert pong[:2] == b"\x8a\x82", f"the ping was answered with a masked pong, got {pong!r}"
    assert bytes(b ^ pong[2 + i % 4] for i, b in enumerate(pong[6:])) == b"hi", "the pong echoes the payload"
    s.close()
    assert c.wait_tcp_close(2) == "eof"
