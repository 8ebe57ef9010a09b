"""wss:// on tls_listen (issue 15): real clients (python3-websockets with an
ssl context trusting a test CA made here with the openssl CLI, ECDSA P-256)
next to plain ws:// on listen; what `check` says about the certificate;
certificate reloads (new handshakes get the new one, established
connections keep going, a bad pair is refused naming the file) with zero
failed handshakes under churn; and bounded answers to bad input: plain HTTP
to the TLS port, a TLS hello to the plain port, garbage and truncated
records."""
import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
import websockets

from conftest import BIN, free_port
from rawws import OP_BINARY, OP_TEXT, Closed, RawWS, wait_until
from tlskit import as_raw, client_context, connect, make_ca, make_leaf, peer_cn, tls_raw


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    ca = make_ca(d)
    a = make_leaf(d, "wsmill-a")
    b = make_leaf(d, "wsmill-b")
    return {"dir": d, "ca": ca, "a": a, "b": b}


def tls_server(server_factory, pki, **kw):
    """A server with listen (ws) and tls_listen (wss) on certificate A,
    served from files cert.pem / key.pem that a test may replace."""
    cert, key = os.path.join(pki["dir"], "cert.pem"), os.path.join(pki["dir"], "key.pem")
    install(pki, "a")
    port = free_port()
    srv = server_factory(tls_listen=f"127.0.0.1:{port}", tls_cert=cert, tls_key=key, **kw)
    srv.tls_port = port
    return srv


def install(pki, which, key_of=None):
    """Puts leaf `which` (with the key of `key_of`, default its own) at
    cert.pem / key.pem, each replaced atomically."""
    d = pki["dir"]
    for src, dst in ((pki[which][0], "cert.pem"), (pki[key_of or which][1], "key.pem")):
        shutil.copyfile(src, os.path.join(d, dst + ".new"))
        os.chmod(os.path.join(d, dst + ".new"), 0o600)
        os.replace(os.path.join(d, dst + ".new"), os.path.join(d, dst))


def tls_total(srv, key):
    st = srv.status()
    return sum(w[key] for w in st["workers"]) + st["exited_workers"][key]


def reload_and_wait(srv):
    seq = srv.status()["last_reload"]["seq"]
    srv.signal(signal.SIGHUP)
    return wait_until(lambda: (lambda r: r if r["seq"] > seq else None)(srv.status()["last_reload"]),
                      what="the reload to finish")


def test_wss_echo_next_to_ws(server_factory, pki):
    srv = tls_server(server_factory, pki)

    async def run():
        ctx = client_context(pki["ca"])
        async with websockets.connect(f"wss://localhost:{srv.tls_port}/echo", ssl=ctx,
                                      max_size=None) as ws:
            for msg in ["hello", "é" * 1000, os.urandom(1 << 20)]:
                await ws.send(msg)
                assert await ws.recv() == msg
        async with websockets.connect(srv.url()) as ws:  # plain ws:// on listen, same server
            await ws.send("plain")
            assert await ws.recv() == "plain"

    asyncio.run(run())
    assert tls_total(srv, "tls_handshakes") >= 1
    assert tls_total(srv, "tls_handshake_errors") == 0


def test_alpn_versions_and_tls13_only(server_factory, pki):
    srv = tls_server(server_factory, pki)
    c = tls_raw(srv.tls_port, pki["ca"])
    assert c.sock.selected_alpn_protocol() == "http/1.1"
    assert c.sock.version() == "TLSv1.3"
    c.handshake()
    c.echo(OP_TEXT, b"alpn")
    c.close()
    # A client offering only h2 goes on without ALPN rather than failing.
    c = tls_raw(srv.tls_port, pki["ca"], ctx=client_context(pki["ca"], alpn=("h2",)))
    assert c.sock.selected_alpn_protocol() is None
    c.close()
    # TLS 1.2 works by default...
    ctx12 = client_context(pki["ca"])
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    c = tls_raw(srv.tls_port, pki["ca"], ctx=ctx12)
    assert c.sock.version() == "TLSv1.2"
    assert "ECDHE" in c.sock.cipher()[0] and "GCM" in c.sock.cipher()[0]
    c.close()
    # ...and is refused by the server once tls_min_version = 1.3.
    srv.write_conf(tls_min_version="1.3")
    assert reload_and_wait(srv)["ok"] == 1
    before = tls_total(srv, "tls_handshake_errors")
    with pytest.raises(ssl.SSLError):
        tls_raw(srv.tls_port, pki["ca"], ctx=ctx12)
    wait_until(lambda: tls_total(srv, "tls_handshake_errors") > before, what="the refused handshake counted")


def test_plain_http_to_the_tls_port(server_factory, pki):
    srv = tls_server(server_factory, pki)
    before = tls_total(srv, "tls_handshake_errors")
    c = RawWS(srv.tls_port)
    c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
    got = c.expect_eof(timeout=3)  # everything until the server closes
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got
    assert f"Content-Length: {len(body)}".encode() in head and body == b"This port speaks TLS: use https:// or wss://\n"
    assert tls_total(srv, "tls_handshake_errors") == before + 1


def client_hello(ca):
    """The bytes of a real ClientHello, made with an in-memory TLS client."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(ca).wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_tls_hello_to_the_plain_port(server_factory, pki):
    srv = tls_server(server_factory, pki)
    c = RawWS(srv.port)
    c.send(client_hello(pki["ca"]))
    r = c.read_response(timeout=3)
    assert r.status == 400
    c.expect_eof(timeout=3)
    with pytest.raises(ssl.SSLError):  # what a TLS client sees: no hang
        client_context(pki["ca"]).wrap_socket(connect(srv.port, timeout=3), server_hostname="localhost")


def test_garbage_and_truncated_records(server_factory, pki):
    srv = tls_server(server_factory, pki, handshake_timeout="1s")
    errors = tls_total(srv, "tls_handshake_errors")
    # A record header claiming 65535 bytes, then junk: an alert and a close.
    c = RawWS(srv.tls_port)
    c.send(b"\x16\x03\x01\xff\xff" + os.urandom(300))
    got = c.expect_eof(timeout=3)
    assert got == b"" or got[0] == 0x15, got  # nothing, or a TLS alert record
    # Random bytes where a record header belongs.
    c = RawWS(srv.tls_port)
    c.send(b"\x99" * 64)
    c.expect_eof(timeout=3)
    wait_until(lambda: tls_total(srv, "tls_handshake_errors") >= errors + 2, what="two failed handshakes")
    # Half a ClientHello, then silence: closed at handshake_timeout.
    timeouts = srv.rejected("timeout")
    hello = client_hello(pki["ca"])
    c = RawWS(srv.tls_port)
    c.send(hello[: len(hello) // 2])
    t0 = time.monotonic()
    c.expect_eof(timeout=4)
    assert time.monotonic() - t0 < 3.5
    wait_until(lambda: srv.rejected("timeout") == timeouts + 1, what="the stalled handshake counted")
    # A client that stops after its hello (never sends Finished) likewise.
    s = connect(srv.tls_port)
    s.sendall(hello)
    as_raw(s).expect_eof(timeout=4)
    # And the server still serves.
    ok = tls_raw(srv.tls_port, pki["ca"])
    ok.handshake()
    ok.echo(OP_BINARY, b"\x00\x01")


def run_check(srv):
    p = subprocess.run([BIN, "check", "-c", srv.conf_path], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def test_check_reports_the_certificate(server_factory, pki):
    srv = tls_server(server_factory, pki)
    rc, out = run_check(srv)
    assert rc != 1, out  # 2 would be the descriptor limits of this machine
    assert "subject: /CN=wsmill-a" in out and "DNS:localhost, IP:127.0.0.1" in out, out
    assert "expires:" in out and "(+1 chain)" in out, out
    assert "warning" not in out.split("configuration OK")[0], out
    # Under 14 days: a warning naming the file.
    cert, key = make_leaf(pki["dir"], "soon", days=5)
    srv.write_conf(tls_cert=cert, tls_key=key)
    rc, out = run_check(srv)
    assert rc != 1 and re.search(f"warning: tls_cert {re.escape(cert)} expires in [45] days \\(under 14\\)", out), out
    # A world-readable key: a warning.
    os.chmod(key, 0o644)
    rc, out = run_check(srv)
    assert rc != 1 and f"tls_key {key} is world-readable (mode 644)" in out, out
    # A key that is not the certificate's: refused, naming both files.
    srv.write_conf(tls_key=pki["b"][1])
    rc, out = run_check(srv)
    assert rc == 1 and f"tls_key {pki['b'][1]} does not match the certificate in tls_cert {cert}" in out, out
    # Not a certificate at all.
    bad = os.path.join(pki["dir"], "garbage.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    srv.write_conf(tls_cert=bad)
    rc, out = run_check(srv)
    assert rc == 1 and f"tls_cert {bad}: no PEM certificate" in out, out


def test_reload_swaps_the_certificate(server_factory, pki):
    srv = tls_server(server_factory, pki)
    old = tls_raw(srv.tls_port, pki["ca"])
    assert peer_cn(old.sock) == "wsmill-a"
    old.handshake()
    install(pki, "b")
    r = reload_and_wait(srv)
    assert r["ok"] == 1, r
    wait_until(lambda: all(w["tls_cert_generation"] == 2 for w in srv.status()["workers"]),
               what="every worker on certificate generation 2")
    new = tls_raw(srv.tls_port, pki["ca"])
    assert peer_cn(new.sock) == "wsmill-b"
    old.echo(OP_TEXT, b"still here")  # untouched
    # A key that does not match: refused naming the file, the old pair stays.
    install(pki, "a", key_of="b")
    r = reload_and_wait(srv)
    assert r["ok"] == 0 and "key.pem does not match the certificate in tls_cert" in r["error"], r
    assert peer_cn(tls_raw(srv.tls_port, pki["ca"]).sock) == "wsmill-b"
    assert all(w["tls_cert_generation"] == 2 for w in srv.status()["workers"])
    assert "does not match" in srv.log()


def test_certificate_reload_under_churn_zero_failures(server_factory, pki):
    srv = tls_server(server_factory, pki, workers=2)
    stop = threading.Event()
    seen, failures, done = set(), [], [0]

    def churn():
        while not stop.is_set():
            try:
                c = tls_raw(srv.tls_port, pki["ca"])
                seen.add(peer_cn(c.sock))
                c.handshake()
                c.echo(OP_TEXT, b"x")
                c.close()
                done[0] += 1
            except Exception as e:  # every failure counts, whatever it is
                failures.append(repr(e))

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            time.sleep(0.4)
            install(pki, "b" if i % 2 == 0 else "a")
            assert reload_and_wait(srv)["ok"] == 1
        time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == [], failures[:5]
    assert seen == {"wsmill-a", "wsmill-b"} and done[0] > 20, (seen, done)
    assert tls_total(srv, "tls_handshake_errors") == 0


def test_tickets_resume_on_any_worker_and_across_reloads(server_factory, pki):
    srv = tls_server(server_factory, pki, workers=4)
    ctx = client_context(pki["ca"])
    first = tls_raw(srv.tls_port, pki["ca"], ctx=ctx)
    first.handshake()
    first.echo(OP_TEXT, b"ticket")  # TLS 1.3 tickets arrive after the handshake
    session = first.sock.session
    first.close()
    assert session is not None and session.has_ticket

    def resumed(n):
        out = []
        for _ in range(n):
            s = ctx.wrap_socket(connect(srv.tls_port), server_hostname="localhost", session=session)
            out.append(s.session_reused)
            s.close()
        return out

    # SO_REUSEPORT spreads these over the four workers: every one resumes.
    assert resumed(12) == [True] * 12
    install(pki, "b")
    assert reload_and_wait(srv)["ok"] == 1
    wait_until(lambda: all(w["tls_cert_generation"] == 2 for w in srv.status()["workers"]),
               what="every worker on the new certificate")
    assert resumed(4) == [True] * 4  # the ticket keys outlive a certificate reload


def test_channel_fanout_to_wss_and_ws_subscribers(server_factory, pki):
    """A message reaches TLS and plain subscribers alike, in order, each
    encrypted for its own connection (client publish from a wss client)."""
    srv = tls_server(server_factory, pki, client_publish="on", workers=2)

    async def run():
        ctx = client_context(pki["ca"])
        subs = [await websockets.connect(f"wss://localhost:{srv.tls_port}/ch/room", ssl=ctx) for _ in range(3)]
        subs.append(await websockets.connect(srv.url("/ch/room")))
        pub = await websockets.connect(f"wss://localhost:{srv.tls_port}/ch/room", ssl=ctx)
        await asyncio.sleep(0.2)
        msgs = [f"m{i}" * (1 + i * 50) for i in range(40)]  # up to ~6 KB: several per record
        for m in msgs:
            await pub.send(m)
        for s in subs:
            got = [await asyncio.wait_for(s.recv(), 10) for _ in msgs]
            assert got == msgs
        got = [await asyncio.wait_for(pub.recv(), 10) for _ in msgs]  # the publisher is a subscriber too
        assert got == msgs
        for s in subs + [pub]:
            await s.close()

    asyncio.run(run())


def test_graceful_stop_closes_wss_with_1001(server_factory, pki):
    srv = tls_server(server_factory, pki, drain_timeout="5s")
    c = tls_raw(srv.tls_port, pki["ca"])
    c.handshake()
    c.echo(OP_TEXT, b"before the stop")
    srv.signal(signal.SIGTERM)
    c.expect_close(1001, timeout=5)
    c.send_close(1001)
    c.expect_eof(timeout=5)  # after close_notify and FIN
    assert srv.proc.wait(10) == 0


def test_tls_sockets_follow_worker_generations_and_respawns(server_factory, pki):
    """The master holds a tls_listen socket for each listening socket: a
    new generation (more or fewer workers) and a respawned worker serve
    wss with no refused connection."""
    srv = tls_server(server_factory, pki, workers=2)

    def all_echo(n=12):
        for _ in range(n):
            c = tls_raw(srv.tls_port, pki["ca"])
            c.handshake()
            c.echo(OP_TEXT, b"x")
            c.close()

    all_echo()
    for workers in (3, 1):
        srv.write_conf(workers=workers)
        assert reload_and_wait(srv)["ok"] == 1
        wait_until(lambda: len([w for w in srv.status()["workers"] if w["state"] == "active"]) == workers
                   and srv.status()["switching"] == 0, what=f"{workers} active workers")
        all_echo()
    pid = srv.worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: srv.status()["workers"][0]["pid"] not in (0, pid)
               and srv.status()["workers"][0]["state"] == "active", what="the worker respawned")
    all_echo()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs the master to run as root")
def test_workers_as_nobody_never_open_the_key(server_factory, pki):
    """The key is root's (0600); workers run as nobody, serve wss, and take
    a renewed certificate on reload: the master reads the files for them."""
    import pwd
    nobody = pwd.getpwnam("nobody").pw_uid
    srv = tls_server(server_factory, pki, user="nobody", workers=2)
    for pid in srv.worker_pids():
        with open(f"/proc/{pid}/status") as f:
            uid = [int(x) for x in next(l for l in f if l.startswith("Uid:")).split()[1:]]
        assert uid == [nobody] * 4
    key = os.path.join(pki["dir"], "key.pem")
    assert os.stat(key).st_uid == 0 and os.stat(key).st_mode & 0o077 == 0
    c = tls_raw(srv.tls_port, pki["ca"])
    c.handshake()
    c.echo(OP_TEXT, b"as nobody")
    install(pki, "b")
    assert reload_and_wait(srv)["ok"] == 1
    wait_until(lambda: peer_cn(tls_raw(srv.tls_port, pki["ca"]).sock) == "wsmill-b", what="the new certificate")


def test_large_echoes_to_a_slow_reader_arrive_intact(server_factory, pki):
    """Records the socket refuses are kept and retried with the same bytes
    (OpenSSL's rule), then the queue follows: a reader that drains slowly
    through a small receive buffer gets every byte, in order."""
    srv = tls_server(server_factory, pki, max_message_size="16M", max_backpressure="64M")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.tls_port))
    c = as_raw(client_context(pki["ca"]).wrap_socket(s, server_hostname="localhost"), timeout=30)
    c.handshake()
    msgs = [os.urandom(n) for n in (3 << 20, 100, 70000, 1 << 20)]
    for m in msgs:
        c.send_binary(m)
    time.sleep(0.5)  # let the server fill the socket and keep what it refuses
    for m in msgs:
        assert c.recv_message(timeout=30) == (OP_BINARY, m)
    c.echo(OP_TEXT, b"and still in step")
