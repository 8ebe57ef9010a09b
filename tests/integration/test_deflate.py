"""permessage-deflate (RFC 7692) end to end: python3-websockets (which offers
it by default) and raw clients against /echo and /ch/NAME, the limits
(1009 for a bomb, 1007 for bad data, 1002 for RSV1 out of place, 400 for a
malformed offer), the status counters, and that a channel message is
compressed once per worker however many deflate subscribers it has.
Headless Chromium is in test_deflate_browser.py."""
import asyncio
import json
import os
import socket
import sys
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmd_client import offer  # noqa: E402
from test_channels import http_post  # noqa: E402
from rawws import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, build_frame, open_ws, wait_until  # noqa: E402
from test_redis import api_publish, redis, redis_node, wait_connected  # noqa: E402,F401
from test_reload import reload_and_wait  # noqa: E402
from test_tls import pki, tls_server  # noqa: E402,F401
from tlskit import client_context  # noqa: E402


def deflate(srv, key):
    """A permessage-deflate counter summed over the workers."""
    return sum(w["deflate"][key] for w in srv.status()["workers"])


def chat(i, n=2000):
    s = json.dumps([{"seq": i * 100 + k, "user": f"user{k % 7}", "text": "hello from the deflate test"}
                    for k in range(60)])
    return s[:n]


def test_websockets_echo_compressed(server):
    async def run():
        async with websockets.connect(server.url("/echo")) as ws:
            ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext and "server_no_context_takeover" in ext, ext
            assert "client_max_window_bits=10" in ext, ext
            for i in range(30):
                await ws.send(chat(i))
                assert await ws.recv() == chat(i)
            await ws.send(b"\x00" * 5000)
            assert await ws.recv() == b"\x00" * 5000
    asyncio.run(run())
    assert deflate(server, "negotiated") >= 1
    assert deflate(server, "in_compressed") >= 31      # websockets compresses what it sends
    assert deflate(server, "out_compressed") >= 31     # and the echoes come back compressed
    saved = deflate(server, "out_bytes_saved")
    assert saved > 31 * 1000, saved                   # 2000-byte JSON shrinks by well over half


def test_window_kept_only_while_connected(server):
    """A client that keeps its context costs a window once it has sent
    compressed; an idle one that sent nothing compressed costs none."""
    async def run():
        idle = await websockets.connect(server.url("/echo"))
        busy = await websockets.connect(server.url("/echo"))
        assert deflate(server, "windows") == 0
        for i in range(20):
            await busy.send(chat(i))
            assert await busy.recv() == chat(i)
        assert deflate(server, "windows") == 1
        await busy.close()
        await idle.close()
    asyncio.run(run())
    assert deflate(server, "windows") == 0


def test_off_declines(server_factory):
    srv = server_factory(permessage_deflate="off")

    async def run():
        async with websockets.connect(srv.url("/echo")) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            await ws.send(chat(1))
            assert await ws.recv() == chat(1)
    asyncio.run(run())
    assert deflate(srv, "negotiated") == 0


def test_channel_compressed_once_per_worker(server):
    """20 deflate subscribers and 5 plain ones on one channel over 2
    workers: each message is compressed at most once per worker, every
    deflate subscriber gets it compressed, the plain ones plain."""
    port = int(server.settings["publish_listen"].rsplit(":", 1)[1])
    msgs = [chat(i, 1500) for i in range(10)]

    async def run():
        zs = [await websockets.connect(server.url("/ch/room")) for _ in range(20)]
        ps = [await websockets.connect(server.url("/ch/room"), compression=None) for _ in range(5)]
        await asyncio.sleep(0.2)
        before = deflate(server, "compressions")
        for m in msgs:
            status, body = await asyncio.to_thread(http_post, port, "/pub/room", m.encode())
            assert 200 <= status < 300, body
        for ws in zs + ps:
            for m in msgs:
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got == m
        runs = deflate(server, "compressions") - before
        assert 0 < runs <= len(msgs) * 2, runs  # 2 workers
        for ws in zs + ps:
            await ws.close()
    out0 = deflate(server, "out_compressed")
    asyncio.run(run())
    assert deflate(server, "out_compressed") - out0 == 20 * len(msgs)


def test_client_publish_compressed(server_factory):
    srv = server_factory(client_publish="on")

    async def run():
        a = await websockets.connect(srv.url("/ch/talk"))
        b = await websockets.connect(srv.url("/ch/talk"), compression=None)
        await asyncio.sleep(0.2)
        await a.send(chat(3))
        assert await asyncio.wait_for(b.recv(), 10) == chat(3)
        assert await asyncio.wait_for(a.recv(), 10) == chat(3)
        await a.close()
        await b.close()
    asyncio.run(run())
    assert deflate(srv, "in_compressed") >= 1


def raw(srv, ext=offer(client_bits=True)):
    return open_ws(srv.port, "/echo", timeout=10, extensions=ext)


def expect_close(c, code):
    events = c.events_until_close(10)
    assert events[-1][0] == "close" and events[-1][1] == code, events


def test_bomb_1009(server_factory):
    srv = server_factory(max_message_size="1M")
    c = raw(srv)
    try:
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = co.compress(b"\x00" * (64 << 20)) + co.flush(zlib.Z_SYNC_FLUSH)
        assert len(bomb) < 100_000
        c.send_raw(build_frame(OP_BINARY, bomb[:-4], rsv=4))
        expect_close(c, 1009)
    finally:
        c.close()
    assert sum(w["limits"]["message_size"] for w in srv.status()["workers"]) >= 1


def test_bad_data_1007(server):
    c = raw(server)
    try:
        c.send_raw(build_frame(OP_TEXT, b"\x07\x00garbage", rsv=4))  # reserved block type
        expect_close(c, 1007)
    finally:
        c.close()


def test_compressed_text_must_be_utf8(server):
    c = raw(server)
    try:
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        c.send_raw(build_frame(OP_TEXT, (co.compress(b"ok \xff\xfe bad") + co.flush(zlib.Z_SYNC_FLUSH))[:-4],
                               rsv=4))
        expect_close(c, 1007)
    finally:
        c.close()


@pytest.mark.parametrize("frames", [
    [(OP_TEXT, b"x", False, 0), (OP_CONT, b"y", True, 4)],  # RSV1 on a continuation
    [(OP_PING, b"p", True, 4)],                             # RSV1 on a control frame
], ids=["continuation", "ping"])
def test_rsv1_out_of_place_1002(server, frames):
    c = raw(server)
    try:
        c.send_raw(b"".join(build_frame(op, p, fin, rsv) for op, p, fin, rsv in frames))
        expect_close(c, 1002)
    finally:
        c.close()


def test_fragmented_compressed_with_ping_between(server):
    c = raw(server)
    try:
        m = chat(9, 3000).encode()
        z = c.pmd.compress(m)
        third = len(z) // 3
        c.send_raw(build_frame(OP_TEXT, z[:third], False, 4) + build_frame(OP_PING, b"hi") +
                   build_frame(OP_CONT, z[third:2 * third], False) + build_frame(OP_CONT, z[2 * third:], True))
        assert c.read_event() == ("pong", b"hi")
        assert c.read_event() == ("message", OP_TEXT, m)
    finally:
        c.close()


def test_malformed_offer_400(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"10\r\n\r\n")
        resp = s.recv(4096)
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
    assert b"Sec-WebSocket-Extensions" in resp


def test_refused_offers_then_plain(server):
    """Every offer refused (unknown parameter, window out of range): the
    connection opens without the extension, and RSV1 is then 1002."""
    c = open_ws(server.port, "/echo", timeout=10,
               extensions="permessage-deflate; foo, permessage-deflate; server_max_window_bits=16")
    try:
        assert c.pmd is None
        c.send_raw(build_frame(OP_TEXT, b"\x00", rsv=4))
        expect_close(c, 1002)
    finally:
        c.close()


def test_websockets_small_client_window(server):
    """websockets with its own client_max_window_bits=9 and no context
    takeover offered: both honoured, messages still round-trip."""
    fac = ClientPerMessageDeflateFactory(client_no_context_takeover=True, client_max_window_bits=9)

    async def run():
        async with websockets.connect(server.url("/echo"), extensions=[fac], compression=None) as ws:
            ext = ws.response_headers["Sec-WebSocket-Extensions"]
            assert "client_no_context_takeover" in ext and "client_max_window_bits=9" in ext, ext
            for i in range(10):
                await ws.send(chat(i, 8000))
                assert await ws.recv() == chat(i, 8000)
    asyncio.run(run())
    assert deflate(server, "windows") == 0


def test_multi_channel_message_compressed(server):
    """A message published to two channels at once reaches a subscriber of
    both once, compressed (the multi-channel path, not the log)."""
    port = int(server.settings["publish_listen"].rsplit(":", 1)[1])

    async def run():
        ws = await websockets.connect(server.url("/ch/north,south"))
        plain = await websockets.connect(server.url("/ch/south"), compression=None)
        await asyncio.sleep(0.2)
        out0 = deflate(server, "out_compressed")
        status, body = await asyncio.to_thread(http_post, port, "/pub/north,south", chat(5).encode())
        assert 200 <= status < 300, body
        assert await asyncio.wait_for(ws.recv(), 10) == chat(5)
        assert await asyncio.wait_for(plain.recv(), 10) == chat(5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)  # once, not twice
        assert deflate(server, "out_compressed") - out0 == 1
        await ws.close()
        await plain.close()
    asyncio.run(run())



def subscribed_in_redis(srv, redis):
    """Every worker of srv with subscribers is subscribed in Redis: r1 on
    each of them, r2 on the one that holds /ch/r1,r2."""
    holders = sum(1 for w in srv.status()["workers"] if w.get("channels", 0) > 0)
    return holders > 0 and redis.numsub("r1") == holders and redis.numsub("r2") == 1


def test_redis_broker_compressed(server_factory, redis):  # noqa: F811
    """Through Redis: a message published on one node reaches the other
    node's deflate subscribers compressed, single- and multi-channel."""
    a, b = redis_node(server_factory, redis), redis_node(server_factory, redis)
    wait_connected(a)
    wait_connected(b)

    async def run():
        one = await websockets.connect(b.url("/ch/r1"))
        both = await websockets.connect(b.url("/ch/r1,r2"))
        await asyncio.to_thread(wait_until, lambda: subscribed_in_redis(b, redis), 15, 0.05,
                                "node b's SUBSCRIBEs to r1 and r2 to reach Redis")
        out0 = deflate(b, "out_compressed")
        for i in range(5):
            status, _ = await asyncio.to_thread(api_publish, a, "r1", chat(i).encode())
            assert 200 <= status < 300
        status, _ = await asyncio.to_thread(api_publish, a, "r1,r2", chat(99).encode())
        assert 200 <= status < 300
        for i in range(5):
            assert await asyncio.wait_for(one.recv(), 10) == chat(i)
            assert await asyncio.wait_for(both.recv(), 10) == chat(i)
        assert await asyncio.wait_for(one.recv(), 10) == chat(99)
        assert await asyncio.wait_for(both.recv(), 10) == chat(99)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(both.recv(), 0.3)
        assert deflate(b, "out_compressed") - out0 == 12
        await one.close()
        await both.close()
    asyncio.run(run())



def test_reload_keeps_negotiated_streams(server_factory):
    """A client keeping its context, across a hot reload (deflate_level)
    and a generation change (workers 2 -> 3): its window and its
    compressed echoes carry on on the old worker, and new clients
    negotiate on the new generation."""
    srv = server_factory(deflate_level=1)

    async def run():
        ws = await websockets.connect(srv.url("/echo"))
        for i in range(5):
            await ws.send(chat(i))
            assert await ws.recv() == chat(i)
        r = reload_and_wait(srv, deflate_level=9)
        assert r["ok"], r
        for i in range(5, 10):
            await ws.send(chat(i))
            assert await ws.recv() == chat(i)
        r = reload_and_wait(srv, workers=3)
        assert r["ok"] and r["serving"], r
        for i in range(10, 20):
            await ws.send(chat(i))
            assert await ws.recv() == chat(i)
        fresh = await websockets.connect(srv.url("/echo"))
        assert "permessage-deflate" in fresh.response_headers["Sec-WebSocket-Extensions"]
        await fresh.send(chat(21))
        assert await fresh.recv() == chat(21)
        await fresh.close()
        await ws.close()
    asyncio.run(run())


def test_binary_upgrade_keeps_negotiated_streams(tmp_path):
    """A binary upgrade: while both masters serve, a client keeping its
    context goes on with compressed echoes on the old master's worker and a
    new client negotiates deflate (on either master); once the old master
    hands over, its client is closed and a reconnect negotiates again."""
    from test_upgrade import UpgradeServer
    d = tmp_path / "up"
    d.mkdir()
    srv = UpgradeServer(str(d), workers=1, drain_timeout="1s")
    try:
        srv.start()

        async def echo(ws, i):
            await ws.send(chat(i))
            assert await asyncio.wait_for(ws.recv(), 10) == chat(i)

        async def run():
            ws = await websockets.connect(srv.url("/echo"))
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            for i in range(5):
                await echo(ws, i)
            old = srv.proc.pid
            await asyncio.to_thread(srv.upgrade, old)
            for i in range(5, 10):  # its window and context carry on
                await echo(ws, i)
            fresh = await websockets.connect(srv.url("/echo"))
            assert "permessage-deflate" in fresh.response_headers["Sec-WebSocket-Extensions"]
            await echo(fresh, 20)
            await fresh.close()
            await asyncio.to_thread(srv.hand_over, old)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)
            again = await websockets.connect(srv.url("/echo"))
            assert "permessage-deflate" in again.response_headers["Sec-WebSocket-Extensions"]
            for i in range(30, 35):
                await echo(again, i)
            await again.close()
        asyncio.run(run())
    finally:
        srv.stop_all()


LOAD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "build", "tests", "load", "wsmill-load")


@pytest.mark.parametrize("mode", [["echo", "--json"], ["echo"], ["hold", "--verify-sample", "20", "-n", "20",
                                                                 "--deflate-takeover"], ["fanout"]],
                         ids=["echo-json", "echo-pattern", "hold-takeover", "fanout-json"])
def test_load_tool_deflate(server, mode):
    """wsmill-load --deflate (the benchmarks' client) against the real
    server: every echo inflates and checks, and the server saw them
    compressed."""
    import subprocess
    load = os.environ.get("WSMILL_LOAD", LOAD)
    if not os.access(load, os.X_OK):
        pytest.skip(f"{load} not built (meson option load_tool)")
    args = [load] + mode + ["--url", server.url("/echo"), "-d", "1", "-q"]
    if mode[0] == "echo":
        args += ["-n", "4", "--depth", "4", "-s", "700", "--deflate"]
    if mode[0] == "fanout":
        args[args.index("--url") + 1] = server.url("/ch/lt")
        args += ["--pub-url", f"http://{server.settings['publish_listen']}/pub/lt", "-n", "50", "--pub-rate", "40",
                 "-s", "512", "--json", "--deflate"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()
    j = json.loads(out[-1])
    assert j["failures"] == {} and j["connections"]["failed"] == 0, j["failures"]
    got = (j["verify"]["ok"] if "hold" in mode else j["deliveries"]["received"] if mode[0] == "fanout"
           else j["messages"]["received"])
    assert got >= 20, j["messages"]
    if mode[0] == "fanout":
        assert j["deliveries"]["missing"] == 0
        assert deflate(server, "out_compressed") >= got and deflate(server, "compressions") <= got // 50 * 2 + 2
    else:
        assert deflate(server, "in_compressed") >= got
    if "hold" in mode:
        assert deflate(server, "windows") == 0  # released with the connections


def test_metrics_show_deflate(server):
    """/metrics carries the deflate counters, matching the status socket."""
    import http.client
    async def run():
        async with websockets.connect(server.url("/echo")) as ws:
            for i in range(3):
                await ws.send(chat(i))
                await ws.recv()
            host, port = server.settings["publish_listen"].rsplit(":", 1)
            c = http.client.HTTPConnection(host, int(port), timeout=5)
            c.request("GET", "/metrics")
            body = c.getresponse().read().decode()
            c.close()
            m = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines()
                 if ln.startswith("wsmill_deflate")}
            assert m["wsmill_deflate_negotiated_total"] == deflate(server, "negotiated") >= 1
            assert m['wsmill_deflate_messages_total{direction="in",form="compressed"}'] == 3
            assert m['wsmill_deflate_messages_total{direction="out",form="compressed"}'] == 3
            assert m['wsmill_deflate_saved_bytes_total{direction="out"}'] == deflate(server, "out_bytes_saved") > 0
            assert m["wsmill_deflate_windows"] == 1
    asyncio.run(run())


@pytest.mark.parametrize("policy", ["close", "drop"])
def test_slow_deflate_subscriber(server_factory, policy):
    """A deflate subscriber that stops reading is handled by slow_consumer
    like any other (its queue holds compressed twins); a reading one keeps
    getting every message."""
    srv = server_factory(workers=1, max_backpressure="64k", slow_consumer=policy)
    port = int(srv.settings["publish_listen"].rsplit(":", 1)[1])
    slow = open_ws(srv.port, "/ch/flood", timeout=10, rcvbuf=4096, extensions=offer(client_bits=True))
    import random
    rnd = random.Random(7)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
    n = 1500
    # Prose of random words: about a third of its size compressed, so the
    # 24 MiB published are ~8 MiB on the wire, past any socket buffer.
    msgs = [" ".join(rnd.choice(words) for _ in range(2700))[:16000] for _ in range(n)]

    async def run():
        good = await websockets.connect(srv.url("/ch/flood"), max_queue=None)
        await asyncio.sleep(0.2)
        for m in msgs:
            status, body = await asyncio.to_thread(http_post, port, "/pub/flood", m.encode())
            assert 200 <= status < 300, body
        for m in msgs:
            assert await asyncio.wait_for(good.recv(), 20) == m
        await good.close()
    try:
        assert slow.pmd
        asyncio.run(run())
        st = srv.status()
        key = "slow_closes" if policy == "close" else "slow_drops"
        assert srv.total(key, st) >= 1, (srv.total("slow_closes", st), srv.total("slow_drops", st))
        assert deflate(srv, "out_compressed") >= n
    finally:
        slow.close()


def test_wss_compressed(server_factory, pki):  # noqa: F811
    """Over wss:// (TLS transport) deflate works the same: echo and a
    channel, compressed before encryption."""
    srv = tls_server(server_factory, pki, workers=1)
    port = int(srv.settings["publish_listen"].rsplit(":", 1)[1])

    async def run():
        ctx = client_context(pki["ca"])
        async with websockets.connect(f"wss://localhost:{srv.tls_port}/echo", ssl=ctx) as ws:
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            for i in range(5):
                await ws.send(chat(i))
                assert await ws.recv() == chat(i)
        sub = await websockets.connect(f"wss://localhost:{srv.tls_port}/ch/sec", ssl=ctx)
        await asyncio.sleep(0.2)
        status, _ = await asyncio.to_thread(http_post, port, "/pub/sec", chat(8).encode())
        assert 200 <= status < 300
        assert await asyncio.wait_for(sub.recv(), 10) == chat(8)
        await sub.close()
    asyncio.run(run())
    assert deflate(srv, "in_compressed") >= 5 and deflate(srv, "out_compressed") >= 6
