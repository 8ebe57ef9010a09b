"""Corked output (issue 13): the replies to several frames that arrive in
one segment leave in one send, in order and intact, including a ping among
data frames, payloads large enough to travel by reference, a fragmented
message, a batch larger than the cork buffer, and a close in the middle of
a batch (nothing after the close is sent)."""
import os
import socket

from rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, RawWS, build_frame, \
    close_payload, wait_until


def one_worker(server_factory):
    return server_factory(workers=1)


def sends(srv):
    return srv.total("sends")


def opened(srv):
    c = RawWS(srv.port)
    assert c.handshake("/echo").status == 101
    return c


def read_frames(c, n):
    return [c.recv_frame(timeout=10) for _ in range(n)]


def test_batch_in_one_segment_leaves_in_one_send(server_factory):
    srv = one_worker(server_factory)
    c = opened(srv)
    c.echo(OP_TEXT, "warm-up")
    before = sends(srv)
    batch = [(OP_TEXT, b"one"), (OP_BINARY, bytes(range(64))), (OP_PING, b"p-1"), (OP_TEXT, b"three"),
             (OP_BINARY, b""), (OP_TEXT, "f\u00fcnf".encode()), (OP_PING, b""), (OP_BINARY, b"\x00" * 125)]
    c.send(b"".join(build_frame(op, p) for op, p in batch))
    got = read_frames(c, len(batch))
    want = [(OP_PONG if op == OP_PING else op, p) for op, p in batch]
    assert [(f.opcode, f.payload) for f in got] == want
    assert all(f.fin and not f.masked and f.rsv == 0 for f in got)
    # Eight replies, one sendmsg (the status counts every send on a
    # WebSocket connection; nothing else talks to this worker).
    assert wait_until(lambda: sends(srv) - before >= 1, what="the batch's send") and sends(srv) - before == 1, \
        f"{sends(srv) - before} sends for one segment of 8 frames"
    c.close()


def test_large_and_fragmented_messages_in_a_batch(server_factory):
    srv = one_worker(server_factory)
    c = opened(srv)
    big = os.urandom(70000)  # rides by reference from the read buffer
    mid = os.urandom(5000)
    text = ("x" * 3000).encode()
    frames = [build_frame(OP_BINARY, big), build_frame(OP_TEXT, b"small"),
              build_frame(OP_TEXT, text[:1000], fin=False), build_frame(OP_PING, b"between"),
              build_frame(OP_CONT, text[1000:], fin=True),  # assembled: an owned buffer
              build_frame(OP_BINARY, mid)]
    c.send(b"".join(frames))
    assert c.recv_message(timeout=10) == (OP_BINARY, big)
    assert c.recv_message(timeout=10) == (OP_TEXT, b"small")
    assert c.recv_message(timeout=10) == (OP_TEXT, text)
    assert [(f.opcode, f.payload) for f in c.controls] == [(OP_PONG, b"between")], \
        "the pong must come where the ping was: before the message it interrupted"
    assert c.recv_message(timeout=10) == (OP_BINARY, mid)
    c.close()


def test_batch_larger_than_the_cork_stays_in_order(server_factory):
    srv = one_worker(server_factory)
    c = opened(srv)
    payloads = [i.to_bytes(4, "big") + os.urandom(196) for i in range(400)]  # 80 KB of replies
    c.send(b"".join(build_frame(OP_BINARY, p) for p in payloads))
    for i, p in enumerate(payloads):
        op, got = c.recv_message(timeout=10)
        assert (op, got) == (OP_BINARY, p), f"reply {i} out of order or damaged"
    c.close()


def test_close_in_the_middle_of_a_batch(server_factory):
    srv = one_worker(server_factory)
    c = opened(srv)
    c.send(build_frame(OP_TEXT, b"before") + build_frame(OP_PING, b"p") + build_frame(OP_CLOSE, close_payload(1000, b"bye"))
           + build_frame(OP_TEXT, b"after") + build_frame(OP_PING, b"late"))
    f = read_frames(c, 3)
    assert [(x.opcode, x.payload) for x in f[:2]] == [(OP_TEXT, b"before"), (OP_PONG, b"p")]
    assert f[2].opcode == OP_CLOSE and f[2].close_code == 1000
    # Nothing follows our close: the next thing is the end of the stream.
    try:
        extra = c.recv_frame(timeout=5)
    except Closed:
        extra = None
    assert extra is None, f"the server sent {extra!r} after its close frame"
    c.close()


def test_protocol_error_mid_batch_answers_what_came_before(server_factory):
    srv = one_worker(server_factory)
    c = opened(srv)
    c.send(build_frame(OP_TEXT, b"ok-1") + build_frame(OP_TEXT, b"ok-2") + build_frame(OP_TEXT, b"bad", rsv=4)
           + build_frame(OP_TEXT, b"never"))
    assert c.recv_message(timeout=10) == (OP_TEXT, b"ok-1")
    assert c.recv_message(timeout=10) == (OP_TEXT, b"ok-2")
    c.expect_close(1002)


def test_pipelined_clients_on_many_connections(server_factory):
    """Several messages in flight on each of many connections at once."""
    srv = server_factory(workers=2)
    conns = [opened(srv) for _ in range(40)]
    for r in range(5):
        for i, c in enumerate(conns):
            c.send(b"".join(build_frame(OP_BINARY, bytes([i, r, k]) * 20) for k in range(8)))
        for i, c in enumerate(conns):
            for k in range(8):
                assert c.recv_message(timeout=10) == (OP_BINARY, bytes([i, r, k]) * 20)
    for c in conns:
        c.close()
