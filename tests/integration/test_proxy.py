"""The PROXY protocol (issue 15): on a listener with proxy_protocol (or
tls_proxy_protocol) the per-IP limits count the client address the header
carries, not the balancer's; a header that is missing, malformed or from a
peer outside trusted_proxies closes the connection without a byte and is
counted. The last tests put a real haproxy (Debian package) in front with
send-proxy-v2, clients on their own 127.0.0.x addresses."""
import os
import signal
import subprocess
import time

import pytest

from conftest import free_port
from rawws import OP_TEXT, RawWS, wait_until
from test_tls import pki, tls_server, tls_total  # noqa: F401 (pki is a fixture)
from tlskit import TLS_CLOSED, as_raw, connect, proxy_v1, proxy_v2, tls_raw


def proxied(port, header, source=None):
    """A RawWS that sent header first (from source)."""
    s = connect(port, source)
    s.sendall(header)
    return as_raw(s)


def refused_total(srv):
    return tls_total(srv, "proxy_refused")


def test_limits_count_the_address_in_the_header(server_factory):
    srv = server_factory(proxy_protocol="on", trusted_proxies="127.0.0.0/8", max_connections_per_ip=2)
    held = []
    for i in range(2):  # v2 and v1 from the same client address
        hdr = proxy_v2("10.0.0.7", 40000 + i) if i == 0 else proxy_v1("10.0.0.7", 40001)
        c = proxied(srv.port, hdr)
        c.handshake()
        held.append(c)
    third = proxied(srv.port, proxy_v2("10.0.0.7", 40002))
    third.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    r = third.read_response()
    assert r.status == 429, r.raw
    # Every connection came from 127.0.0.1: another client address behind
    # the same balancer is not affected.
    other = proxied(srv.port, proxy_v2("10.0.0.8"))
    other.handshake()
    other.echo(OP_TEXT, b"still fine")
    assert srv.rejected("ip_connections") == 1
    # A LOCAL header (the balancer's own health check) counts the peer.
    local = proxied(srv.port, proxy_v2("0.0.0.0", command=0))
    local.handshake()
    assert refused_total(srv) == 0


def test_missing_malformed_untrusted_close_without_a_word(server_factory):
    srv = server_factory(proxy_protocol="on", trusted_proxies="127.0.0.1, 127.0.0.2")
    cases = [
        ("no header", None, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("malformed v1", None, b"PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n"),
        ("v2 with a bad version", None, proxy_v2("10.0.0.1").replace(b"\x21\x11", b"\x31\x11", 1)),
        ("untrusted peer", "127.0.0.9", proxy_v2("10.0.0.1")),
    ]
    for n, (what, source, data) in enumerate(cases, 1):
        c = proxied(srv.port, data, source)
        assert c.expect_eof(timeout=3) == b"", what
        wait_until(lambda: refused_total(srv) == n, what=f"{what} counted")
    # From a trusted second address it works.
    ok = proxied(srv.port, proxy_v2("10.0.0.1"), "127.0.0.2")
    ok.handshake()


def test_partial_header_waits_then_times_out(server_factory):
    srv = server_factory(proxy_protocol="on", trusted_proxies="127.0.0.1", handshake_timeout="1s")
    hdr = proxy_v2("10.0.0.3")
    c = proxied(srv.port, hdr[:10])
    time.sleep(0.3)
    c.send(hdr[10:] + b"GET /echo")  # the rest, and the start of the request
    c.send(b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert c.read_response().status == 101
    stalled = proxied(srv.port, hdr[:20])
    t0 = time.monotonic()
    assert stalled.expect_eof(timeout=4) == b""
    assert time.monotonic() - t0 < 3


def test_proxy_header_then_tls(server_factory, pki):  # noqa: F811
    srv = tls_server(server_factory, pki, tls_proxy_protocol="on", trusted_proxies="127.0.0.1",
                     max_connections_per_ip=1)
    a = tls_raw(srv.tls_port, pki["ca"], preamble=proxy_v2("192.0.2.10"))
    a.handshake()
    a.echo(OP_TEXT, b"through PROXY then TLS")
    # Same client address: over the limit; a TLS client cannot be told
    # before its handshake, so it is closed.
    with pytest.raises(TLS_CLOSED):
        tls_raw(srv.tls_port, pki["ca"], preamble=proxy_v2("192.0.2.10")).handshake()
    wait_until(lambda: srv.rejected("ip_connections") == 1, what="the refusal counted")
    c = tls_raw(srv.tls_port, pki["ca"], preamble=proxy_v2("192.0.2.11"))
    c.handshake()
    # The plain listener expects no header here: proxy_protocol is off.
    RawWS(srv.port).handshake()


# -- a real haproxy in front --------------------------------------------------

HAPROXY = "/usr/sbin/haproxy"


@pytest.fixture
def haproxy(tmp_path):
    procs = []

    def start(routes):
        """routes: [(front_port, back_port)]; haproxy listens on 127.0.0.3."""
        cfg = ["global", "  maxconn 1000", "defaults", "  mode tcp", "  timeout connect 2s",
               "  timeout client 30s", "  timeout server 30s"]
        for i, (front, back) in enumerate(routes):
            cfg += [f"listen l{i}", f"  bind 127.0.0.3:{front}",
                    f"  server wsmill 127.0.0.1:{back} send-proxy-v2 source 127.0.0.1"]
        path = os.path.join(str(tmp_path), "haproxy.cfg")
        with open(path, "w") as f:
            f.write("\n".join(cfg) + "\n")
        p = subprocess.Popen([HAPROXY, "-db", "-f", path], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(str(tmp_path), "haproxy.log"), "w"))
        procs.append(p)
        for front, _ in routes:
            wait_until(lambda: connect(front, host="127.0.0.3").close() or True, what="haproxy listening")
        return p

    if not os.access(HAPROXY, os.X_OK):
        pytest.fail("haproxy is not installed (scripts/test.sh installs the Debian package)")
    yield start
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def via(front, source):
    s = connect(front, source, host="127.0.0.3")
    return as_raw(s)


def test_haproxy_send_proxy_v2_limits_original_addresses(server_factory, pki, haproxy):  # noqa: F811
    srv = tls_server(server_factory, pki, proxy_protocol="on", tls_proxy_protocol="on",
                     trusted_proxies="127.0.0.1", max_connections_per_ip=2)
    plain_front, tls_front = free_port(), free_port()
    haproxy([(plain_front, srv.port), (tls_front, srv.tls_port)])
    held = []
    for _ in range(2):
        c = via(plain_front, "127.0.0.10")
        c.handshake()
        held.append(c)
    third = via(plain_front, "127.0.0.10")
    third.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert third.read_response().status == 429
    other = via(plain_front, "127.0.0.11")  # same balancer, another client
    other.handshake()
    other.echo(OP_TEXT, b"through haproxy")
    # wss through haproxy (TCP mode, TLS ends in wsmill): the same counts.
    ctx_client = lambda src: tls_raw(tls_front, pki["ca"], source=src, host="127.0.0.3")  # noqa: E731
    with pytest.raises(TLS_CLOSED):  # 127.0.0.10 already holds two
        ctx_client("127.0.0.10").handshake()
    w = ctx_client("127.0.0.12")
    w.handshake()
    w.echo(OP_TEXT, b"wss through haproxy")
    assert srv.rejected("ip_connections") == 2
    assert refused_total(srv) == 0
    # Straight to wsmill from an address outside trusted_proxies: refused.
    assert proxied(srv.port, b"GET / HTTP/1.1\r\n\r\n", "127.0.0.13").expect_eof(timeout=3) == b""
    wait_until(lambda: refused_total(srv) == 1, what="the untrusted peer counted")


def test_tls_and_proxy_counters_in_metrics(server_factory, pki):  # noqa: F811
    from test_metrics import metrics, samples
    srv = tls_server(server_factory, pki, proxy_protocol="on", trusted_proxies="127.0.0.1")
    ok = tls_raw(srv.tls_port, pki["ca"])
    ok.handshake()
    bad = RawWS(srv.tls_port)
    bad.send(b"GET / HTTP/1.1\r\n\r\n")
    bad.expect_eof(timeout=3)
    assert proxied(srv.port, b"GET / HTTP/1.1\r\n\r\n").expect_eof(timeout=3) == b""
    wait_until(lambda: refused_total(srv) == 1 and tls_total(srv, "tls_handshake_errors") == 1,
               what="the counters")
    m = samples(metrics(srv))
    assert m['wsmill_tls_handshakes_total{outcome="ok"}'] == tls_total(srv, "tls_handshakes") == 1
    assert m['wsmill_tls_handshakes_total{outcome="failed"}'] == 1
    assert m["wsmill_proxy_refused_total"] == 1
