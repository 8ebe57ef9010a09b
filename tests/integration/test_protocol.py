"""RFC 6455 framing rules: close codes, reserved bits and opcodes, masking,
UTF-8 validation (fail-fast), size limits, keepalive and backpressure."""
import asyncio
import http.client
import os
import select
import socket
import threading
import time

import pytest
import websockets

from conftest import free_port

from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, build_frame,
                   close_payload, open_ws, wait_until)


def fail_with(c, code, timeout=5):
    """Asserts the server sends close `code` and then closes the TCP
    connection (after our close reply)."""
    c.expect_close(code, timeout=timeout)
    try:
        c.send_close(code if code not in (1005, 1006) else 1000)
    except OSError:
        pass
    c.expect_eof(timeout=10)


def closes_moved(srv, code, before):
    wait_until(lambda: srv.closes(code) > before, timeout=5,
               what=f"closes[{code}] > {before} (now {srv.closes(code)})")


# -- close handshake ---------------------------------------------------

def test_clean_close_1000(server):
    before = server.closes(1000)
    with open_ws(server.port) as c:
        c.echo(OP_TEXT, "before close")
        c.send_close(1000, "bye")
        f = c.expect_close(1000)
        assert len(f.payload) <= 125
        c.expect_eof()
    closes_moved(server, 1000, before)


@pytest.mark.parametrize("code", [1001, 1003, 1007, 1008, 1011, 3000, 4000, 4999])
def test_valid_close_code_echoed(server, code):
    with open_ws(server.port) as c:
        c.send_close(code, "reason")
        c.expect_close(code)
        c.expect_eof()


def test_empty_close_answered(server):
    with open_ws(server.port) as c:
        c.send_close(None)
        c.expect_close((None, 1000))
        c.expect_eof()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_code_1002(server, code):
    before = server.closes(1002)
    with open_ws(server.port) as c:
        c.send_close(code)
        fail_with(c, 1002)
    closes_moved(server, 1002, before)


def test_one_byte_close_payload_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_CLOSE, b"\x03")
        fail_with(c, 1002)


def test_close_reason_invalid_utf8_1007(server):
    before = server.closes(1007)
    with open_ws(server.port) as c:
        c.send_frame(OP_CLOSE, close_payload(1000, b"ok \xc3\x28"))
        fail_with(c, 1007)
    closes_moved(server, 1007, before)


def test_close_between_fragments(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "unfinished", fin=False)
        c.send_close(1000)
        c.expect_close(1000)
        c.expect_eof()


def test_nothing_after_close(server):
    """Frames after the client's close are not echoed."""
    with open_ws(server.port) as c:
        c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, "late"))
        f = c.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        c.expect_eof()


# -- framing errors -> 1002 ---------------------------------------------

@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_1002(server, rsv):
    before = server.closes(1002)
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "rsv", rsv=rsv)
        fail_with(c, 1002)
    closes_moved(server, 1002, before)


def test_reserved_bits_on_ping_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_PING, "p", rsv=4)
        fail_with(c, 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_1002(server, opcode):
    with open_ws(server.port) as c:
        c.send_frame(opcode, b"x")
        fail_with(c, 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
def test_unmasked_1002(server, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"hello"
    with open_ws(server.port) as c:
        c.send_frame(opcode, payload, mask=False)
        fail_with(c, 1002)


def test_continuation_without_start_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_CONT, "orphan")
        fail_with(c, 1002)


def test_new_message_inside_fragmented_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "first", fin=False)
        c.send_frame(OP_BINARY, "second")
        fail_with(c, 1002)


def test_control_frame_too_long_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_PING, b"x" * 126)
        fail_with(c, 1002)


def test_fragmented_control_frame_1002(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_PING, b"half", fin=False)
        fail_with(c, 1002)


# -- UTF-8 -> 1007 --------------------------------------------------------

BAD_UTF8 = [
    ("lone-continuation", b"\x80"),
    ("bad-second-byte", b"\xc3\x28"),
    ("overlong-slash", b"\xc0\xaf"),
    ("overlong-3", b"\xe0\x80\xaf"),
    ("surrogate", b"\xed\xa0\x80"),
    ("above-10ffff", b"\xf4\x90\x80\x80"),
    ("f5-byte", b"\xf5\x80\x80\x80"),
    ("ff-byte", b"\xff"),
    ("truncated-at-end", "κόσμε".encode() + b"\xe2\x82"),
]


@pytest.mark.parametrize("name,data", BAD_UTF8, ids=[b[0] for b in BAD_UTF8])
def test_invalid_utf8_text_1007(server, name, data):
    before = server.closes(1007)
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, b"ok " + data)
        fail_with(c, 1007)
    closes_moved(server, 1007, before)


def test_invalid_utf8_fail_fast_first_fragment(server):
    """Invalid bytes in the first fragment (FIN=0) fail the connection at
    once; the test sends nothing more."""
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, b"valid start \xed\xa0\x80 and more", fin=False)
        fail_with(c, 1007)


def test_invalid_utf8_fail_fast_middle_fragment(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "fine ", fin=False)
        c.send_frame(OP_CONT, b"\xce\xba\xff", fin=False)
        fail_with(c, 1007)


def test_invalid_utf8_across_fragment_boundary(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, b"abc\xe2", fin=False)
        c.send_frame(OP_CONT, b"\x28\xa1", fin=True)
        fail_with(c, 1007)


def test_binary_not_utf8_checked(server):
    with open_ws(server.port) as c:
        c.echo(OP_BINARY, b"\xff\xfe\xed\xa0\x80")


# -- size limit -> 1009 ------------------------------------------------------

def send_tolerant(c, data):
    """Sends data; the server may close before it has read all of it."""
    try:
        c.send(data)
    except OSError:
        pass


def test_message_size_limit_1009(server_factory):
    srv = server_factory(max_message_size="64k")
    with open_ws(srv.port) as c:
        c.echo(OP_BINARY, os.urandom(65536))
        c.echo(OP_TEXT, b"t" * 65536)
    before = srv.closes(1009)
    with open_ws(srv.port) as c:
        send_tolerant(c, build_frame(OP_BINARY, os.urandom(65537)))
        fail_with(c, 1009)
    closes_moved(srv, 1009, before)
    with open_ws(srv.port) as c:
        send_tolerant(c, build_frame(OP_TEXT, b"t" * 200000))
        fail_with(c, 1009)


def test_message_size_limit_across_fragments_1009(server_factory):
    srv = server_factory(max_message_size="64k")
    with open_ws(srv.port) as c:
        # exactly the limit, in fragments, is fine
        for i in range(4):
            c.send_frame(OP_BINARY if i == 0 else OP_CONT, b"a" * 16384, fin=(i == 3))
        assert c.recv_message() == (OP_BINARY, b"a" * 65536)
        for i in range(3):
            send_tolerant(c, build_frame(OP_TEXT if i == 0 else OP_CONT, b"b" * 30000, fin=(i == 2)))
        fail_with(c, 1009)


def test_announced_length_over_limit_fails_fast(server_factory):
    """A frame header announcing more than max_message_size is refused
    without waiting for the payload."""
    srv = server_factory(max_message_size="64k")
    with open_ws(srv.port) as c:
        c.send(build_frame(OP_BINARY, b"", length=10 * 1024 * 1024))  # header and mask key only
        fail_with(c, 1009)


# -- keepalive ----------------------------------------------------------------

def test_keepalive_pings_and_idle_close(server_factory):
    srv = server_factory(ping_interval="1s", idle_timeout="3s")
    idle_before = srv.total("idle_closes")

    def silent_client():
        """Never answers pings: must be pinged, then closed."""
        with open_ws(srv.port, timeout=10) as c:
            t0 = time.monotonic()
            f = c.recv_frame(timeout=10)
            assert f.opcode == OP_PING, f"expected a ping first, got {f!r}"
            assert not f.masked
            c.expect_eof(timeout=15)
            return time.monotonic() - t0

    async def answering_client():
        """websockets answers pings by itself and must stay open 5 s."""
        async with websockets.connect(srv.url(), compression=None, ping_interval=None) as ws:
            await asyncio.sleep(5)
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), 10) == "still open"
            return ws.open

    async def run():
        return await asyncio.gather(asyncio.to_thread(silent_client), answering_client())

    silent_elapsed, ws_open = asyncio.run(run())
    assert ws_open
    assert silent_elapsed >= 1.5, f"silent client closed after {silent_elapsed:.1f}s, before idle_timeout"
    st = srv.status()
    assert srv.total("pings_sent", st) >= 2, st
    wait_until(lambda: srv.total("idle_closes") == idle_before + 1,
               what="idle_closes + 1 (only the silent client)")


@pytest.mark.parametrize("where", ["server queue", "kernel buffers"])
def test_a_subscriber_reading_its_backlog_is_not_idle(server_factory, where):
    """A subscriber that sends nothing but keeps reading a long backlog while
    messages keep coming is alive: the server's ping waits behind the
    backlog, so no pong can come before the backlog is read. With a small
    receive buffer the backlog waits in the server's queue (its draining
    counts as traffic); with a large one it sits in the kernel's buffers,
    where two looks at the TCP connection (bytes acknowledged, window) show
    the client reading. It gets every message before any close; once it is
    silent with nothing left to read, idle_timeout closes it."""
    pub_port = free_port()
    srv = server_factory(ping_interval="1s", idle_timeout="2s", publish_listen=f"127.0.0.1:{pub_port}")
    size, first, later = 16 * 1024, 190, 160  # 3 MB at once, then 20 a second for 8 s
    sub = open_ws(srv.port, path="/ch/backlog", rcvbuf=4096 if where == "server queue" else 4 << 20, timeout=20)

    def publish(i):
        c = http.client.HTTPConnection("127.0.0.1", pub_port, timeout=10)
        c.request("POST", "/pub/backlog?type=binary", body=bytes([i % 251]) * size)
        assert c.getresponse().status == 202
        c.close()

    with sub:
        for i in range(first):
            publish(i)
            if i % 40 == 0:
                sub.send_frame(OP_PING, b"here")  # talking while the backlog builds up
        sub.send_frame(OP_PING, b"t0")  # its last traffic: the idle deadline runs from here
        publisher = threading.Thread(target=lambda: [publish(i) or time.sleep(0.05) for i in range(first, first + later)])
        publisher.start()
        t0 = time.monotonic()
        for i in range(first + later):  # about 9 s of slow reading, never answering a ping
            op, payload = sub.recv_message(timeout=10, answer_pings=False)
            assert op == OP_BINARY and payload == bytes([i % 251]) * size, f"message {i} wrong"
            time.sleep(0.025)
        publisher.join()
        assert time.monotonic() - t0 > 4, "the backlog was read faster than idle_timeout: no test"
        sub.expect_close(1001, timeout=10)  # silent, nothing left: idle


def test_no_pings_when_disabled(server_factory):
    srv = server_factory(ping_interval="0", idle_timeout="0")
    with open_ws(srv.port) as c:
        with pytest.raises(socket.timeout):
            c.recv_frame(timeout=1.5)
        c.echo(OP_TEXT, "quiet")


# -- backpressure --------------------------------------------------------------

def test_backpressure_close(server_factory):
    srv = server_factory(max_backpressure="256k")
    bp_before = srv.total("backpressure_closes")
    c1008_before = srv.closes(1008)
    bystander = open_ws(srv.port)
    c = open_ws(srv.port, rcvbuf=4096)
    try:
        frame = build_frame(OP_BINARY, b"\x5a" * 65536, mask_key=b"\0\0\0\0")
        sock = c.sock
        sock.setblocking(False)
        deadline = time.monotonic() + 60
        sent_msgs, pos, closed_by_peer = 0, 0, False
        while time.monotonic() < deadline and sent_msgs < 4000:
            _, w, _ = select.select([], [sock], [], 0.2)
            if w:
                try:
                    pos += sock.send(frame[pos:])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed_by_peer = True
                    break
                if pos == len(frame):
                    pos = 0
                    sent_msgs += 1
                    if sent_msgs % 8:
                        continue
            if srv.total("backpressure_closes") > bp_before:
                break
        wait_until(lambda: srv.total("backpressure_closes") == bp_before + 1, timeout=10,
                   what=f"backpressure_closes + 1 (sent {sent_msgs} x 64 KiB, peer closed: {closed_by_peer})")
        assert srv.closes(1008) >= c1008_before + 1
        sock.setblocking(True)
        c.expect_eof(timeout=15)
    finally:
        c.close()
    bystander.echo(OP_TEXT, "unaffected")
    bystander.close()
