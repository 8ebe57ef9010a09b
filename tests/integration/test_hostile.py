"""Hostile clients (issue "Hardening"): slowloris, handshake floods from one
address, per-address connection limits, message and byte rate floods, huge
length fields, frame vs message size limits, garbage frames, half-open
peers, JWT authentication and Origin tricks. Each test asserts what the
client sees and the status counter that counts it.

Already covered elsewhere and not repeated here (see docs/security.md):
Origin allow-list basics (test_handshake.py::test_origin_403), the publish
token (test_publish_api.py::test_401_missing_and_wrong_token), slow
consumers on channels (test_channels.py::test_slow_consumer_*), the idle
close of a client that reads but never answers pings
(test_protocol.py::test_keepalive_pings_and_idle_close) and
max_message_size across fragments (test_protocol.py)."""
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import selectors
import socket
import time

import pytest

from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Closed, RawWS, build_frame,
                   build_request, open_ws, wait_until)
from test_handshake import reject_case
from test_protocol import fail_with, send_tolerant

MiB = 1024 * 1024


# -- helpers ------------------------------------------------------------------

def limit(srv, key, st=None):
    """workers[].limits[key] summed (frame_size, message_size, message_rate, byte_rate)."""
    st = st or srv.status()
    return sum(w["limits"][key] for w in st["workers"])


def raw_from(port, source, timeout=5.0):
    """A RawWS whose socket is bound to the source address `source`
    (127.0.0.0/8 is all loopback, so 127.0.0.9 is another client address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    c = RawWS.__new__(RawWS)  # RawWS.__init__ would connect from 127.0.0.1
    c.sock, c.timeout, c.buf, c.eof = sock, timeout, bytearray(), False
    return c


def worker_mem(srv):
    """(sum of VmRSS, sum of VmPeak) over the workers, in bytes."""
    rss = peak = 0
    for pid in srv.worker_pids():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("VmPeak:"):
                    peak += int(line.split()[1]) * 1024
    return rss, peak


def read_until_close(c, timeout=10):
    """Reads frames until a close frame; returns (data frames seen, close frame)."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no close frame within {timeout}s ({n} data frames)")
        try:
            f = c.recv_frame(timeout=left)
        except Closed as e:
            raise AssertionError(f"connection ended without a close frame after {n} data frames ({e})")
        if f.opcode == OP_CLOSE:
            return n, f
        if f.opcode < 0x8:
            n += 1


def connect_quiet(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source != "127.0.0.1":
            s.bind((source, 0))
        s.settimeout(15)
        s.connect(("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return s


def collect_answers(socks, want, timeout, settle=0.5):
    """Reads from socks until `want` of them have sent an HTTP answer head
    (or EOF), then `settle` more seconds. Returns ({index: status or 'eof'},
    indexes that sent nothing). Answered sockets are closed."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        bufs[i] = b""
    answered = {}
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while True:
            now = time.monotonic()
            if settle_until is None and len(answered) >= want:
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                break
            if now >= deadline:
                break
            stop = settle_until if settle_until is not None else deadline
            for key, _ in sel.select(timeout=max(0.01, min(0.5, stop - now))):
                i = key.data
                s = socks[i]
                try:
                    chunk = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                bufs[i] += chunk
                if b"\r\n\r\n" in bufs[i] or not chunk:
                    head = bufs[i].split(b"\r\n", 1)[0].split()
                    answered[i] = int(head[1]) if len(head) >= 2 and head[1].isdigit() else "eof"
                    sel.unregister(s)
                    s.close()
    finally:
        sel.close()
    silent = [i for i in range(len(socks)) if i not in answered]
    for i in silent:
        socks[i].setblocking(True)
    return answered, silent


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SECRET = "hostile-test-secret-0123456789"


def make_jwt(claims, secret=SECRET, header=None, signature=None):
    """An HS256 JWT (compact form); header and signature may be overridden."""
    header = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing = b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64u(json.dumps(claims, separators=(",", ":")).encode())
    if signature is None:
        signature = b64u(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())
    return signing + "." + signature


# -- slowloris ------------------------------------------------------------------

def test_slowloris_headers_closed_at_handshake_timeout(server_factory):
    """One header byte every 200 ms: the deadline runs from accept, so the
    trickle does not extend it. Closed without an answer, counted as timeout."""
    srv = server_factory(handshake_timeout="2s")
    before = srv.rejected("timeout")
    req = build_request()
    got = b""
    closed_at = None
    with RawWS(srv.port, timeout=20) as c:
        t0 = time.monotonic()
        for i in range(len(req) - 4):  # never the final CRLF CRLF
            if time.monotonic() - t0 > 20:
                break
            try:
                c.send(req[i:i + 1])
            except OSError:
                closed_at = time.monotonic() - t0
                break
            c.sock.settimeout(0.2)
            try:
                chunk = c.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                closed_at = time.monotonic() - t0
                break
            got += chunk
        sent = i
    assert closed_at is not None, f"still open after {time.monotonic() - t0:.1f}s and {sent} bytes trickled"
    assert closed_at >= 1.5, f"closed after {closed_at:.2f}s, before handshake_timeout (2s)"
    assert closed_at < 10, f"closed only after {closed_at:.2f}s (handshake_timeout 2s)"
    assert got == b"", f"a handshake timeout should close without an answer, got {got!r}"
    wait_until(lambda: srv.rejected("timeout") == before + 1, timeout=10,
               what=f"handshakes_rejected.timeout == {before + 1} (now {srv.rejected('timeout')})")


# -- per-address limits ---------------------------------------------------------

N_FLOOD = 10000


def test_unfinished_handshake_flood_from_one_address(server_factory, clients):
    """10,000 connections from 127.0.0.1 that never finish their request:
    exactly max_handshakes_per_ip wait, every other one gets 429 at once
    (ip_handshakes); 127.0.0.9 is unaffected; once they close the counts
    are given back exactly."""
    limit_hs = 100
    srv = server_factory(max_handshakes_per_ip=limit_hs, handshake_timeout="60s")
    st0 = srv.status()
    acc0 = srv.total("accepted", st0)
    rej0 = srv.rejected("ip_handshakes", st0)
    half = build_request()[:40]
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(N_FLOOD):
            s = connect_quiet(srv.port)
            socks.append(s)
            if i % 2:
                try:
                    s.send(half)  # half a request; the others send nothing
                except OSError:
                    pass
            if (i + 1) % 1000 == 0:
                # let the server keep up (the accept queue is not the subject)
                wait_until(lambda n=i + 1: srv.total("accepted") >= acc0 + n, timeout=30,
                           what=f"{i + 1} connections accepted")
        t_conn = time.monotonic() - t0
        answers, silent = collect_answers(socks, N_FLOOD - limit_hs, timeout=60)
        codes = collections.Counter(answers.values())
        print(f"\n{N_FLOOD} connects in {t_conn:.1f}s; answers {dict(codes)}, {len(silent)} silent")
        assert codes == {429: N_FLOOD - limit_hs}, \
            f"expected {N_FLOOD - limit_hs} x 429, got {dict(codes)} and {len(silent)} without an answer"
        assert len(silent) == limit_hs
        wait_until(lambda: srv.rejected("ip_handshakes") == rej0 + N_FLOOD - limit_hs, timeout=10,
                   what=f"handshakes_rejected.ip_handshakes == {rej0 + N_FLOOD - limit_hs} "
                        f"(now {srv.rejected('ip_handshakes')})")

        # a complete request from the same address is refused too ...
        with RawWS(srv.port) as c:
            c.send(build_request())
            r = c.read_response(timeout=10)
            assert r.status == 429, f"a 101st handshake from 127.0.0.1 got {r.status}: {r.raw!r}"
        # ... while another address completes its handshake meanwhile
        other = raw_from(srv.port, "127.0.0.9", timeout=10)
        clients.append(other)
        other.handshake()
        other.echo(OP_TEXT, "from 127.0.0.9 during the flood")
    finally:
        for s in socks:
            s.close()

    # Released: exactly limit_hs unfinished handshakes fit again, and one more is 429.
    last = {}

    def exact_room_again():
        acc = srv.total("accepted")
        probe = []
        try:
            for _ in range(limit_hs + 1):
                probe.append(connect_quiet(srv.port))
            wait_until(lambda: srv.total("accepted") >= acc + limit_hs + 1, timeout=15,
                       what="probe connections accepted")
            answers, silent = collect_answers(probe, 1, timeout=3, settle=0.5)
            last["answers"] = dict(collections.Counter(answers.values()))
            return list(answers.values()) == [429] and len(silent) == limit_hs
        finally:
            for s in probe:
                s.close()
    try:
        wait_until(exact_room_again, timeout=30, interval=0.5,
                   what=f"room for exactly {limit_hs} unfinished handshakes from 127.0.0.1 after the flood closed")
    except AssertionError as e:
        raise AssertionError(f"{e}; last {limit_hs + 1} probes answered {last.get('answers')}, expected one 429 "
                             "(more 429s: counts of closed connections were not given back)")

    # (the probe's own connections are given back as the server reads their EOF)
    def full_handshake():
        with RawWS(srv.port) as c:
            c.send(build_request())
            r = c.read_response(timeout=10)
            if r.status == 429:
                return False
            assert r.status == 101, r.raw
            c.echo(OP_TEXT, "127.0.0.1 is welcome again")
            return True
    wait_until(full_handshake, timeout=15, interval=0.2, what="a complete handshake from 127.0.0.1 again")


def test_connections_per_ip_429(server_factory, clients):
    """max_connections_per_ip = 50: the 51st connection from the address gets
    429 (ip_connections) before it sends anything; another address is
    unaffected; closing one lets exactly one more in."""
    srv = server_factory(max_connections_per_ip=50)
    for _ in range(50):
        clients.append(open_ws(srv.port))
    wait_until(lambda: srv.status()["connections"] == 50, what="50 connections")
    before = srv.rejected("ip_connections")
    with RawWS(srv.port) as c:  # nothing sent: the answer comes at accept
        r = c.read_response(timeout=10)
        assert r.status == 429, f"51st connection from 127.0.0.1 got {r.status}: {r.raw!r}"
        c.expect_eof()
    reject_case(srv, build_request(), 429, "ip_connections")
    assert srv.rejected("ip_connections") == before + 2

    other = raw_from(srv.port, "127.0.0.9")
    clients.append(other)
    other.handshake()
    other.echo(OP_TEXT, "another address")

    c = clients.pop(0)
    c.send_close(1000)
    c.expect_close(1000)
    c.expect_eof()
    c.close()
    wait_until(lambda: srv.status()["connections"] == 50, what="49 + 1 connections after one closed")
    c = open_ws(srv.port)
    clients.append(c)
    c.echo(OP_TEXT, "the 50th again")
    reject_case(srv, build_request(), 429, "ip_connections")
    for old in clients[:50:7]:
        old.echo(OP_TEXT, "still served")


# -- rate limits ----------------------------------------------------------------

def flood_closed_1008(srv, st0, frames, low, what, burst, counted, not_counted):
    """Sends 1000 frames at once: the server echoes at least `low` of them
    (the burst), closes 1008, and counts it once in limits.counted."""
    with open_ws(srv.port, timeout=10) as c:
        send_tolerant(c, frames)
        n, f = read_until_close(c)
        assert f.close_code == 1008, f"flood closed with {f.close_code} ({f.payload!r}), expected 1008"
        assert low <= n < 1000, f"{n} of 1000 {what} echoed before the close (burst is {burst})"
        try:
            c.send_close(1008)
        except OSError:
            pass
        c.expect_eof(timeout=10)
    wait_until(lambda: limit(srv, counted) == limit(srv, counted, st0) + 1, timeout=10,
               what=f"limits.{counted} + 1")
    assert srv.closes(1008) == srv.closes(1008, st0) + 1
    assert limit(srv, not_counted) == limit(srv, not_counted, st0)


def steady_stays_open(srv, count, per_s, opcode, payload):
    """count echoes paced at per_s a second (under the limit): never closed."""
    with open_ws(srv.port, timeout=10) as c:
        t0 = time.monotonic()
        for i in range(count):
            c.echo(opcode, payload(i))
            time.sleep(max(0.0, t0 + (i + 1) / per_s - time.monotonic()))
        c.echo(OP_TEXT, "still open")


def test_message_rate_flood_1008(server_factory):
    srv = server_factory(max_messages_per_second=100)
    st0 = srv.status()
    frames = b"".join(build_frame(OP_TEXT, f"m{i}") for i in range(1000))
    flood_closed_1008(srv, st0, frames, 100, "messages", "100", "message_rate", "byte_rate")
    steady_stays_open(srv, 150, 50, OP_TEXT, lambda i: f"steady {i}")  # half the rate for 3 s is fine
    assert limit(srv, "message_rate") == limit(srv, "message_rate", st0) + 1


def test_byte_rate_flood_1008(server_factory):
    srv = server_factory(max_bytes_per_second="64k")
    st0 = srv.status()
    payload = b"b" * 1024
    frames = b"".join(build_frame(OP_BINARY, payload) for _ in range(1000))  # 1000 KiB
    flood_closed_1008(srv, st0, frames, 64, "x 1 KiB", "64 KiB", "byte_rate", "message_rate")
    steady_stays_open(srv, 96, 32, OP_BINARY, lambda i: payload)  # 32 KiB/s for 3 s is fine
    assert limit(srv, "byte_rate") == limit(srv, "byte_rate", st0) + 1


# -- sizes ----------------------------------------------------------------------

def test_2gib_length_field_1009_without_memory(server_factory):
    """A frame header announcing 2 GiB is refused the moment the length is
    readable: close 1009 with no payload sent and nothing allocated for it."""
    srv = server_factory()  # default max_frame_size / max_message_size (16M)
    st0 = srv.status()
    conns = [open_ws(srv.port, timeout=10) for _ in range(20)]
    try:
        for c in conns:
            c.echo(OP_TEXT, "warm")
        time.sleep(0.3)
        rss0, peak0 = worker_mem(srv)
        for c in conns:
            t0 = time.monotonic()
            c.send(build_frame(OP_BINARY, b"", length=2 ** 31))  # header + mask key only
            f = c.expect_close(1009, timeout=10)
            elapsed = time.monotonic() - t0
            assert elapsed < 5, f"1009 came {elapsed:.1f}s after the header"
            assert f.close_code == 1009
            c.send_close(1009)
            c.expect_eof(timeout=10)
        rss1, peak1 = worker_mem(srv)
    finally:
        for c in conns:
            c.close()
    print(f"\nworkers VmRSS {rss0 / MiB:.1f} -> {rss1 / MiB:.1f} MiB, VmPeak {peak0 / MiB:.0f} -> {peak1 / MiB:.0f} MiB")
    assert rss1 - rss0 < 4 * MiB, f"workers' VmRSS grew {(rss1 - rss0) / MiB:.1f} MiB for 20 x 2 GiB headers"
    assert peak1 - peak0 < 1024 * MiB, f"workers' VmPeak grew {(peak1 - peak0) / MiB:.0f} MiB: a 2 GiB allocation?"
    wait_until(lambda: srv.closes(1009) == srv.closes(1009, st0) + 20, timeout=10,
               what=f"closes[1009] + 20 (now +{srv.closes(1009) - srv.closes(1009, st0)})")
    # The frame is over max_frame_size (and max_message_size): a limit counter
    # must say so. ws_parse_header() refuses the length on its own, before
    # check_sequence() runs; frames.c too_big() counts it against the smaller
    # limit (frame_size when both are equal).
    st = srv.status()
    moved = {k: limit(srv, k, st) - limit(srv, k, st0) for k in ("frame_size", "message_size")}
    assert moved["frame_size"] == 20, f"limits.frame_size should count the 20 oversized frames, moved {moved}"


def test_frame_size_below_message_size(server_factory):
    """max_frame_size 64k < max_message_size 1m: one 64k+1 frame gets 1009
    (limits.frame_size) while a 240 KiB message in 60 KiB frames is echoed."""
    srv = server_factory(max_frame_size="64k", max_message_size="1m")
    st0 = srv.status()
    with open_ws(srv.port, timeout=10) as c:
        c.echo(OP_BINARY, os.urandom(65536))  # exactly max_frame_size
        parts = [os.urandom(60 * 1024) for _ in range(4)]
        for i, p in enumerate(parts):
            c.send_frame(OP_BINARY if i == 0 else OP_CONT, p, fin=(i == 3))
        assert c.recv_message(timeout=10) == (OP_BINARY, b"".join(parts))
        text = "x" * (100 * 1024)
        for i in range(0, len(text), 50 * 1024):
            c.send_frame(OP_TEXT if i == 0 else OP_CONT, text[i:i + 50 * 1024], fin=(i + 50 * 1024 >= len(text)))
        assert c.recv_message(timeout=10) == (OP_TEXT, text.encode())
    with open_ws(srv.port, timeout=10) as c:
        send_tolerant(c, build_frame(OP_BINARY, os.urandom(65537)))
        fail_with(c, 1009)
    # a continuation frame over max_frame_size inside a message that would fit
    with open_ws(srv.port, timeout=10) as c:
        c.send_frame(OP_BINARY, b"a" * 1000, fin=False)
        send_tolerant(c, build_frame(OP_CONT, b"b" * 70000))
        fail_with(c, 1009)
    wait_until(lambda: limit(srv, "frame_size") == limit(srv, "frame_size", st0) + 2, timeout=10,
               what="limits.frame_size + 2")
    st = srv.status()
    assert limit(srv, "message_size", st) == limit(srv, "message_size", st0)
    assert srv.closes(1009, st) == srv.closes(1009, st0) + 2


# -- garbage frames -------------------------------------------------------------

def header_surely_invalid(blob):
    """True when the first frame header in blob breaks RFC 6455 for a
    server with no extension (so 1002 is the only right answer)."""
    b0, b1 = blob[0], blob[1]
    rsv, op, fin = (b0 >> 4) & 7, b0 & 0xF, b0 & 0x80
    masked, n = b1 & 0x80, b1 & 0x7F
    if rsv or op not in (0, 1, 2, 8, 9, 10) or not masked or op == 0:
        return True
    return op >= 8 and (not fin or n > 125)


def test_random_bytes_after_handshake_1002(server):
    rng = random.Random(6455)
    before = server.closes(1002)
    blobs = []
    while len(blobs) < 12:
        blob = bytes(rng.getrandbits(8) for _ in range(rng.choice((2, 64, 4096))))
        if header_surely_invalid(blob):
            blobs.append(blob)
    for blob in blobs:
        with open_ws(server.port) as c:
            send_tolerant(c, blob)
            try:
                f = c.expect_close(1002)
            except AssertionError as e:
                raise AssertionError(f"random bytes {blob[:8].hex()}... ({len(blob)} bytes): {e}")
            assert f.close_code == 1002
    wait_until(lambda: server.closes(1002) == before + len(blobs), timeout=10,
               what=f"closes[1002] + {len(blobs)} (now +{server.closes(1002) - before})")
    with open_ws(server.port) as c:
        c.echo(OP_TEXT, "the server still serves")


# -- half-open peer -------------------------------------------------------------

def test_half_open_peer_cleaned_up_by_idle_timeout(server_factory):
    """A client that completes the handshake and then neither reads nor
    sends (a peer that vanished without FIN looks the same to the server):
    pinged, closed 1001 at idle_timeout, and its slot freed even though it
    never answers the close."""
    srv = server_factory(ping_interval="1s", idle_timeout="3s")
    st0 = srv.status()
    c = open_ws(srv.port, rcvbuf=4096, timeout=10)
    t0 = time.monotonic()  # the client's last traffic: its handshake
    try:
        wait_until(lambda: srv.status()["connections"] == 1, what="1 connection")
        wait_until(lambda: srv.total("idle_closes") == srv.total("idle_closes", st0) + 1, timeout=20,
                   what="idle_closes + 1")
        idle_at = time.monotonic() - t0
        wait_until(lambda: srv.status()["connections"] == 0, timeout=20,
                   what="connections back to 0 without the peer ever answering")
        gone_at = time.monotonic() - t0
        st = srv.status()
        print(f"\nidle close after {idle_at:.1f}s, slot freed after {gone_at:.1f}s")
        assert idle_at >= 2.5, f"idle close after {idle_at:.1f}s, before idle_timeout (3s)"
        assert srv.total("pings_sent", st) >= srv.total("pings_sent", st0) + 1
        assert srv.closes(1001, st) == srv.closes(1001, st0) + 1
        # what the peer would have read: a ping, then close 1001, then EOF
        f = c.recv_frame(timeout=5)
        assert f.opcode == OP_PING, f
        c.expect_close(1001, timeout=5)
        c.expect_eof(timeout=5)
    finally:
        c.close()


# -- authentication -------------------------------------------------------------

@pytest.fixture
def auth_server(server_factory):
    return server_factory(auth_secret=SECRET)


def test_auth_refusals_401(auth_server):
    srv = auth_server
    now = int(time.time())

    def check_bearer(r):
        assert (r.header("www-authenticate") or "").startswith("Bearer"), r.raw

    cases = [
        ("no token", build_request()),
        ("empty token", build_request(path="/echo?token=")),
        ("garbage", build_request(path="/echo?token=not.a.jwt")),
        ("garbage bearer", build_request(extra=[("Authorization", "Bearer " + "A" * 300)])),
        ("basic scheme", build_request(extra=[("Authorization", "Basic " + make_jwt({"exp": now + 3600}))])),
        ("wrong secret", build_request(path="/echo?token=" + make_jwt({"exp": now + 3600}, secret="other"))),
        ("expired", build_request(path="/echo?token=" + make_jwt({"exp": now - 60}))),
        ("not yet valid", build_request(path="/echo?token=" + make_jwt({"nbf": now + 3600}))),
        ("alg none", build_request(path="/echo?token=" + make_jwt({"exp": now + 3600}, header={"alg": "none"},
                                                                   signature=""))),
        ("alg none signed", build_request(path="/echo?token=" + make_jwt({"exp": now + 3600},
                                                                          header={"alg": "none"}))),
        ("alg HS512", build_request(path="/echo?token=" + make_jwt({"exp": now + 3600},
                                                                    header={"alg": "HS512"}))),
        ("tampered payload", build_request(path="/echo?token=" + (lambda t: t.split(".")[0] + "." + b64u(
            b'{"exp":' + str(now + 3600).encode() + b',"channels":["*"]}') + "." + t.split(".")[2])(
            make_jwt({"exp": now + 3600, "channels": ["a"]})))),
    ]
    for name, req in cases:
        try:
            reject_case(srv, req, 401, "unauthorized", check_bearer)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}")


def test_auth_valid_tokens_101(auth_server, clients):
    srv = auth_server
    now = int(time.time())
    tok = make_jwt({"sub": "u1", "exp": now + 3600, "nbf": now - 10})
    c = RawWS(srv.port)
    clients.append(c)
    c.handshake(path="/echo?token=" + tok)
    c.echo(OP_TEXT, "query token")
    c = RawWS(srv.port)
    clients.append(c)
    c.handshake(path="/echo", extra=[("Authorization", "Bearer " + tok)])
    c.echo(OP_TEXT, "bearer token")
    c = RawWS(srv.port)
    clients.append(c)
    c.handshake(path="/echo?x=1&token=" + tok + "&y=2")
    c.echo(OP_TEXT, "token among other parameters")
    # no exp at all: accepted (exp is optional)
    c = RawWS(srv.port)
    clients.append(c)
    c.handshake(path="/ch/anything?token=" + make_jwt({"sub": "u2"}))
    assert srv.rejected("unauthorized") == 0 and srv.rejected("channel_denied") == 0


def test_auth_channels_claim(auth_server, clients):
    srv = auth_server
    now = int(time.time())
    tok = make_jwt({"exp": now + 3600, "channels": ["a", "room.*"]})
    for path in ("/ch/room.5", "/ch/a", "/ch/room.", "/ch/a,room.x,room.y"):
        c = RawWS(srv.port)
        clients.append(c)
        c.handshake(path=path, extra=[("Authorization", "Bearer " + tok)])
    st0 = srv.status()
    denied = [("/ch/b", tok), ("/ch/room", tok), ("/ch/a,b", tok), ("/ch/ab", tok),
              ("/ch/a", make_jwt({"exp": now + 3600, "channels": []}))]
    for path, t in denied:
        try:
            reject_case(srv, build_request(path=path + "?token=" + t), 403, "channel_denied")
        except AssertionError as e:
            raise AssertionError(f"{path}: {e}")
    st = srv.status()
    assert srv.rejected("unauthorized", st) == srv.rejected("unauthorized", st0)
    assert srv.rejected("forbidden", st) == srv.rejected("forbidden", st0)
    # a channel token still opens /echo (no channel asked for)
    c = RawWS(srv.port)
    clients.append(c)
    c.handshake(path="/echo?token=" + tok)
    c.echo(OP_TEXT, "echo with a channel token")


def test_origin_lookalikes_403(server_factory):
    """Only exact (case-insensitive) entries of allowed_origins pass; the
    allow-list basics are in test_handshake.py::test_origin_403."""
    srv = server_factory(allowed_origins="https://good.example")
    for origin in ("https://good.example.evil.example", "https://evil.example/https://good.example",
                   "http://good.example", "https://good.example:8443", "null", "",
                   "https://good.example" + "x" * 300):
        try:
            reject_case(srv, build_request(origin=origin), 403, "forbidden")
        except AssertionError as e:
            raise AssertionError(f"Origin {origin[:60]!r}: {e}")
    with RawWS(srv.port) as c:
        c.handshake(origin="HTTPS://GOOD.EXAMPLE")
        c.echo(OP_TEXT, "case-insensitive")
