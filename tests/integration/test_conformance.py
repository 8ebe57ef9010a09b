"""Autobahn-TestSuite-style RFC 6455 conformance cases against /echo.

Case ids follow Autobahn's numbering (1.1.1 ... 10.1.1); ids with a suffix
("5.3.bin", "6.5.1.frag", "7.9.extra-1015") are additions in the same
spirit. Expectations are those Autobahn grades OK (not NON-STRICT); where
Autobahn also accepts a bare TCP drop on failure, these cases require the
close frame RFC 6455 7.1.7 says a server SHOULD send, with the code the RFC
names. Every case ends with the server closing the TCP connection.

One server for the module, with the limits category 9 needs."""
import os
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under --import-mode=importlib
from conformance_cases import KOSME, UTF8_CASES, first_invalid_byte, is_valid_utf8
from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame, close_payload,
                   open_ws)


def _load_conftest():
    """conftest.py's Server class, loaded by path: when pytest collects
    several directories, sys.modules["conftest"] may be another conftest."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
    spec = importlib.util.spec_from_file_location("wsmill_integration_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


Server = _load_conftest().Server

TIMEOUT = 5.0          # any single expected reply
FAIL_FAST = 2.0        # close expected after an invalid fragment, before more is sent
QUIET = 0.3            # "nothing must happen" windows
BIG_TIMEOUT = 60.0     # category 9 echoes of up to 16 MiB


@pytest.fixture(scope="module")
def srv():
    d = tempfile.TemporaryDirectory(prefix="wsmill-conformance-")
    s = Server(d.name, max_message_size="16M", max_backpressure="64M")
    try:
        s.start()
        yield s
    finally:
        s.stop()
        d.cleanup()


# ---------------------------------------------------------------------------
# helpers

def msg(op, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return ("message", op, payload)


def text(p):
    return msg(OP_TEXT, p)


def binary(p):
    return msg(OP_BINARY, p)


def pong(p):
    if isinstance(p, str):
        p = p.encode()
    return ("pong", p)


def short(ev):
    """Printable event (big payloads abbreviated)."""
    if ev[0] == "message" and len(ev[2]) > 80:
        return ("message", ev[1], f"<{len(ev[2])} bytes>")
    return ev


def assert_events(got, want):
    if got != want:
        raise AssertionError(f"events differ\n  expected {[short(e) for e in want]}\n"
                             f"  got      {[short(e) for e in got]}")


def expect_fail(c, code, before=(), timeout=TIMEOUT):
    """The server must send exactly `before`, then a close with `code`, then
    drop TCP (after we echo the close)."""
    events = c.events_until_close(timeout)
    close = events[-1]
    assert_events(events[:-1], list(before))
    assert close[1] == code, f"expected close code {code}, got {close[1]} (reason {close[2]!r})"
    c.finish_close(code)


def close_normally(c, before=(), code=1000, reason=b"", accept=None):
    """We start the closing handshake; the server must send exactly `before`,
    then a close whose code is in `accept` (default: ours echoed, 1000, or
    none at all, which Autobahn also grades OK), then drop TCP."""
    c.send_close(code, reason)
    events = c.events_until_close(TIMEOUT)
    assert_events(events[:-1], list(before))
    accept = accept if accept is not None else {code, 1000, None}
    assert events[-1][1] in accept, f"close code {events[-1][1]}, expected one of {accept}"
    c.wait_tcp_close(TIMEOUT)
    return events[-1]


def read_echo(c, op, payload, timeout=TIMEOUT):
    ev = c.read_event(timeout)
    if ev[0] != "message" or ev[1] != op or ev[2] != payload:
        detail = ""
        if ev[0] == "message" and ev[2] != payload:
            got = ev[2]
            first = next((i for i in range(min(len(got), len(payload))) if got[i] != payload[i]),
                         min(len(got), len(payload)))
            detail = f" (lengths {len(got)} vs {len(payload)}, first difference at byte {first})"
        raise AssertionError(f"expected echo of {short(msg(op, payload))}, got {short(ev)}{detail}")


def frames(*spec):
    """frames((op, payload, fin[, rsv]), ...) -> bytes, each frame masked."""
    out = b""
    for f in spec:
        p = f[1].encode() if isinstance(f[1], str) else f[1]
        out += build_frame(f[0], p, f[2], f[3] if len(f) > 3 else 0)
    return out


def send_framewise(c, spec, delay=0.02):
    """Autobahn's "frame-wise chops": one write per frame, with a pause."""
    for f in spec:
        if not c.send_raw(frames(f)):
            return False
        time.sleep(delay)
    return True


def send_octetwise(c, spec, delay=0.0005):
    """Autobahn's "octet-wise chops": one write per byte."""
    return c.send_raw(frames(*spec), chop=1, delay=delay)


CASES = {}


def case(cid):
    def reg(fn):
        assert cid not in CASES, cid
        CASES[cid] = fn
        return fn
    return reg


def case_override(cid):
    """Replaces a case's expectations for the run with deflate negotiated."""
    def reg(fn):
        assert cid in CASES, cid
        DEFLATE_CASES[cid] = fn
        return fn
    return reg


def natural(cid):
    return [(0, int(p)) if p.isdigit() else (1, p) for p in cid.replace("-", ".").split(".")]


# ---------------------------------------------------------------------------
# 1 Framing: text and binary messages of the boundary lengths

LENGTHS = [0, 125, 126, 127, 128, 65535, 65536]


def _echo_case(op, payload, chop=None):
    def run(c):
        c.send_frame(op, payload, chop=chop)
        read_echo(c, op, payload)
        close_normally(c)
    return run


for _i, _n in enumerate(LENGTHS, start=1):
    case(f"1.1.{_i}")(_echo_case(OP_TEXT, b"*" * _n))
    case(f"1.2.{_i}")(_echo_case(OP_BINARY, b"\xfe" * _n))
case("1.1.8")(_echo_case(OP_TEXT, b"*" * 65536, chop=997))
case("1.2.8")(_echo_case(OP_BINARY, b"\xfe" * 65536, chop=997))


@case("1.x.unmasked")
def _(c):
    """RFC 6455 5.1: the server MUST close the connection on an unmasked
    frame and MAY send a close with 1002 first."""
    c.send_frame(OP_TEXT, HELLO, mask=False)
    try:
        events = c.events_until_close(TIMEOUT)
    except AssertionError as e:
        if "TCP closed without a close frame; events so far []" in str(e):
            return  # dropped without a close frame: allowed
        raise
    assert_events(events[:-1], [])
    assert events[-1][1] == 1002, events[-1]
    c.finish_close(1002)


# ---------------------------------------------------------------------------
# 2 Pings and pongs

def _ping_case(payload, chop=None):
    def run(c):
        c.send_frame(OP_PING, payload, chop=chop)
        assert_events([c.read_event()], [pong(payload)])
        close_normally(c)
    return run


case("2.1")(_ping_case(b""))
case("2.2")(_ping_case(b"Hello, world!"))
case("2.3")(_ping_case(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))
case("2.4")(_ping_case(b"\xfe" * 125))
case("2.6")(_ping_case(b"\xfe" * 125, chop=1))


@case("2.5")
def _(c):
    c.send_frame(OP_PING, b"\xfe" * 126)
    expect_fail(c, 1002)


@case("2.7")
def _(c):
    c.send_frame(OP_PONG, b"")
    c.expect_silence(QUIET)
    close_normally(c)


@case("2.8")
def _(c):
    c.send_frame(OP_PONG, b"unsolicited pong payload")
    c.expect_silence(QUIET)
    close_normally(c)


@case("2.9")
def _(c):
    c.send_raw(frames((OP_PONG, "unsolicited pong payload", True), (OP_PING, "ping payload", True)))
    assert_events([c.read_event()], [pong("ping payload")])
    close_normally(c)


def _ten_pings(octetwise):
    def run(c):
        spec = [(OP_PING, f"payload-{i}", True) for i in range(10)]
        if octetwise:
            send_octetwise(c, spec)
        else:
            c.send_raw(frames(*spec))
        assert_events([c.read_event() for _ in range(10)], [pong(f"payload-{i}") for i in range(10)])
        close_normally(c)
    return run


case("2.10")(_ten_pings(False))
case("2.11")(_ten_pings(True))


@case("2.x.lengths")
def _(c):
    """Every ping payload length 0..125 (binary content), answered in order."""
    payloads = [bytes((i + j) & 0xFF for j in range(i)) for i in range(126)]
    c.send_raw(b"".join(build_frame(OP_PING, p) for p in payloads))
    assert_events([c.read_event() for _ in payloads], [pong(p) for p in payloads])
    close_normally(c)


# ---------------------------------------------------------------------------
# 3 Reserved bits (no extension negotiated -> fail with 1002)

HELLO = "Hello, world!"


@case("3.1")
def _(c):
    c.send_frame(OP_TEXT, HELLO, rsv=1)
    expect_fail(c, 1002)


@case("3.2")
def _(c):
    c.send_raw(frames((OP_TEXT, HELLO, True), (OP_TEXT, HELLO, True, 2), (OP_PING, b"", True)))
    expect_fail(c, 1002, [text(HELLO)])


@case("3.3")
def _(c):
    send_framewise(c, [(OP_TEXT, HELLO, True), (OP_TEXT, HELLO, True, 3), (OP_PING, b"", True)])
    expect_fail(c, 1002, [text(HELLO)])


@case("3.4")
def _(c):
    send_octetwise(c, [(OP_TEXT, HELLO, True), (OP_TEXT, HELLO, True, 4), (OP_PING, b"", True)])
    expect_fail(c, 1002, [text(HELLO)])


@case("3.5")
def _(c):
    c.send_frame(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5)
    expect_fail(c, 1002)


@case("3.6")
def _(c):
    c.send_frame(OP_PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=6)
    expect_fail(c, 1002)


@case("3.7")
def _(c):
    c.send_frame(OP_CLOSE, close_payload(1000), rsv=7)
    expect_fail(c, 1002)


# ---------------------------------------------------------------------------
# 4 Reserved opcodes

def _reserved_op(op, payload, after_echo, octetwise=False):
    def run(c):
        if not after_echo:
            c.send_frame(op, payload)
            expect_fail(c, 1002)
            return
        spec = [(OP_TEXT, HELLO, True), (op, payload, True), (OP_PING, b"", True)]
        if octetwise:
            send_octetwise(c, spec)
        else:
            c.send_raw(frames(*spec))
        expect_fail(c, 1002, [text(HELLO)])
    return run


RESERVED_PAYLOAD = b"reserved opcode payload"
for _base, _ops in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (0xB, 0xC, 0xD, 0xE, 0xF))):
    case(f"{_base}.1")(_reserved_op(_ops[0], b"", False))
    case(f"{_base}.2")(_reserved_op(_ops[1], RESERVED_PAYLOAD, False))
    case(f"{_base}.3")(_reserved_op(_ops[2], b"", True))
    case(f"{_base}.4")(_reserved_op(_ops[3], RESERVED_PAYLOAD, True))
    case(f"{_base}.5")(_reserved_op(_ops[4], RESERVED_PAYLOAD, True, octetwise=True))


# ---------------------------------------------------------------------------
# 5 Fragmentation

def _send(c, spec, mode):
    if mode == "one":
        return c.send_raw(frames(*spec))
    if mode == "frame":
        return send_framewise(c, spec)
    return send_octetwise(c, spec)


def _fragmented_control(op):
    def run(c):
        c.send_raw(frames((op, "fragment1", False), (OP_CONT, "fragment2", True)))
        expect_fail(c, 1002)
    return run


case("5.1")(_fragmented_control(OP_PING))
case("5.2")(_fragmented_control(OP_PONG))


@case("5.2.close")
def _(c):
    c.send_raw(frames((OP_CLOSE, close_payload(1000), False), (OP_CONT, b"", True)))
    expect_fail(c, 1002)


def _two_fragments(mode, op=OP_TEXT):
    def run(c):
        _send(c, [(op, "fragment1", False), (OP_CONT, "fragment2", True)], mode)
        assert_events([c.read_event()], [msg(op, "fragment1fragment2")])
        close_normally(c)
    return run


case("5.3")(_two_fragments("one"))
case("5.4")(_two_fragments("frame"))
case("5.5")(_two_fragments("octet"))
case("5.3.bin")(_two_fragments("one", OP_BINARY))
case("5.5.bin")(_two_fragments("octet", OP_BINARY))


def _ping_between(mode, op=OP_TEXT):
    def run(c):
        _send(c, [(op, "fragment1", False), (OP_PING, "pongme!", True), (OP_CONT, "fragment2", True)], mode)
        assert_events([c.read_event(), c.read_event()], [pong("pongme!"), msg(op, "fragment1fragment2")])
        close_normally(c)
    return run


case("5.6")(_ping_between("one"))
case("5.7")(_ping_between("frame"))
case("5.8")(_ping_between("octet"))
case("5.6.bin")(_ping_between("one", OP_BINARY))


@case("5.6.pong")
def _(c):
    """An unsolicited pong between fragments is ignored."""
    c.send_raw(frames((OP_BINARY, "fragment1", False), (OP_PONG, "x", True), (OP_CONT, "fragment2", True)))
    assert_events([c.read_event()], [binary("fragment1fragment2")])
    close_normally(c)


def _cont_without_start(fin, mode):
    def run(c):
        _send(c, [(OP_CONT, "non-continuation payload", fin), (OP_TEXT, HELLO, True)], mode)
        expect_fail(c, 1002)
    return run


case("5.9")(_cont_without_start(True, "one"))
case("5.10")(_cont_without_start(True, "frame"))
case("5.11")(_cont_without_start(True, "octet"))
case("5.12")(_cont_without_start(False, "one"))
case("5.13")(_cont_without_start(False, "frame"))
case("5.14")(_cont_without_start(False, "octet"))


@case("5.15")
def _(c):
    c.send_raw(frames((OP_TEXT, "fragment1", False), (OP_CONT, "fragment2", True),
                      (OP_CONT, "fragment3", False), (OP_TEXT, "fragment4", True)))
    expect_fail(c, 1002, [text("fragment1fragment2")])


def _repeated_bad_cont(fin):
    def run(c):
        spec = [(OP_CONT, "fragment1", fin), (OP_TEXT, "fragment2", False), (OP_CONT, "fragment3", True)]
        c.send_raw(frames(*(spec * 2)))
        expect_fail(c, 1002)
    return run


case("5.16")(_repeated_bad_cont(False))
case("5.17")(_repeated_bad_cont(True))


@case("5.18")
def _(c):
    c.send_raw(frames((OP_TEXT, "fragment1", False), (OP_TEXT, "fragment2", True)))
    expect_fail(c, 1002)


@case("5.18.bin")
def _(c):
    """A binary data frame while a text message is open."""
    c.send_raw(frames((OP_TEXT, "fragment1", False), (OP_BINARY, "fragment2", True)))
    expect_fail(c, 1002)


@case("5.18.octet")
def _(c):
    send_octetwise(c, [(OP_BINARY, "fragment1", False), (OP_TEXT, "fragment2", True)])
    expect_fail(c, 1002)


def _five_fragments(sync):
    def run(c):
        first = [(OP_TEXT, "fragment1", False), (OP_CONT, "fragment2", False),
                 (OP_PING, "pongme 1!", True), (OP_CONT, "fragment3", False)]
        second = [(OP_CONT, "fragment4", False), (OP_PING, "pongme 2!", True), (OP_CONT, "fragment5", True)]
        _send(c, first, "frame" if sync else "one")
        # the message is still open: the ping must be answered now, not at its end
        assert_events([c.read_event()], [pong("pongme 1!")])
        _send(c, second, "frame" if sync else "one")
        assert_events([c.read_event(), c.read_event()],
                      [pong("pongme 2!"), text("fragment1fragment2fragment3fragment4fragment5")])
        close_normally(c)
    return run


case("5.19")(_five_fragments(False))
case("5.20")(_five_fragments(True))


# ---------------------------------------------------------------------------
# 6 UTF-8 handling

def _text_frags(parts):
    spec = []
    for i, p in enumerate(parts):
        spec.append((OP_TEXT if i == 0 else OP_CONT, p, i == len(parts) - 1))
    return spec


def _text_in_frags(parts):
    def run(c):
        c.send_raw(frames(*_text_frags(parts)))
        assert_events([c.read_event()], [text(b"".join(parts))])
        close_normally(c)
    return run


HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
case("6.1.1")(_text_in_frags([b""]))
case("6.1.2")(_text_in_frags([b"", b"", b""]))
case("6.1.3")(_text_in_frags([b"", b"middle frame payload", b""]))
case("6.2.1")(_text_in_frags([HELLO_UTF8]))
_cut = HELLO_UTF8.index("ß".encode())  # a code point boundary
case("6.2.2")(_text_in_frags([HELLO_UTF8[:_cut], HELLO_UTF8[_cut:]]))
case("6.2.3")(_text_in_frags([HELLO_UTF8[i:i + 1] for i in range(len(HELLO_UTF8))]))
case("6.2.4")(_text_in_frags([KOSME[i:i + 1] for i in range(len(KOSME))]))

INVALID_6_3 = KOSME + b"\xed\xa0\x80" + b"edited"


@case("6.3.1")
def _(c):
    c.send_frame(OP_TEXT, INVALID_6_3)
    expect_fail(c, 1007)


@case("6.3.2")
def _(c):
    c.send_raw(frames(*_text_frags([INVALID_6_3[i:i + 1] for i in range(len(INVALID_6_3))])))
    expect_fail(c, 1007)


# 6.4: fail fast. PART1 is valid; PART2 makes the message invalid; the close
# (1007) must arrive before PART3 is sent.
P641 = (KOSME, b"\xf4\x90\x80\x80", b"edited")
_P = b"".join(P641)
P642 = (_P[:12], _P[12:13], _P[13:])


def _fail_fast_frames(parts):
    def run(c):
        c.send_frame(OP_TEXT, parts[0], fin=False)
        c.expect_silence(QUIET)
        c.send_frame(OP_CONT, parts[1], fin=False)
        expect_fail(c, 1007, timeout=FAIL_FAST)
    return run


def _fail_fast_chops(parts):
    """One frame whose payload is written in three pieces."""
    def run(c):
        whole = b"".join(parts)
        data = build_frame(OP_TEXT, whole)
        hl = len(data) - len(whole)
        c.send_raw(data[:hl + len(parts[0])])
        c.expect_silence(QUIET)
        c.send_raw(data[hl + len(parts[0]):hl + len(parts[0]) + len(parts[1])])
        expect_fail(c, 1007, timeout=FAIL_FAST)
    return run


case("6.4.1")(_fail_fast_frames(P641))
case("6.4.2")(_fail_fast_frames(P642))
case("6.4.3")(_fail_fast_chops(P641))
case("6.4.4")(_fail_fast_chops(P642))


def _utf8_single(valid, payload):
    def run(c):
        c.send_frame(OP_TEXT, payload)
        if valid:
            read_echo(c, OP_TEXT, payload)
            close_normally(c)
        else:
            expect_fail(c, 1007)
    return run


def _utf8_fragmented(valid, payload):
    """One byte per frame. Valid: echoed as one message. Invalid: the close
    must follow the frame holding the first invalid byte before any later
    frame is sent (or the last frame, if the message is merely truncated)."""
    def run(c):
        parts = [payload[i:i + 1] for i in range(len(payload))]
        spec = _text_frags(parts)
        if valid:
            c.send_raw(frames(*spec))
            assert_events([c.read_event()], [text(payload)])
            close_normally(c)
            return
        bad = first_invalid_byte(payload)
        stop = len(parts) - 1 if bad is None else bad
        c.send_raw(frames(*spec[:stop + 1]))
        expect_fail(c, 1007, timeout=FAIL_FAST)
    return run


for _cid, _valid, _payload in UTF8_CASES:
    case(_cid)(_utf8_single(_valid, _payload))
    case(_cid + ".frag")(_utf8_fragmented(_valid, _payload))


# ---------------------------------------------------------------------------
# 7 Close handling

@case("7.1.1")
def _(c):
    c.send_frame(OP_TEXT, "Hello World!")
    read_echo(c, OP_TEXT, b"Hello World!")
    close_normally(c)


@case("7.1.2")
def _(c):
    c.close_sent = True
    c.send_raw(frames((OP_CLOSE, close_payload(1000), True), (OP_CLOSE, close_payload(1000), True)))
    events = c.events_until_close()
    assert_events(events[:-1], [])
    assert events[-1][1] in (1000, None)
    c.wait_tcp_close()


def _after_close(spec):
    def run(c):
        c.close_sent = True
        c.send_raw(frames(*spec))
        events = c.events_until_close()
        assert_events(events[:-1], [])
        assert events[-1][1] in (1000, None), events[-1]
        c.wait_tcp_close()
    return run


case("7.1.3")(_after_close([(OP_CLOSE, close_payload(1000), True), (OP_PING, "Hello World!", True)]))
case("7.1.4")(_after_close([(OP_CLOSE, close_payload(1000), True), (OP_TEXT, "Hello World!", True)]))
case("7.1.5")(_after_close([(OP_TEXT, "fragment1", False), (OP_CLOSE, close_payload(1000), True),
                            (OP_CONT, "fragment2", True)]))


@case("7.1.6")
def _(c):
    """256 KiB message, close, ping: the echo may come or not (Autobahn:
    informational), the ping after the close must not be answered."""
    big = (b"BAsd7&jh23" * 26215)[:262144]
    c.close_sent = True
    t = c.send_background(frames((OP_TEXT, big, True), (OP_CLOSE, close_payload(1000), True),
                                 (OP_PING, "Hello World!", True)))
    events = c.events_until_close(BIG_TIMEOUT)
    t.join(BIG_TIMEOUT)
    assert events[:-1] in ([], [text(big)]), [short(e) for e in events]
    assert events[-1][1] in (1000, None), events[-1]
    c.wait_tcp_close()


@case("7.3.1")
def _(c):
    c.close_sent = True
    c.send_frame(OP_CLOSE, b"")
    events = c.events_until_close()
    assert_events(events[:-1], [])
    assert events[-1][1] in (1000, None), events[-1]
    c.wait_tcp_close()


@case("7.3.2")
def _(c):
    c.send_frame(OP_CLOSE, b"\x03")
    expect_fail(c, 1002)


case("7.3.3")(lambda c: close_normally(c, code=1000))
case("7.3.4")(lambda c: close_normally(c, code=1000, reason=b"Hello World!"))
case("7.3.5")(lambda c: close_normally(c, code=1000, reason=b"*" * 123))


@case("7.3.6")
def _(c):
    c.send_frame(OP_CLOSE, close_payload(1000, b"*" * 124))
    expect_fail(c, 1002)


@case("7.5.1")
def _(c):
    c.send_frame(OP_CLOSE, close_payload(1000, INVALID_6_3))
    expect_fail(c, 1007)


VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]

for _i, _code in enumerate(VALID_CLOSE_CODES, start=1):
    case(f"7.7.{_i}")(lambda c, code=_code: close_normally(c, code=code))
for _i, _code in enumerate(INVALID_CLOSE_CODES, start=1):
    def _bad_code(c, code=_code):
        c.send_frame(OP_CLOSE, close_payload(code))
        expect_fail(c, 1002)
    case(f"7.9.{_i}")(_bad_code)


@case("7.9.extra-1015")
def _(c):
    """1015 (TLS handshake failure) MUST NOT be sent in a close frame."""
    c.send_frame(OP_CLOSE, close_payload(1015))
    expect_fail(c, 1002)


# 7.13: codes above 4999 are undefined; Autobahn grades any clean close OK.
case("7.13.1")(lambda c: close_normally(c, code=5000, accept={1000, 5000, 1002, None}))
case("7.13.2")(lambda c: close_normally(c, code=65535, accept={1000, 65535, 1002, None}))


# ---------------------------------------------------------------------------
# 9 Limited performance: big messages and many frames (max_message_size 16M)

KIB, MIB = 1024, 1024 * 1024
SIZES_9 = [64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 8 * MIB, 16 * MIB]


def _pattern(op, n):
    if op == OP_TEXT:
        return (b"BAsd7&jh23" * (n // 10 + 1))[:n]
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def _big_echo(op, n, frame_size=None):
    def run(c):
        payload = _pattern(op, n)
        if frame_size is None:
            data = build_frame(op, payload)
        else:
            chunks = [payload[i:i + frame_size] for i in range(0, n, frame_size)]
            data = b"".join(build_frame(op if i == 0 else OP_CONT, ch, i == len(chunks) - 1)
                            for i, ch in enumerate(chunks))
        t = c.send_background(data)
        read_echo(c, op, payload, timeout=BIG_TIMEOUT)
        t.join(BIG_TIMEOUT)
        close_normally(c)
    return run


for _i, _n in enumerate(SIZES_9, start=1):
    case(f"9.1.{_i}")(_big_echo(OP_TEXT, _n))
    case(f"9.2.{_i}")(_big_echo(OP_BINARY, _n))
# Autobahn 9.3.x / 9.4.x use frames of 64 B .. 4 MiB; this limited variant
# keeps 1 KiB .. 64 KiB (9.3.3 .. 9.3.6).
for _i, _fs in zip(range(3, 7), [1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB]):
    case(f"9.3.{_i}")(_big_echo(OP_TEXT, 4 * MIB, _fs))
    case(f"9.4.{_i}")(_big_echo(OP_BINARY, 4 * MIB, _fs))


# Not Autobahn: one byte over max_message_size (16M) -> 1009 (RFC 6455 7.4.1),
# sent as soon as the length is known, without waiting for the payload.
@case("9.x.limit-frame")
def _(c):
    hdr = build_frame(OP_BINARY, b"", length=16 * MIB + 1)  # header (and key) only
    c.send_raw(hdr + b"\0" * 1000)
    expect_fail(c, 1009, timeout=FAIL_FAST)


@case("9.x.limit-fragments")
def _(c):
    """Two fragments of 8 MiB + 1 byte: the total passes the limit at the
    second fragment's header."""
    first = build_frame(OP_TEXT, _pattern(OP_TEXT, 8 * MIB + 1), fin=False)
    t = c.send_background(first + build_frame(OP_CONT, b"", length=8 * MIB + 1) + b"a" * 1000)
    expect_fail(c, 1009, timeout=15.0)
    t.join(BIG_TIMEOUT)


@case("9.x.limit-exact")
def _(c):
    """Exactly max_message_size in 3 fragments is accepted."""
    payload = _pattern(OP_BINARY, 16 * MIB)
    third = len(payload) // 3
    parts = [payload[:third], payload[third:2 * third], payload[2 * third:]]
    t = c.send_background(frames(*[(OP_BINARY if i == 0 else OP_CONT, p, i == 2) for i, p in enumerate(parts)]))
    read_echo(c, OP_BINARY, payload, timeout=BIG_TIMEOUT)
    t.join(BIG_TIMEOUT)
    close_normally(c)


# ---------------------------------------------------------------------------
# 10 Autofragmentation: the echo is the same message however it was framed

def _frag64k(op, frame_size):
    def run(c):
        payload = _pattern(op, 65536)
        chunks = [payload[i:i + frame_size] for i in range(0, len(payload), frame_size)]
        c.send_raw(frames(*[(op if i == 0 else OP_CONT, ch, i == len(chunks) - 1)
                            for i, ch in enumerate(chunks)]))
        read_echo(c, op, payload)
        close_normally(c)
    return run


case("10.1.1")(_frag64k(OP_TEXT, 1300))
case("10.1.1.bin")(_frag64k(OP_BINARY, 1300))
case("10.1.1.f1")(_frag64k(OP_TEXT, 65536))
case("10.1.1.f125")(_frag64k(OP_TEXT, 125))


@case("10.1.1.utf8")
def _(c):
    """Multi-byte text cut into 1300-byte frames (code points split)."""
    payload = ("κόσμε µ@ßöäüàá 𤭢" * 4000).encode()[:65536]
    while not is_valid_utf8(payload):
        payload = payload[:-1]
    chunks = [payload[i:i + 1300] for i in range(0, len(payload), 1300)]
    c.send_raw(frames(*_text_frags(chunks)))
    read_echo(c, OP_TEXT, payload)
    close_normally(c)


# ---------------------------------------------------------------------------

def _connect(server, deflate=False):
    ext = "permessage-deflate; client_max_window_bits" if deflate else None
    c = open_ws(server.port, "/echo", timeout=TIMEOUT, extensions=ext)
    assert bool(c.pmd) == deflate
    return c


# With permessage-deflate negotiated, RSV1 alone on a data frame means
# "compressed": "Hello, world!" is then not valid deflate (a stored block
# whose lengths disagree), so 3.4 gets 1007 instead of 1002.
DEFLATE_CASES = dict(CASES)


@case_override("3.4")
def _(c):
    send_octetwise(c, [(OP_TEXT, HELLO, True), (OP_TEXT, HELLO, True, 4), (OP_PING, b"", True)])
    expect_fail(c, 1007, [text(HELLO)])


@pytest.mark.parametrize("cid", sorted(CASES, key=natural))
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_case(srv, cid, deflate):
    """Every case, also with permessage-deflate negotiated: the client sends
    uncompressed messages (allowed per message) and inflates the server's
    compressed echoes (rawws checks them)."""
    c = _connect(srv, deflate)
    try:
        (DEFLATE_CASES if deflate else CASES)[cid](c)
    finally:
        c.close()


@pytest.mark.parametrize("code", VALID_CLOSE_CODES,
                         ids=[f"7.7.{i}.echo" for i in range(1, len(VALID_CLOSE_CODES) + 1)])
def test_close_code_echoed(srv, code):
    """Stricter than Autobahn (which also accepts 1000 or no code): wsmill
    echoes the peer's close code, as RFC 6455 5.5.1 says endpoints typically do."""
    c = _connect(srv)
    try:
        close_normally(c, code=code, reason=b"bye", accept={code})
    finally:
        c.close()
