"""The HTTP publish API (worker/pubapi.c): POST /pub/NAME on publish_listen
reaches WebSocket subscribers of /ch/NAME on every worker, exactly once and
in order; batches, binary messages, several channels; every error status
with a JSON body; chunked bodies, pipelining, Expect: 100-continue, HTTP/1.0,
the request timeout; and publish_listen = "" listening nowhere."""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

from conftest import free_port
from rawws import OP_BINARY, OP_TEXT, Closed, open_ws, wait_until


# -- helpers ------------------------------------------------------------------

def pub_server(server_factory, **overrides):
    cfg = {"workers": 2, "publish_listen": f"127.0.0.1:{free_port()}"}
    cfg.update(overrides)
    srv = server_factory(**cfg)
    srv.pub_port = int(cfg["publish_listen"].rsplit(":", 1)[1])
    return srv


def subscribers(srv, path, n, clients, limit=40):
    """At least n subscribers of path, more (up to limit) until both
    workers hold some, as the status socket's per-worker connections say."""
    subs = []
    while True:
        subs.append(open_ws(srv.port, path=path, timeout=10))
        clients.append(subs[-1])
        busy = [w["connections"] for w in srv.status()["workers"]]
        if len(subs) >= n and all(busy):
            return subs
        assert len(subs) < limit, f"{len(subs)} subscribers all landed on one worker: {busy}"


def messages(sub, n, timeout=15):
    return [sub.recv_message(timeout) for _ in range(n)]


def assert_nothing_more(sub, wait=0.3):
    time.sleep(wait)
    assert not sub.buf, f"unexpected bytes after the expected messages: {bytes(sub.buf[:60])!r}"
    assert sub.is_open(), "subscriber got more (or was closed) after the expected messages"


class Http:
    """One raw HTTP connection to the publish API: send any bytes, read
    whole responses (head + Content-Length body), in order."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("response timed out")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def response(self, timeout=None):
        """Returns (status, headers with lower-case names, body bytes)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return status, headers, b""
        assert "content-length" in headers, f"{status} response without Content-Length: {head!r}"
        n = int(headers["content-length"])
        while len(self.buf) < n:
            self._fill(deadline)
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def expect_eof(self, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except (Closed, ConnectionResetError):
                return
            assert not self.buf.strip(), f"bytes after the last response: {self.buf[:80]!r}"

    def close(self):
        self.sock.close()


def post(path, body=b"", headers=(), http="HTTP/1.1", length=True):
    """The bytes of a POST request."""
    lines = [f"POST {path} {http}", "Host: 127.0.0.1"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(parts):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def json_body(headers, body):
    assert headers.get("content-type") == "application/json", headers
    return json.loads(body)


def api_request(srv, raw, clients=None):
    c = Http(srv.pub_port)
    if clients is not None:
        clients.append(c)
    c.send(raw)
    return c, c.response()


# -- delivery -------------------------------------------------------------------

def test_200_posts_reach_both_workers_once_in_order(server_factory, clients):
    srv = pub_server(server_factory)
    subs = subscribers(srv, "/ch/news", 4, clients)
    other = open_ws(srv.port, path="/ch/sports")
    clients.append(other)
    conn = http.client.HTTPConnection("127.0.0.1", srv.pub_port, timeout=10)
    clients.append(conn)
    sock = None
    for i in range(200):
        conn.request("POST", "/pub/news", body=f"message {i} é".encode())
        r = conn.getresponse()
        body = r.read()
        assert r.status == 202, (i, r.status, body)
        assert json.loads(body) == {"published": 1, "messages": 1, "channels": ["news"],
                                    "offsets": {"news": i + 1}}, body
        assert sock is None or conn.sock is sock, f"keep-alive connection was closed after request {i}"
        sock = conn.sock
    want = [(OP_TEXT, f"message {i} é".encode()) for i in range(200)]
    for s in subs:
        assert messages(s, 200) == want
    for s in subs:
        assert_nothing_more(s, wait=0.1)
    assert_nothing_more(other, wait=0)
    st = srv.status()
    assert srv.total("publishes", st) == 200, st
    assert srv.total("publish_rejected", st) == 0, st


def test_batch_lines(server_factory, clients):
    srv = pub_server(server_factory)
    subs = subscribers(srv, "/ch/b", 2, clients)
    _, (status, headers, body) = api_request(
        srv, post("/pub/b?batch=lines", b"one\ntwo\n\n\nthree\n"), clients)
    assert status == 202, body
    assert json_body(headers, body) == {"published": 3, "messages": 3, "channels": ["b"],
                                        "offsets": {"b": 3}, "first_offsets": {"b": 1}}
    for s in subs:
        assert messages(s, 3) == [(OP_TEXT, b"one"), (OP_TEXT, b"two"), (OP_TEXT, b"three")]
        assert_nothing_more(s, wait=0.1)


def test_binary_by_query_and_content_type(server_factory, clients):
    srv = pub_server(server_factory)
    s = open_ws(srv.port, path="/ch/bin")
    clients.append(s)
    blob = bytes(range(256)) + b"\xff\xfe"
    c, (status, _, body) = api_request(srv, post("/pub/bin?type=binary", blob), clients)
    assert status == 202, body
    c.send(post("/pub/bin", blob, [("Content-Type", "application/octet-stream")]))
    assert c.response()[0] == 202
    c.send(post("/pub/bin?type=text", b"explicit text", [("Content-Type", "application/octet-stream")]))
    assert c.response()[0] == 202
    c.send(post("/pub/bin", b"default text"))
    assert c.response()[0] == 202
    assert messages(s, 4) == [(OP_BINARY, blob), (OP_BINARY, blob), (OP_TEXT, b"explicit text"),
                              (OP_TEXT, b"default text")]


def test_several_channels(server_factory, clients):
    srv = pub_server(server_factory)
    a = open_ws(srv.port, path="/ch/a")
    b = open_ws(srv.port, path="/ch/b")
    c = open_ws(srv.port, path="/ch/c")
    clients += [a, b, c]
    _, (status, headers, body) = api_request(srv, post("/pub/a,b,a", b"to a and b"), clients)
    assert status == 202, body
    assert json_body(headers, body) == {"published": 2, "messages": 1, "channels": ["a", "b"],
                                        "offsets": {"a": 1, "b": 1}}
    for s in (a, b):
        assert messages(s, 1) == [(OP_TEXT, b"to a and b")]
        assert_nothing_more(s, wait=0.1)
    assert_nothing_more(c, wait=0)


def test_chunked_pipelined_and_100_continue(server_factory, clients):
    srv = pub_server(server_factory)
    s = open_ws(srv.port, path="/ch/p1")
    clients.append(s)
    c = Http(srv.pub_port)
    clients.append(c)
    # chunked, in pieces that straddle reads
    c.send(post("/pub/p1", headers=[("Transfer-Encoding", "chunked")], length=False))
    for piece in (b"hel", b"lo ", b"chunked"):
        c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        time.sleep(0.02)
    c.send(b"0\r\n\r\n")
    status, _, body = c.response()
    assert status == 202 and json.loads(body)["published"] == 1, body
    # three requests in one write: answered in order, the middle one refused
    c.send(post("/pub/p1", b"first") + post("/nope", b"x") + post("/pub/p1?batch=lines", b"third\nfourth"))
    answers = [c.response() for _ in range(3)]
    assert [a[0] for a in answers] == [202, 404, 202], answers
    assert json.loads(answers[0][2])["messages"] == 1
    assert json.loads(answers[2][2])["messages"] == 2
    # Expect: 100-continue gets its interim answer before the body is sent
    c.send(post("/pub/p1", b"continued", [("Expect", "100-continue")])[:-len(b"continued")])
    assert c.response()[0] == 100
    c.send(b"continued")
    assert c.response()[0] == 202
    assert messages(s, 5) == [(OP_TEXT, b"hello chunked"), (OP_TEXT, b"first"), (OP_TEXT, b"third"),
                              (OP_TEXT, b"fourth"), (OP_TEXT, b"continued")]
    assert_nothing_more(s, wait=0.1)


# -- errors ---------------------------------------------------------------------

def test_errors_answer_json_and_keep_the_connection(server_factory, clients):
    srv = pub_server(server_factory, max_channels_per_conn=2)
    s = open_ws(srv.port, path="/ch/ok")
    clients.append(s)
    c = Http(srv.pub_port)
    clients.append(c)
    cases = [
        (post("/pub/bad*name", b"x"), 400, "channel name"),
        (post("/pub/a,,b", b"x"), 400, "channel name"),
        (post("/pub/", b"x"), 400, "channel name"),
        (post("/pub/" + "x" * 129, b"x"), 400, "channel name"),
        (post("/pub/a,b,c", b"x"), 400, "max_channels_per_conn"),
        (post("/pub/ok", b"bad \xff\xfe utf-8"), 400, "UTF-8"),
        (post("/pub/ok?type=json", b"x"), 400, "type"),
        (post("/pub/ok?bogus=1", b"x"), 400, "unknown parameter"),
        (post("/nope", b"x"), 404, "/pub/"),
        (post("/pubx/ok", b"x"), 404, "/pub/"),
        (b"GET /pub/ok HTTP/1.1\r\nHost: x\r\n\r\n", 405, "POST"),
        (b"PUT /pub/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 405, "POST"),
    ]
    rejected0 = srv.total("publish_rejected")
    for raw, want, words in cases:
        c.send(raw)
        status, headers, body = c.response()
        assert status == want, (raw[:40], status, body)
        err = json_body(headers, body)["error"]
        assert words in err, (raw[:40], err)
        assert "close" not in headers.get("connection", ""), (raw[:40], headers)
        if status == 405:
            assert headers.get("allow") == "POST", headers
    c.send(post("/pub/ok", b"still served"))
    assert c.response()[0] == 202
    assert messages(s, 1) == [(OP_TEXT, b"still served")]
    assert_nothing_more(s, wait=0.1)
    wait_until(lambda: srv.total("publish_rejected") - rejected0 == len(cases), timeout=5,
               what=f"publish_rejected + {len(cases)}")


def test_401_missing_and_wrong_token(server_factory, clients):
    srv = pub_server(server_factory, publish_token="s3cret-token")
    s = open_ws(srv.port, path="/ch/t")
    clients.append(s)
    c = Http(srv.pub_port)
    clients.append(c)
    for hdrs, words in (([], "missing"), ([("Authorization", "Bearer wrong")], "wrong"),
                        ([("Authorization", "Bearer s3cret-token-longer")], "wrong"),
                        ([("Authorization", "Basic czNjcmV0LXRva2Vu")], "wrong")):
        c.send(post("/pub/t", b"nope", hdrs))
        status, headers, body = c.response()
        assert status == 401, (hdrs, status, body)
        assert headers.get("www-authenticate") == "Bearer", headers
        assert words in json_body(headers, body)["error"], body
    c.send(post("/pub/t", b"yes", [("Authorization", "Bearer s3cret-token")]))
    assert c.response()[0] == 202
    assert messages(s, 1) == [(OP_TEXT, b"yes")]
    assert_nothing_more(s, wait=0.1)


def test_411_and_413_close_the_connection(server_factory, clients):
    srv = pub_server(server_factory, max_message_size="1k")
    s = open_ws(srv.port, path="/ch/big")
    clients.append(s)
    # 413 from Content-Length alone: answered before any body byte is sent
    c, (status, headers, body) = api_request(srv, post("/pub/big", headers=[("Content-Length", "1025")],
                                                       length=False), clients)
    assert status == 413 and "max_message_size" in json_body(headers, body)["error"], body
    assert headers.get("connection") == "close", headers
    c.expect_eof()
    # a chunked body that grows past the limit
    c = Http(srv.pub_port)
    clients.append(c)
    c.send(post("/pub/big", headers=[("Transfer-Encoding", "chunked")], length=False)
           + b"%x\r\n%s\r\n" % (600, b"a" * 600) + b"%x\r\n%s\r\n" % (600, b"b" * 600))
    status, headers, body = c.response()
    assert status == 413 and headers.get("connection") == "close", (status, headers, body)
    c.expect_eof()
    # neither Content-Length nor chunked
    c, (status, headers, body) = api_request(srv, post("/pub/big", length=False), clients)
    assert status == 411 and "Content-Length" in json_body(headers, body)["error"], body
    assert headers.get("connection") == "close", headers
    c.expect_eof()
    # exactly the limit is fine
    _, (status, _, body) = api_request(srv, post("/pub/big", b"z" * 1024), clients)
    assert status == 202, body
    assert messages(s, 1) == [(OP_TEXT, b"z" * 1024)]
    assert_nothing_more(s, wait=0.1)


def test_http10_timeout_and_parse_error(server_factory, clients):
    srv = pub_server(server_factory, handshake_timeout="500ms")
    s = open_ws(srv.port, path="/ch/old")
    clients.append(s)
    c, (status, headers, _) = api_request(srv, post("/pub/old", b"ten", http="HTTP/1.0"), clients)
    assert status == 202 and headers.get("connection") == "close", headers
    c.expect_eof()
    c, (status, headers, _) = api_request(
        srv, post("/pub/old", b"kept", [("Connection", "keep-alive")], http="HTTP/1.0"), clients)
    assert status == 202 and headers.get("connection") == "keep-alive", headers
    assert messages(s, 2) == [(OP_TEXT, b"ten"), (OP_TEXT, b"kept")]
    # a request that does not complete within handshake_timeout: 408
    c = Http(srv.pub_port)
    clients.append(c)
    c.send(post("/pub/old", b"never finished")[:-5])
    t0 = time.monotonic()
    status, headers, body = c.response(timeout=5)
    assert status == 408 and headers.get("connection") == "close", (status, headers, body)
    assert 0.3 < time.monotonic() - t0 < 4
    c.expect_eof()
    # headers over max_header_size (8k by default)
    c, (status, headers, body) = api_request(srv, post("/pub/old", b"x", [("X-Big", "y" * 9000)]), clients)
    assert status == 431 and headers.get("connection") == "close", (status, headers, body)
    assert "max_header_size" in json_body(headers, body)["error"]
    c.expect_eof()
    # garbage
    c, (status, headers, body) = api_request(srv, b"POST /pub/old HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                             clients)
    assert status == 400 and headers.get("connection") == "close", (status, headers, body)
    json_body(headers, body)
    c.expect_eof()
    assert_nothing_more(s, wait=0.1)


# -- the listener ------------------------------------------------------------------

def listening_ports(pid):
    """TCP ports pid has sockets listening on: the inodes of its socket
    descriptors matched against `ss -ltne` (netlink, listeners only: cheap
    even when /proc/net/tcp holds 100,000 other sockets)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = subprocess.run(["ss", "-Hltne"], capture_output=True, text=True, timeout=30, check=True).stdout
    ports = set()
    for line in out.splitlines():
        cols = line.split()
        ino = next((c[4:] for c in cols if c.startswith("ino:")), None)
        if ino in inodes:
            ports.add(int(cols[3].rsplit(":", 1)[1]))
    return ports


def test_empty_publish_listen_listens_nowhere(server_factory):
    srv = server_factory(workers=2, publish_listen="")
    for pid in srv.worker_pids():
        assert listening_ports(pid) == {srv.port}, f"worker {pid} listens on {listening_ports(pid)}"


def test_each_worker_listens_on_publish_listen(server_factory):
    srv = pub_server(server_factory)
    for pid in srv.worker_pids():
        assert listening_ports(pid) == {srv.port, srv.pub_port}, pid


def test_drain_closes_idle_and_answers_requests_in_progress_and_new_connections(server_factory, clients):
    srv = pub_server(server_factory, workers=1, drain_timeout="5s")
    ws = open_ws(srv.port, path="/ch/d")  # keeps the draining worker alive
    clients.append(ws)
    idle = Http(srv.pub_port)
    busy = Http(srv.pub_port)
    fresh = Http(srv.pub_port)  # accepted, its request not sent yet
    clients += [idle, busy, fresh]
    idle.send(post("/pub/d", b"before"))
    assert idle.response()[0] == 202
    busy.send(post("/pub/d", b"in progress")[:-3])
    time.sleep(0.2)
    srv.signal(signal.SIGTERM)
    idle.expect_eof()  # an idle keep-alive connection goes at once
    busy.send(b"ess")
    status, headers, _ = busy.response()
    assert status == 202 and headers.get("connection") == "close", (status, headers)
    busy.expect_eof()
    # A client that connected while the worker served is answered, not
    # reset: its POST would otherwise be lost (clients do not retry POST).
    fresh.send(post("/pub/d", b"first on a new connection"))
    status, headers, _ = fresh.response()
    assert status == 202 and headers.get("connection") == "close", (status, headers)
    fresh.expect_eof()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", srv.pub_port)) != 0, "still accepting after the drain began"
    assert messages(ws, 1) == [(OP_TEXT, b"before")]  # then 1001: the subscriber is closing too
    assert srv.total("publishes") == 3
