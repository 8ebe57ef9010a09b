"""The opening handshake: every answer the server gives, with its exact
status code, and the status counter each rejection moves."""
import base64
import time

import pytest

from rawws import (OP_TEXT, RawWS, accept_for, build_frame, build_request, new_key, open_ws,
                   wait_until)


def reject_case(srv, request, status, reason, check=None):
    """Sends request on a fresh connection, asserts the HTTP status, that the
    server closes the connection afterwards, and that
    handshakes_rejected[reason] moved by exactly one."""
    before = srv.rejected(reason)
    with RawWS(srv.port) as c:
        c.send(request)
        r = c.read_response()
        assert r.status == status, f"sent {request!r}: expected {status}, got {r.status}: {r.raw!r}"
        if check:
            check(r)
        c.expect_eof()
    wait_until(lambda: srv.rejected(reason) == before + 1, timeout=5,
               what=f"handshakes_rejected.{reason} == {before + 1} (now {srv.rejected(reason)})")
    return r


def test_accept_key_and_101(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="  # the RFC 6455 example
    with RawWS(server.port) as c:
        r = c.handshake(key=key)
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        c.echo(OP_TEXT, "hi")


def test_handshakes_counter(server):
    before = server.total("handshakes")
    c = open_ws(server.port)
    c.close()
    wait_until(lambda: server.total("handshakes") == before + 1, what="handshakes + 1")


BAD_REQUESTS = [
    ("no-key", build_request(key=None, omit=("sec-websocket-key",))),
    ("short-key", build_request(key="abc")),
    ("key-20-chars", build_request(key=base64.b64encode(b"x" * 15).decode())),
    ("key-18-bytes", build_request(key="A" * 24)),
    ("key-not-base64", build_request(key="!" * 22 + "==")),
    ("key-17-bytes", build_request(key=base64.b64encode(b"x" * 17).decode())),
    ("no-upgrade", build_request(omit=("upgrade",))),
    ("upgrade-h2c", build_request(upgrade="h2c")),
    ("no-connection", build_request(omit=("connection",))),
    ("connection-keep-alive", build_request(connection="keep-alive")),
    ("no-host", build_request(omit=("host",))),
    ("http-1.0", build_request(http="HTTP/1.0")),
    ("garbage", b"HELLO THERE\r\n\r\n"),
    ("not-http", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40 + b"\r\n\r\n"),
]


@pytest.mark.parametrize("name,request_bytes", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_400(server, name, request_bytes):
    reject_case(server, request_bytes, 400, "bad_request")


def test_token_lists_accepted(server):
    """Upgrade and Connection are token lists, matched case-insensitively."""
    with RawWS(server.port) as c:
        c.handshake(upgrade="WebSocket", connection="keep-alive, Upgrade")
        c.echo(OP_TEXT, "tokens")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_method_405(server, method):
    reject_case(server, build_request(method=method), 405, "method")


@pytest.mark.parametrize("version", ["8", "12", "14"])
def test_version_426(server, version):
    def check(r):
        assert r.header("sec-websocket-version") == "13", r.raw

    reject_case(server, build_request(version=version), 426, "version", check)


def test_unknown_path_404(server):
    reject_case(server, build_request(path="/nope"), 404, "not_found")


def test_query_string_on_echo(server):
    with RawWS(server.port) as c:
        c.handshake(path="/echo?x=1")
        c.echo(OP_TEXT, "query")


def test_origin_403(server_factory):
    srv = server_factory(allowed_origins="https://good.example,https://also.example")
    reject_case(srv, build_request(origin="https://evil.example"), 403, "forbidden")
    for origin in ("https://good.example", "https://also.example", None):
        with RawWS(srv.port) as c:
            c.handshake(origin=origin)
            c.echo(OP_TEXT, f"origin {origin}")


def test_any_origin_when_unset(server):
    with RawWS(server.port) as c:
        c.handshake(origin="https://whatever.example")
        c.echo(OP_TEXT, "ok")


def test_header_size_431(server_factory):
    srv = server_factory(max_header_size="2k")
    req = build_request(extra=[("X-Filler", "a" * 4000)])
    reject_case(srv, req, 431, "header_size")
    # a request just under the limit is fine
    with RawWS(srv.port) as c:
        c.handshake(extra=[("X-Filler", "a" * 1200)])
        c.echo(OP_TEXT, "fits")


def test_full_503(server_factory, clients):
    srv = server_factory(max_connections=2)
    for _ in range(2):
        clients.append(open_ws(srv.port))
    wait_until(lambda: srv.status()["connections"] == 2, what="2 connections")
    reject_case(srv, build_request(), 503, "full")
    # closing one lets a new one in
    c = clients.pop()
    c.send_close(1000)
    c.expect_close(1000)
    c.close()
    wait_until(lambda: srv.status()["connections"] == 1, what="1 connection after close")
    c = open_ws(srv.port)
    clients.append(c)
    c.echo(OP_TEXT, "back in")


def test_request_and_first_frame_in_one_packet(server):
    key = new_key()
    with RawWS(server.port) as c:
        c.send(build_request(key=key) + build_frame(OP_TEXT, "early bird"))
        r = c.read_response()
        assert r.status == 101 and r.header("sec-websocket-accept") == accept_for(key), r.raw
        op, payload = c.recv_message()
        assert (op, payload) == (OP_TEXT, b"early bird")


def test_request_in_one_byte_writes(server):
    key = new_key()
    req = build_request(key=key)
    with RawWS(server.port) as c:
        for i in range(len(req)):
            c.send(req[i:i + 1])
        r = c.read_response()
        assert r.status == 101 and r.header("sec-websocket-accept") == accept_for(key), r.raw
        # and a frame in one-byte writes too
        frame = build_frame(OP_TEXT, "drip")
        for i in range(len(frame)):
            c.send(frame[i:i + 1])
        assert c.recv_message() == (OP_TEXT, b"drip")


def test_handshake_timeout(server_factory):
    srv = server_factory(handshake_timeout="1s")
    before = srv.rejected("timeout")
    t0 = time.monotonic()
    with RawWS(srv.port) as c:
        c.send(build_request()[:30])  # half a request, never finished
        c.expect_eof(timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.5, f"closed after {elapsed:.2f}s, before handshake_timeout"
    wait_until(lambda: srv.rejected("timeout") == before + 1, what="handshakes_rejected.timeout + 1")
    # a connection that never sends anything is closed too
    with RawWS(srv.port) as c:
        c.expect_eof(timeout=10)
    wait_until(lambda: srv.rejected("timeout") == before + 2, what="handshakes_rejected.timeout + 2")


def test_completed_handshake_not_timed_out(server_factory):
    srv = server_factory(handshake_timeout="1s")
    with open_ws(srv.port) as c:
        # well past the handshake timeout, the upgraded connection stays open
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert c.is_open()
            time.sleep(0.1)
        c.echo(OP_TEXT, "still here")
