"""broker = redis: three wsmill nodes (two workers each) sharing one real
redis-server, started here on a free port and stopped by its pid. A publish
on node 1 (publish API and client publish) reaches subscribers on every node
exactly once and in order; Redis subscriptions follow local subscribers;
Redis killed and restarted mid-run: 503 meanwhile, nodes recover and
deliver again; a stalled Redis (SIGSTOP) is found by PING and recovered from; a wrong password or address is logged and fails `check`."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, ROOT, free_port
from rawws import OP_TEXT, Closed, open_ws, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# -- a real redis-server and a tiny RESP client ---------------------------------

def resp_command(port, *args, password=None, timeout=2.0):
    """Sends one command (after AUTH when password is set) and returns the
    decoded reply: str, int, list, or an Exception instance for -ERR."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        cmds = ([("AUTH", password)] if password else []) + [args]
        for cmd in cmds:
            out = b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
        replies = [_read_reply(f) for _ in cmds]
        return replies[-1]


def _read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return Exception(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        return [_read_reply(f) for _ in range(int(rest))]
    raise ValueError(f"unexpected RESP line {line!r}")


class Redis:
    def __init__(self, tmpdir, password=None):
        self.dir = tmpdir
        self.port = free_port()
        self.password = password
        self.proc = None

    def start(self, timeout=10):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--logfile", ""]
        if self.password:
            args += ["--requirepass", self.password]
        self.log = open(os.path.join(self.dir, "redis.log"), "a")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is None and self.cmd("PING") == "PONG", timeout=timeout,
                   what=f"redis-server on port {self.port} to answer PING")
        return self

    def cmd(self, *args):
        return resp_command(self.port, *args, password=self.password)

    def numsub(self, name, prefix="wsmill:"):
        r = self.cmd("PUBSUB", "NUMSUB", prefix + name)
        return int(r[1])

    def channels(self, pattern="wsmill:*"):
        return sorted(self.cmd("PUBSUB", "CHANNELS", pattern))

    def kill(self):
        """SIGKILL by pid: an outage, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def redis():
    """A redis-server of the test's own (no persistence), stopped by pid."""
    assert os.access(REDIS_SERVER, os.X_OK), "redis-server is not installed (scripts/test.sh installs it)"
    d = tempfile.TemporaryDirectory(prefix="wsmill-redis-")
    r = Redis(d.name).start()
    yield r
    r.kill()
    d.cleanup()


# -- helpers ---------------------------------------------------------------------

def redis_node(server_factory, redis, **overrides):
    cfg = {"workers": 2, "broker": "redis", "redis_url": f"redis://127.0.0.1:{redis.port}",
           "client_publish": "on", "max_connections": 1000}
    cfg.update(overrides)
    return server_factory(**cfg)


def broker(srv):
    return srv.status()["broker"]


def wait_connected(srv, timeout=15):
    wait_until(lambda: broker(srv)["connection"] == "connected", timeout=timeout,
               what=f"node {srv.port}: broker connected (log: {srv.log()[-600:]})")


def api_publish(srv, chan, body, timeout=5):
    """POST /pub/chan on srv's publish API; returns (status, parsed JSON)."""
    host, port = srv.settings["publish_listen"].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request("POST", f"/pub/{chan}", body=body)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        c.close()


def recv_texts(ws, n, timeout=15):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        op, data = ws.recv_message(timeout=max(0.01, deadline - time.monotonic()))
        assert op == OP_TEXT
        out.append(data.decode())
    return out


def handshakes(srv):
    return {w["id"]: w["handshakes"] for w in srv.status()["workers"]}


def open_on(srv, path, clients):
    """Opens path on srv; returns (ws, id of the worker that took it)."""
    before = handshakes(srv)
    ws = open_ws(srv.port, path)
    clients.append(ws)
    now = wait_until(lambda: (lambda h: [i for i in h if h[i] != before.get(i)])(handshakes(srv)),
                     what="a worker's handshakes counter to move")
    assert len(now) == 1
    return ws, now[0]


class Subs(list):
    """(node index, path, ws, worker id) of every subscriber opened."""

    def expected_numsub(self, name):
        """Redis counts one subscriber per worker with local subscribers of name."""
        return len({(i, w) for i, p, _, w in self if name in p[len("/ch/"):].split(",")})


def subscribe_everywhere(nodes, clients, paths):
    subs = Subs()
    for i, n in enumerate(nodes):
        for p in paths:
            ws, wid = open_on(n, p, clients)
            subs.append((i, p, ws, wid))
    return subs


def wait_numsub(redis, subs, name, timeout=15):
    want = subs.expected_numsub(name)
    wait_until(lambda: redis.numsub(name) == want, timeout=timeout,
               what=f"PUBSUB NUMSUB wsmill:{name} to reach {want} (workers with subscribers of {name})")


# -- tests -----------------------------------------------------------------------

def test_three_nodes_exactly_once_in_order(server_factory, redis, clients):
    nodes = [redis_node(server_factory, redis) for _ in range(3)]
    for n in nodes:
        wait_connected(n)
    # Several connections per node, so both workers are likely used; two of
    # them are in both channels, listed in either order.
    paths = ["/ch/news", "/ch/news", "/ch/news,sport", "/ch/sport,news", "/ch/news"]
    subs = subscribe_everywhere(nodes, clients, paths)
    wait_numsub(redis, subs, "news")
    wait_numsub(redis, subs, "sport")

    # Publish API on node 1: to news, then to both channels at once.
    for k in range(10):
        st, body = api_publish(nodes[0], "news", f"api-{k}")
        assert st == 202, body
    for k in range(5):
        st, body = api_publish(nodes[0], "news,sport", f"both-{k}")
        assert st == 202 and body["channels"] == ["news", "sport"], body
    want = [f"api-{k}" for k in range(10)] + [f"both-{k}" for k in range(5)]
    for i, p, ws, _ in subs:
        assert recv_texts(ws, len(want)) == want, f"node {i + 1} {p}"

    # A client on node 1 in /ch/news,sport publishes: one copy to everyone.
    sender, wid = open_on(nodes[0], "/ch/sport,news", clients)
    subs.append((0, "/ch/sport,news", sender, wid))
    wait_numsub(redis, subs, "sport")
    wait_numsub(redis, subs, "news")
    for k in range(5):
        sender.send_frame(OP_TEXT, f"client-{k}".encode())
    want = [f"client-{k}" for k in range(5)]
    for i, p, ws, _ in subs:
        assert recv_texts(ws, len(want)) == want, f"node {i + 1} {p}"

    # Nothing more is on its way: the next message everyone sees is a marker.
    st, _ = api_publish(nodes[2], "news,sport", "marker")
    assert st == 202
    for i, p, ws, _ in subs:
        assert recv_texts(ws, 1) == ["marker"], f"node {i + 1} {p}: a duplicate came before the marker"

    sent = sum(n.total("redis_publishes") for n in nodes)
    assert sent == 10 + 5 * 2 + 5 * 2 + 2, f"one PUBLISH per channel of each message, got {sent}"
    b = broker(nodes[0])
    assert b["kind"] == "redis" and b["lost"] == 0 and b["reconnects"] == 0, b


def test_subscriptions_follow_subscribers(server_factory, redis, clients):
    a = redis_node(server_factory, redis)
    b = redis_node(server_factory, redis, redis_prefix="other:")
    wait_connected(a)
    wait_connected(b)
    assert redis.channels("*") == []
    subs = Subs((0, "/ch/room1,room2", *open_on(a, "/ch/room1,room2", clients)) for _ in range(4))
    first = [ws for _, _, ws, _ in subs]
    wait_numsub(redis, subs, "room1")
    wait_numsub(redis, subs, "room2")
    wait_until(lambda: redis.channels() == ["wsmill:room1", "wsmill:room2"], what="PUBSUB CHANNELS wsmill:*")
    other = open_ws(b.port, "/ch/room1")
    clients.append(other)
    wait_until(lambda: redis.channels("other:*") == ["other:room1"], what="node b under its own prefix")
    assert redis.numsub("room1") == subs.expected_numsub("room1"), "node b's prefix keeps it apart"

    # The last subscriber of room1 on a worker leaves: that worker unsubscribes.
    for ws in first[:3]:
        ws.close()
    del subs[:3]
    wait_until(lambda: redis.numsub("room1") == 1 and redis.numsub("room2") == 1, what="one worker left")
    first[3].close()
    wait_until(lambda: redis.channels() == [], what="node a to unsubscribe from everything")
    assert a.total("channels") == 0
    wait_until(lambda: redis.channels("other:*") == ["other:room1"], what="node b still subscribed")
    # And back: a new subscriber subscribes again.
    again = open_ws(a.port, "/ch/room1")
    clients.append(again)
    wait_until(lambda: redis.numsub("room1") == 1, what="room1 subscribed again")
    st, _ = api_publish(a, "room1", "hello")
    assert st == 202
    assert recv_texts(again, 1) == ["hello"]


def test_redis_outage_and_recovery(server_factory, redis, clients):
    nodes = [redis_node(server_factory, redis) for _ in range(3)]
    for n in nodes:
        wait_connected(n)
    pids = [sorted(n.worker_pids()) for n in nodes]
    subs = subscribe_everywhere(nodes, clients, ["/ch/live", "/ch/live,extra", "/ch/live"])
    wait_numsub(redis, subs, "live")
    st, _ = api_publish(nodes[0], "live", "before")
    assert st == 202
    for i, p, ws, _ in subs:
        assert recv_texts(ws, 1) == ["before"], f"node {i + 1} {p}"
    talker = open_ws(nodes[0].port, "/ch/chat")
    clients.append(talker)

    redis.kill()
    for n in nodes:
        wait_until(lambda: broker(n)["connection"] == "down", what="broker state down")
    # Publish API: 503 naming the broker, on every node and worker we reach.
    for n in nodes:
        for _ in range(3):
            st, body = api_publish(n, "live", "during")
            assert st == 503, body
            assert body.get("broker") == "redis" and "broker unavailable" in body["error"], body
            assert f"127.0.0.1:{redis.port}" in body["error"], body
    # A client publish is refused with 1013, not queued.
    talker.send_frame(OP_TEXT, b"during")
    talker.expect_close(1013, timeout=10)
    # The nodes keep serving: subscribers stay open, new connections upgrade.
    for i, p, ws, _ in subs:
        assert ws.is_open(), f"node {i + 1} {p} was closed during the outage"
    for n in nodes:
        with open_ws(n.port, "/echo") as e:
            e.echo(OP_TEXT, b"still here")
    assert sum(broker(n)["lost"] for n in nodes) >= 10

    # Same port again: every node reconnects and subscribes again.
    redis.start()
    for n in nodes:
        wait_connected(n, timeout=20)
    wait_numsub(redis, subs, "live")
    wait_numsub(redis, subs, "extra")
    for k, n in enumerate(nodes):
        st, body = api_publish(n, "live", f"after-{k}")
        assert st == 202, body
    for i, p, ws, _ in subs:
        got = recv_texts(ws, 3)
        assert sorted(got) == ["after-0", "after-1", "after-2"], f"node {i + 1} {p}: {got}"
    for n, before in zip(nodes, pids):
        assert sorted(n.worker_pids()) == before, "a worker died during the outage"
        b = broker(n)
        assert b["reconnects"] >= 4, b  # two connections per worker, two workers
        assert "reconnected" in n.log()


def test_redis_stalled(server_factory, redis, clients):
    """A Redis that stops answering but keeps its connections open (SIGSTOP):
    the unanswered PING takes the broker down (503), SIGCONT brings it back."""
    node = redis_node(server_factory, redis)
    wait_connected(node)
    subs = Subs([(0, "/ch/s", *open_on(node, "/ch/s", clients))])
    wait_numsub(redis, subs, "s")
    os.kill(redis.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_until(lambda: broker(node)["connection"] == "down", timeout=15, what="a stalled Redis to count as down")
        took = time.monotonic() - t0
        st, body = api_publish(node, "s", "during")
        assert st == 503 and "broker unavailable" in body["error"], body
        assert "no answer to PING" in node.log()
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
    assert took < 10, f"down only after {took:.1f} s"
    wait_connected(node, timeout=20)
    wait_numsub(redis, subs, "s")
    st, _ = api_publish(node, "s", "after")
    assert st == 202
    assert recv_texts(subs[0][2], 1) == ["after"]


def check(srv):
    """Runs `wsmill check` on srv's config; returns (exit status, output)."""
    r = subprocess.run([BIN, "check", "-c", srv.conf_path], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_wrong_password_or_address(server_factory, clients):
    d = tempfile.TemporaryDirectory(prefix="wsmill-redis-")
    r = Redis(d.name, password="right-pw").start()
    try:
        good = server_factory(workers=1, broker="redis", max_connections=1000,
                              redis_url=f"redis://:right-pw@127.0.0.1:{r.port}/1")
        wait_connected(good)
        rc, out = check(good)
        assert rc == 0 and f"Redis at 127.0.0.1:{r.port} answers PING" in out, out

        wrong = server_factory(workers=1, broker="redis", max_connections=1000,
                               redis_url=f"redis://:wrong-pw@127.0.0.1:{r.port}")
        wait_until(lambda: "AUTH refused" in wrong.log(), what="the AUTH failure in the log")
        assert "wrong password" in wrong.log() and "wrong-pw" not in wrong.log()
        assert broker(wrong)["connection"] == "down"
        rc, out = check(wrong)
        assert rc == 3 and "refused AUTH" in out and "password in redis_url is wrong" in out, out
        st, body = api_publish(wrong, "x", "m")
        assert st == 503 and "AUTH refused" in body["error"], body

        none = server_factory(workers=1, broker="redis", max_connections=1000,
                              redis_url=f"redis://127.0.0.1:{r.port}")
        wait_until(lambda: "NOAUTH" in none.log(), what="the NOAUTH refusal in the log")
        assert "wants a password" in none.log()
        rc, out = check(none)
        assert rc == 3 and "NOAUTH" in out and "wants a password" in out, out

        dead_port = free_port()
        away = server_factory(workers=1, broker="redis", max_connections=1000,
                              redis_url=f"redis://127.0.0.1:{dead_port}")
        wait_until(lambda: "cannot connect" in away.log(), what="the unreachable address in the log")
        assert f"127.0.0.1:{dead_port}" in away.log()
        rc, out = check(away)
        assert rc == 3 and f"cannot reach Redis at 127.0.0.1:{dead_port}" in out, out
        script = subprocess.run([os.path.join(ROOT, "scripts", "wsmill.sh"), "check", "-c", away.conf_path],
                                capture_output=True, text=True, timeout=120)
        assert script.returncode == 3 and "cannot reach Redis" in script.stderr, script.stdout + script.stderr
        with open_ws(away.port, "/echo") as e:  # serving without its broker
            e.echo(OP_TEXT, b"ok")
    finally:
        r.kill()
        d.cleanup()


def test_bad_redis_url_is_a_config_error(tmp_path):
    conf = tmp_path / "w.conf"
    for url, why in [("http://127.0.0.1:6379", "redis://"), ("redis://h:70000", "port"),
                     ("redis://:@h:1", "empty password")]:
        conf.write_text(f"broker = redis\nredis_url = {url}\nstatus_socket = {tmp_path}/s.sock\n")
        r = subprocess.run([BIN, "check", "-c", str(conf)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "redis_url" in r.stderr and why in r.stderr, (url, r.stderr)
