#!/usr/bin/env python3
"""A deliberately misbehaving WebSocket server, to prove wsmill-load sees
every failure it claims to count (run by selftest.py).

Modes (--mode):
  ok            correct upgrade, echo frames
  status:N      answer the upgrade with HTTP status N
  bad-accept    101 with a wrong Sec-WebSocket-Accept
  no-upgrade    101 without the Upgrade header
  silent        accept and read, never answer
  eof           correct 101, then close TCP at once
  close:CODE    correct 101, then a close frame with CODE
  ping          echo, and ping every 100 ms; checks every pong's payload
  fragment      echo each message as 3 fragments with a ping in between
  corrupt       echo, but flip a byte of every 5th message
  masked        echo with the mask bit set (clients must reject it)
  no-fin        echo, answer close, but never close TCP
  pubsub        channels like wsmill: GET /ch/NAME subscribes (a client's
                message is published to NAME), POST /pub/NAME publishes its
                body (keep-alive, pipelining), answers 202
  pubsub-drop   ... but never delivers messages whose sequence number
                (payload bytes 8-15) ends in 3
  pubsub-dup    ... delivers those twice
  pubsub-reorder ... delivers each of those after the message that follows it
  pubsub-corrupt ... flips the last byte of those
  pubsub-cross  ... also delivers NAME-0's messages to NAME-1's subscribers
  pubsub-503    ... answers every 5th POST with 503 (and does not publish it)
Stops by itself after --duration seconds.
"""
import argparse
import asyncio
import base64
import hashlib
import os
import signal
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
stats = {"conns": 0, "pongs_ok": 0, "pongs_bad": 0}


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(op, payload, fin=True, mask=None):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        hdr += mask
    return hdr + payload


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x80, b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def handshake(reader, writer, mode):
    req = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in req.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    if mode.startswith("status:"):
        writer.write(b"HTTP/1.1 %s X\r\nContent-Length: 0\r\n\r\n" % mode[7:].encode())
        await writer.drain()
        return False
    acc = accept_of(key) if mode != "bad-accept" else accept_of(key + b"x")
    upgrade = b"" if mode == "no-upgrade" else b"Upgrade: websocket\r\n"
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\n" + upgrade +
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
    await writer.drain()
    return mode not in ("bad-accept", "no-upgrade")


async def pinger(writer, sent):
    while True:
        await asyncio.sleep(0.1)
        p = os.urandom(8)
        sent.append(p)
        writer.write(frame(0x9, p))


def echo(writer, mode, op, data, count):
    if mode == "corrupt" and count % 5 == 4 and data:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    if mode == "fragment" and len(data) >= 3:
        a, b = len(data) // 3, 2 * len(data) // 3
        writer.write(frame(op, data[:a], fin=False) + frame(0x9, b"frag") +
                     frame(0x0, data[a:b], fin=False) + frame(0x0, data[b:]))
    elif mode == "masked":
        writer.write(frame(op, data, mask=b"\x01\x02\x03\x04"))
    else:
        writer.write(frame(op, data))


async def frames(reader, writer, mode):
    sent, count = [], 0
    task = asyncio.create_task(pinger(writer, sent)) if mode == "ping" else None
    try:
        while True:
            fin, op, data = await read_frame(reader)
            if op == 0x8:
                writer.write(frame(0x8, data[:2]))
                await writer.drain()
                if mode == "no-fin":
                    await asyncio.sleep(3600)
                return
            if op == 0xA:
                key = "pongs_ok" if sent and data == sent.pop(0) else "pongs_bad"
                stats[key] += 1
                continue
            if op in (0x1, 0x2, 0x0):
                echo(writer, mode, op, data, count)
                count += 1
    finally:
        if task:
            task.cancel()


channels = {}  # name -> set of writers
held = {}      # pubsub-reorder: writer -> frame held back
posts = [0]


def deliver(w, mode, data):
    seq = int.from_bytes(data[8:16], "little") if len(data) >= 16 else 0
    odd = seq % 10 == 3
    if mode == "pubsub-drop" and odd:
        return
    if mode == "pubsub-corrupt" and odd:
        data = data[:-1] + bytes([data[-1] ^ 0xFF])
    f = frame(0x2, data)
    if mode == "pubsub-reorder":
        if odd:
            held[w] = f
            return
        w.write(f + held.pop(w, b""))
        return
    w.write(f)
    if mode == "pubsub-dup" and odd:
        w.write(f)


def publish(name, mode, data):
    targets = list(channels.get(name, ()))
    if mode == "pubsub-cross" and name.endswith("-0"):
        targets += list(channels.get(name[:-1] + "1", ()))
    for w in targets:
        deliver(w, mode, data)


async def http_publish(reader, writer, mode, first):
    """POST /pub/NAME requests, one after the other on a keep-alive connection."""
    req = first
    while True:
        lines = req.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode()
        clen = 0
        for line in lines[1:]:
            if line.lower().startswith(b"content-length:"):
                clen = int(line.split(b":", 1)[1])
        body = await reader.readexactly(clen)
        posts[0] += 1
        if mode == "pubsub-503" and posts[0] % 5 == 0:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        else:
            publish(path[len("/pub/"):], mode, body)
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 16\r\n\r\n{\"published\":1}\n")
        await writer.drain()
        req = await reader.readuntil(b"\r\n\r\n")


async def pubsub(reader, writer, mode):
    req = await reader.readuntil(b"\r\n\r\n")
    if req.startswith(b"POST "):
        await http_publish(reader, writer, mode, req)
        return
    name = req.split(b" ")[1].decode()[len("/ch/"):]
    key = b""
    for line in req.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_of(key) + b"\r\n\r\n")
    channels.setdefault(name, set()).add(writer)
    try:
        while True:
            fin, op, data = await read_frame(reader)
            if op == 0x8:
                writer.write(frame(0x8, data[:2]))
                await writer.drain()
                return
            if op == 0x9:
                writer.write(frame(0xA, data))
            elif op in (0x1, 0x2):
                publish(name, mode, data)
    finally:
        channels[name].discard(writer)
        held.pop(writer, None)


async def serve(reader, writer, mode):
    stats["conns"] += 1
    try:
        if mode.startswith("pubsub"):
            await pubsub(reader, writer, mode)
            return
        if mode == "silent":
            await reader.read()  # until the client gives up
            return
        if not await handshake(reader, writer, mode):
            return
        if mode == "eof":
            return
        if mode.startswith("close:"):
            code = int(mode[6:])
            writer.write(frame(0x8, struct.pack("!H", code)))
            await writer.drain()
            await read_frame(reader)  # the client's echo of our close
            return
        await frames(reader, writer, mode)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--duration", type=float, default=60)
    a = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, a.mode), "127.0.0.1", a.port,
                                        backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        try:
            await asyncio.wait_for(stop.wait(), a.duration)
        except asyncio.TimeoutError:
            pass
    print(stats, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
