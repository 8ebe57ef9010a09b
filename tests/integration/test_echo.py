"""/echo returns every message with its opcode: sizes across every length
encoding, fragmented messages, control frames between fragments."""
import asyncio
import os

import pytest
import websockets

from rawws import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, open_ws

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 8 * 1024 * 1024]


def text_of(n):
    """n bytes of valid UTF-8: random ASCII with a few multi-byte characters."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 "
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    s = os.urandom(n).translate(table).decode()
    if n >= 9:
        s = "é€😀" + s[9:]  # 2 + 3 + 4 bytes replace 9 ASCII bytes
    assert len(s.encode()) == n
    return s


async def ws_echo(url, messages, **kw):
    kw.setdefault("max_size", 32 * 1024 * 1024)
    async with websockets.connect(url, compression=None, ping_interval=None, open_timeout=10,
                                  close_timeout=10, **kw) as ws:
        out = []
        for m in messages:
            await ws.send(m)
            out.append(await asyncio.wait_for(ws.recv(), 30))
        return out


@pytest.mark.parametrize("size", SIZES)
def test_echo_text(server, size):
    msg = text_of(size)
    got = asyncio.run(ws_echo(server.url(), [msg]))
    assert isinstance(got[0], str), "text message came back as binary"
    assert got[0] == msg


@pytest.mark.parametrize("size", SIZES)
def test_echo_binary(server, size):
    msg = os.urandom(size)
    got = asyncio.run(ws_echo(server.url(), [msg]))
    assert isinstance(got[0], bytes), "binary message came back as text"
    assert got[0] == msg


def test_many_messages_one_connection(server):
    msgs = [os.urandom(i * 37) if i % 2 else f"message {i}" for i in range(200)]
    assert asyncio.run(ws_echo(server.url(), msgs)) == msgs


def test_pipelined_messages(server):
    """Many messages written before reading any reply come back in order."""
    async def run():
        async with websockets.connect(server.url(), compression=None, ping_interval=None,
                                      max_size=None) as ws:
            msgs = [f"m{i}" for i in range(500)]
            for m in msgs:
                await ws.send(m)
            got = [await asyncio.wait_for(ws.recv(), 30) for _ in msgs]
            assert got == msgs
    asyncio.run(run())


def test_concurrent_clients(server):
    async def one(i):
        return await ws_echo(server.url(), [f"client {i}", os.urandom(i)])

    async def run():
        return await asyncio.gather(*(one(i) for i in range(50)))

    for i, got in enumerate(asyncio.run(run())):
        assert got[0] == f"client {i}" and len(got[1]) == i


def test_fragmented_text_echoed_whole(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "Hel", fin=False)
        c.send_frame(OP_CONT, "lo, ", fin=False)
        c.send_frame(OP_CONT, "", fin=False)
        c.send_frame(OP_CONT, "world", fin=True)
        assert c.recv_message() == (OP_TEXT, b"Hello, world")


def test_fragmented_binary_echoed_whole(server):
    parts = [os.urandom(n) for n in (1, 200, 70000, 0, 3)]
    with open_ws(server.port) as c:
        for i, p in enumerate(parts):
            c.send_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=(i == len(parts) - 1))
        assert c.recv_message() == (OP_BINARY, b"".join(parts))


def test_utf8_split_across_fragments(server):
    data = "a€😀b".encode()  # cut inside the multi-byte sequences
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, data[:2], fin=False)
        c.send_frame(OP_CONT, data[2:5], fin=False)
        c.send_frame(OP_CONT, data[5:], fin=True)
        assert c.recv_message() == (OP_TEXT, data)


def test_ping_between_fragments(server):
    with open_ws(server.port) as c:
        c.send_frame(OP_TEXT, "frag", fin=False)
        c.send_frame(OP_PING, "between")
        c.send_frame(OP_CONT, "ment", fin=False)
        c.send_frame(OP_PONG, "unsolicited")  # must be ignored
        c.send_frame(OP_CONT, "ed", fin=True)
        c.controls = []
        assert c.recv_message() == (OP_TEXT, b"fragmented")
        pongs = [f for f in c.controls if f.opcode == OP_PONG]
        assert [f.payload for f in pongs] == [b"between"], c.controls
        c.echo(OP_BINARY, b"after")


def test_ping_pong_same_payload(server):
    with open_ws(server.port) as c:
        for payload in (b"", b"x", os.urandom(125)):
            c.send_frame(OP_PING, payload)
            f = c.recv_frame()
            assert f.opcode == OP_PONG and f.payload == payload and f.fin and not f.masked, f


def test_websockets_ping(server):
    async def run():
        async with websockets.connect(server.url(), compression=None, ping_interval=None) as ws:
            waiter = await ws.ping(b"abc")
            await asyncio.wait_for(waiter, 10)
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 10) == "x"
    asyncio.run(run())


def test_clean_close_via_websockets(server):
    async def run():
        ws = await websockets.connect(server.url(), compression=None, ping_interval=None)
        await ws.close(1000, "bye")
        return ws.close_code
    assert asyncio.run(run()) == 1000
