"""Reloads that start a new generation of workers (issue 7), with real
clients throughout: a steady churn of connect-handshake-echo-close cycles
must see no failed handshake and no reset while workers go 4 -> 2 -> 4 ...;
connections opened before the first reload keep echoing until drain_timeout
and then get 1001; a broken file keeps the old configuration; a socket
retired by a shrink hands its queue to the others (tcp_migrate_req)."""
import asyncio
import collections
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import websockets

from conftest import free_port
from rawws import OP_CLOSE, OP_TEXT, Closed, build_request, open_ws, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "wsmill.sh")


class Churn:
    """Real clients in a background thread: `concurrency` loops of connect,
    handshake, one echo, clean close, until stop(). Every failure is
    recorded by cause; nothing is retried."""

    def __init__(self, port, concurrency=6, timeout=15.0):
        self.url = f"ws://127.0.0.1:{port}/echo"
        self.concurrency = concurrency
        self.timeout = timeout
        self.attempts = 0
        self.ok = 0
        self.failures = collections.Counter()
        self.examples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=60):
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "churn clients did not stop"

    def _fail(self, stage, exc):
        cause = f"{stage}: {type(exc).__name__}"
        if exc.__cause__ is not None:
            cause += f" ({type(exc.__cause__).__name__})"
        self.failures[cause] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {cause}: "
                                 f"{exc}; {exc.__cause__!r}")

    async def _one(self, n):
        payload = f"churn {n}"
        stage = "handshake"
        try:
            ws = await websockets.connect(self.url, open_timeout=self.timeout, close_timeout=self.timeout,
                                          ping_interval=None, compression=None)
        except Exception as e:  # every way a handshake can fail counts
            self._fail(stage, e)
            return
        try:
            stage = "echo"
            await ws.send(payload)
            got = await asyncio.wait_for(ws.recv(), self.timeout)
            if got != payload:
                raise AssertionError(f"echo mismatch {got!r}")
            stage = "close"
            await ws.close()
            if ws.close_code != 1000:
                raise AssertionError(f"close code {ws.close_code}")
            self.ok += 1
        except Exception as e:
            self._fail(stage, e)
            await ws.close()

    async def _loop(self, k):
        n = 0
        while not self._stop.is_set():
            self.attempts += 1
            await self._one(f"{k}.{n}")
            n += 1

    def _run(self):
        async def main():
            await asyncio.gather(*(self._loop(k) for k in range(self.concurrency)))
        asyncio.run(main())

    def wait_ok(self, n, timeout=30):
        wait_until(lambda: self.ok >= n or self.failures, timeout=timeout, what=f"{n} churn cycles")

    def summary(self):
        return f"{self.attempts} attempted, {self.ok} ok, failures {dict(self.failures)} {self.examples}"


def reload_and_wait(srv, timeout=30, **changes):
    """Writes the changes, sends SIGHUP and waits until the reload was
    handled and (when it started a generation) the new one serves.
    Returns last_reload."""
    seq = srv.status()["last_reload"]["seq"]
    srv.write_conf(**changes)
    srv.signal(signal.SIGHUP)
    r = wait_until(lambda: (lambda lr: lr if lr["seq"] > seq and (not lr["ok"] or lr["serving"]) else None)(
        srv.status()["last_reload"]), timeout=timeout, what="the reload to be handled and serving")
    return r


def newest_active(st):
    gen = st["generation"]
    mine = [w for w in st["workers"] if w["generation"] == gen]
    return mine and all(w["state"] == "active" for w in mine) and mine


class Established:
    """A raw client opened before the reloads: echoes on demand and records
    when its close frame arrives."""

    def __init__(self, port):
        self.c = open_ws(port, timeout=10)
        self.closed_at = None
        self.close_code = None
        self.echoes = 0

    def echo(self, i):
        if self.closed_at is not None:
            return
        payload = f"established {i}".encode()
        self.c.send_frame(OP_TEXT, payload)
        f = self.c.recv_frame(10)
        while f.opcode not in (OP_TEXT, OP_CLOSE):  # skip pings
            f = self.c.recv_frame(10)
        if f.opcode == OP_CLOSE:
            self.closed_at = time.monotonic()
            self.close_code = f.close_code
            self.c.send_close(1001)
            return
        assert f.payload == payload, f"echo mismatch {f.payload!r}"
        self.echoes += 1

    def wait_close(self, timeout):
        if self.closed_at is None:
            f = self.c.expect_close((1001,), timeout=timeout)
            self.closed_at = time.monotonic()
            self.close_code = f.close_code
            self.c.send_close(1001)


def test_ten_reloads_under_churn(server_factory, clients):
    drain = 5.0
    srv = server_factory(workers=4, drain_timeout=f"{int(drain)}s")
    churn = Churn(srv.port).start()
    try:
        churn.wait_ok(30)
        est = [Established(srv.port) for _ in range(8)]
        clients.extend(e.c for e in est)
        wait_until(lambda: srv.status()["connections"] >= 8, what="8 established connections")
        first_gen_pids = {w["pid"] for w in srv.status()["workers"]}
        t_first = time.monotonic()
        serving_ms = []
        for i in range(10):
            t0 = time.monotonic()
            r = reload_and_wait(srv, workers=2 if i % 2 == 0 else 4)
            assert r["ok"] == 1 and r["changed"] == "workers", r
            serving_ms.append(r["serving_ms"])
            st = srv.status()
            srv.known_worker_pids.update(w["pid"] for w in st["workers"])
            assert len(newest_active(st)) == (2 if i % 2 == 0 else 4), st["workers"]
            for e in est:
                e.echo(i)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
        for e in est:
            e.wait_close(timeout=drain + 20)
    finally:
        churn.stop()
    st = srv.status()
    print(f"\nreload churn: {churn.summary()}; signal->serving ms {serving_ms}; retired {st['retired']};"
          f" established echoes {[e.echoes for e in est]}, closed "
          f"{[round(e.closed_at - t_first, 2) for e in est]} s after the first reload")
    assert not churn.failures, churn.summary()
    assert churn.ok >= 100, churn.summary()
    for e in est:
        assert e.close_code == 1001
        # retired at the first switch, which is after its signal: the
        # 1001 cannot come before drain_timeout has passed since then
        assert e.closed_at - t_first >= drain - 0.25, f"1001 after {e.closed_at - t_first:.2f}s"
        assert e.echoes >= 1
    assert not first_gen_pids & {w["pid"] for w in st["workers"]}, "a first-generation worker survived"
    assert st["generation"] == 11 and len(newest_active(st)) == 4
    assert st["retired"]["closed_at_deadline"] >= 8, st["retired"]


BROKEN = ["workers = banana", "no_such_key = 1", "this line is not a setting"]


def test_broken_reload_keeps_old_config_under_churn(server_factory):
    srv = server_factory(workers=2)
    churn = Churn(srv.port, concurrency=4).start()
    try:
        churn.wait_ok(20)
        gen0 = srv.status()["generation"]
        for bad in BROKEN:
            with open(srv.conf_path, "a") as f:
                f.write(bad + "\n")
            seq = srv.status()["last_reload"]["seq"]
            srv.signal(signal.SIGHUP)
            r = wait_until(lambda: (lambda lr: lr if lr["seq"] > seq else None)(srv.status()["last_reload"]),
                           what="the broken reload to be handled")
            assert r["ok"] == 0 and os.path.basename(srv.conf_path) in r["error"], r
            srv.write_conf()  # back to the good file
        # a file that parses but whose new address cannot be bound
        r = reload_and_wait(srv, workers=3, listen=f"192.0.2.1:{srv.port}")
        assert r["ok"] == 0 and "192.0.2.1" in r["error"], r
        st = srv.status()
        assert st["generation"] == gen0 and len(newest_active(st)) == 2, st
        n = churn.ok
        churn.wait_ok(n + 20)
    finally:
        churn.stop()
    assert not churn.failures, churn.summary()
    assert srv.proc.poll() is None
    srv.write_conf(workers=2, listen=f"127.0.0.1:{srv.port}")
    r = reload_and_wait(srv, workers=3)
    assert r["ok"] == 1 and r["generation"] == gen0 + 1, r


def test_listen_address_change(server_factory, clients):
    srv = server_factory(workers=2, drain_timeout="20s")
    old = open_ws(srv.port)
    clients.append(old)
    old_port = srv.port
    new_port = srv.port
    while new_port == old_port:
        new_port = free_port()  # this pass's range: a port 0 bind may hand the other pass the same one
    r = reload_and_wait(srv, listen=f"127.0.0.1:{new_port}")
    assert r["ok"] == 1 and "listen" in r["changed"], r
    srv.port = new_port
    with open_ws(new_port) as c:
        c.echo(OP_TEXT, "on the new address")
    old.echo(OP_TEXT, "still served by the old generation")

    def old_refused():
        try:
            socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_until(old_refused, what="the old address to be closed")
    old.echo(OP_TEXT, "and after its socket closed")


def test_shrink_migrates_queued_connections(server_factory):
    """Connections waiting in the queue of a socket the shrink retires are
    handed to the sockets that stay (net.ipv4.tcp_migrate_req), not reset."""
    srv = server_factory(workers=4, drain_timeout="5s")
    st = srv.status()
    assert st["tcp_migrate_req"] == 1, "the master could not enable net.ipv4.tcp_migrate_req"
    victim = [w for w in st["workers"] if w["socket"] == 3][0]
    os.kill(victim["pid"], signal.SIGSTOP)
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(build_request())
            socks.append(s)

        def answered(s):
            s.setblocking(False)
            try:
                return bool(s.recv(1, socket.MSG_PEEK))
            except BlockingIOError:
                return False
            finally:
                s.setblocking(True)
        # the three running workers answer their share; the rest waits on socket 3
        wait_until(lambda: srv.total("handshakes") + 0 >= 1, what="some handshakes")
        time.sleep(1.0)
        queued = [s for s in socks if not answered(s)]
        assert queued, "no connection landed on the stopped worker's socket"
        r = reload_and_wait(srv, workers=2)
        assert r["ok"] == 1
        # the stopped worker holds the last reference to socket 3: its
        # death closes the socket and the kernel migrates the queue
        os.kill(victim["pid"], signal.SIGKILL)
        for s in queued:
            s.settimeout(10)
            head = s.recv(12)
            assert head.startswith(b"HTTP/1.1 101"), f"queued connection got {head!r}"
    finally:
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except OSError:
            pass
        for s in socks:
            s.close()
    print(f"\n{len(queued)} of 40 connections were queued on the retired socket; all got 101")


def run_script(srv, *args, env=None, timeout=60):
    return subprocess.run([SCRIPT, *args, "-c", srv.conf_path], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_script_reload(server_factory, clients):
    srv = server_factory(workers=2, drain_timeout="20s")
    for _ in range(3):
        clients.append(open_ws(srv.port))
    srv.write_conf(workers=3)
    p = run_script(srv, "reload")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "workers" in p.stdout and "draining 3 connections" in p.stdout, p.stdout
    st = srv.status()
    assert len(newest_active(st)) == 3
    srv.known_worker_pids.update(w["pid"] for w in st["workers"])
    for c in clients:
        c.echo(OP_TEXT, "after the script's reload")
    with open(srv.conf_path, "a") as f:
        f.write("max_message_size = banana\n")
    p = run_script(srv, "reload")
    assert p.returncode != 0 and "banana" in p.stdout + p.stderr, p.stdout + p.stderr
