"""The HTTP service's figures (worker/http/): GET /metrics in the
Prometheus text format, checked by `promtool check metrics` and scraped by a
real Prometheus server whose query API must return the series with the
values the test caused; the histograms count what happened; /healthz says
200 or 503 with a reason; /status; metrics_token guards the figures but not
the health check nor publishing."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import free_port
from rawws import open_ws, wait_until

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def pub_port(srv):
    return int(srv.settings["publish_listen"].rsplit(":", 1)[1])


def get(srv, path, headers=None, method="GET", body=None):
    """(status, headers with lower-case names, body bytes) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", pub_port(srv), timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def metrics(srv, **kw):
    status, headers, body = get(srv, "/metrics", **kw)
    assert status == 200, (status, body)
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    return body.decode()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def publish(srv, channel, body):
    status, _, answer = get(srv, f"/pub/{channel}", method="POST", body=body)
    assert status == 202, (status, answer)


def test_promtool_accepts_the_output_and_sums_match_the_status_socket(server_factory, clients):
    srv = server_factory(workers=2)
    subs = [open_ws(srv.port, path="/ch/m") for _ in range(6)]
    clients.extend(subs)
    for i in range(5):
        publish(srv, "m", b"hello %d" % i)
    for s in subs:
        for _ in range(5):
            s.recv_message(10)
    get(srv, "/nope")  # a refused request is counted too
    text = metrics(srv)
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    m = samples(text)
    st = srv.status()
    assert m["wsmill_connections"] == 6
    assert sum(v for k, v in m.items() if k.startswith("wsmill_worker_connections{")) == 6
    assert m['wsmill_handshakes_total{outcome="upgraded"}'] == srv.total("handshakes", st) == 6
    assert m["wsmill_publishes_total"] == srv.total("publishes", st) == 5
    assert m["wsmill_deliveries_total"] == srv.total("deliveries", st) == 30
    assert m['wsmill_messages_total{direction="out"}'] == srv.total("messages_out", st)
    assert m["wsmill_subscriptions"] == 6
    assert m['wsmill_workers{state="active"}'] == 2
    assert m["wsmill_publish_rejected_total"] == 1
    # each worker with subscribers observed each message's delay once
    busy = sum(1 for w in st["workers"] if w["connections"])
    assert m["wsmill_delivery_delay_seconds_count"] == 5 * busy
    assert m['wsmill_delivery_delay_seconds_bucket{le="+Inf"}'] == 5 * busy
    assert 0 < m["wsmill_delivery_delay_seconds_sum"] < 5 * busy * 10
    assert m["wsmill_handshake_seconds_count"] == 6
    assert 0 < m["wsmill_handshake_seconds_sum"] < 6 * 10
    assert m["wsmill_fanout_pass_seconds_count"] == srv.total("fanout_passes", st)


def cpu_seconds(srv):
    return [v for k, v in samples(metrics(srv)).items() if k.startswith("wsmill_worker_cpu_seconds_total{")]


def test_worker_cpu_is_counted(server_factory):
    srv = server_factory(workers=2)
    # each worker refreshes its figure on its 250 ms tick
    wait_until(lambda: all(v > 0 for v in cpu_seconds(srv)), timeout=5, what="CPU time of both workers")
    before = cpu_seconds(srv)
    assert len(before) == 2 and all(v < 600 for v in before), before
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        get(srv, "/metrics")  # work for the workers
    wait_until(lambda: sum(cpu_seconds(srv)) > sum(before), timeout=5, what="CPU time growing")


def test_histogram_buckets_are_cumulative_and_bounded(server_factory, clients):
    srv = server_factory(workers=1)
    clients.extend(open_ws(srv.port, path="/echo") for _ in range(3))
    m = samples(metrics(srv))
    buckets = [(k, v) for k, v in m.items() if k.startswith("wsmill_handshake_seconds_bucket")]
    assert len(buckets) == 20, buckets
    values = [v for _, v in buckets]
    assert values == sorted(values) and values[-1] == 3, buckets
    bounds = [float(k.split('le="')[1].rstrip('"}')) for k, _ in buckets[:-1]]
    assert bounds == sorted(bounds) and bounds[0] == 1e-05 and bounds[-1] == 10


class Prometheus:
    """A real Prometheus server in a temporary directory, scraping one
    target every second, stopped by pid."""

    def __init__(self, target, tmp, params=None):
        self.port = free_port()
        conf = os.path.join(tmp, "prometheus.yml")
        lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:",
                 "  - job_name: wsmill", "    static_configs:", f"      - targets: ['{target}']"]
        if params:
            lines += ["    params:"] + [f"      {k}: ['{v}']" for k, v in params.items()]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr):
        """The single value of expr, or None while there is none."""
        try:
            result = self.query(expr)
        except OSError:
            return None  # not listening yet
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus():
    started = []
    tmp = tempfile.TemporaryDirectory(prefix="wsmill-prom-")

    def start(target, params=None):
        p = Prometheus(target, tmp.name, params)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
    tmp.cleanup()


def test_prometheus_scrapes_the_expected_series(server_factory, clients, prometheus):
    srv = server_factory(workers=2, metrics_token="s3cret")
    subs = [open_ws(srv.port, path="/ch/p") for _ in range(4)]
    clients.extend(subs)
    for i in range(3):
        publish(srv, "p", b"x%d" % i)
    prom = prometheus(f"127.0.0.1:{pub_port(srv)}", params={"token": "s3cret"})
    wait_until(lambda: prom.value('up{job="wsmill"}') == 1, timeout=30, what="Prometheus scraped wsmill")
    assert prom.value("wsmill_connections") == 4
    assert prom.value("sum(wsmill_worker_connections)") == 4
    assert prom.value("count(wsmill_worker_connections)") == 2
    assert prom.value('wsmill_handshakes_total{outcome="upgraded"}') == 4
    assert prom.value("wsmill_publishes_total") == 3
    assert prom.value("wsmill_deliveries_total") == 12
    assert prom.value("wsmill_handshake_seconds_count") == 4
    p99 = prom.value("histogram_quantile(0.99, wsmill_handshake_seconds_bucket)")
    assert p99 is not None and 0 < p99 <= 10, p99
    assert prom.value('wsmill_build_info{version!=""}') == 1
    # new clients show up in the next scrapes
    clients.extend(open_ws(srv.port, path="/echo") for _ in range(3))
    wait_until(lambda: prom.value("wsmill_connections") == 7, timeout=15, what="7 connections in Prometheus")
    rate = None

    def counted():
        nonlocal rate
        rate = prom.value("rate(wsmill_handshakes_total{outcome=\"upgraded\"}[5s])")
        return rate is not None and rate > 0

    wait_until(counted, timeout=15, what="a handshake rate")
    assert rate < 100, rate
    grafana_queries_work(prom, metrics(srv, headers={"Authorization": "Bearer s3cret"}))


def grafana_queries_work(prom, text):
    """Every query of docs/grafana-wsmill.json parses in this Prometheus and
    names only series /metrics has."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "docs", "grafana-wsmill.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) > 20, exprs
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for e in exprs:
        q = e.replace("$__rate_interval", "5s").replace('=~"$job"', '=~".+"')
        prom.query(q)  # asserts status success
        for name in re.findall(r"\b(wsmill_[a-z_]+?)(?:_bucket)?\{", e):
            assert name in names, (name, e)


def test_metrics_token_guards_figures_not_health_or_publishing(server_factory):
    srv = server_factory(workers=1, metrics_token="m-token", publish_token="p-token")
    for path in ("/metrics", "/status", "/dashboard/events"):
        status, headers, body = get(srv, path)
        assert status == 401 and headers.get("www-authenticate") == "Bearer", (path, status, headers)
        assert "metrics_token" in json.loads(body)["error"]
        assert get(srv, path, headers={"Authorization": "Bearer p-token"})[0] == 401, path
    assert get(srv, "/metrics", headers={"Authorization": "Bearer m-token"})[0] == 200
    assert get(srv, "/metrics?token=m-token")[0] == 200
    assert json.loads(get(srv, "/status?token=m-token")[2])["connections"] == 0
    assert get(srv, "/healthz")[0] == 200
    assert get(srv, "/dashboard")[0] == 200  # the page holds no figures
    status, _, body = get(srv, "/pub/a", method="POST", body=b"x", headers={"Authorization": "Bearer m-token"})
    assert status == 401 and "publish_token" in json.loads(body)["error"]
    assert get(srv, "/pub/a", method="POST", body=b"x", headers={"Authorization": "Bearer p-token"})[0] == 202


def test_methods_and_unknown_paths(server_factory):
    srv = server_factory(workers=1)
    status, headers, _ = get(srv, "/metrics", method="POST", body=b"")
    assert status == 405 and headers.get("allow") == "GET", (status, headers)
    status, _, body = get(srv, "/dashboard/nope.js")
    assert status == 404 and "dashboard" in json.loads(body)["error"]
    status, headers, body = get(srv, "/dashboard/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"EventSource" in body


def test_healthz_200_serving_503_full_with_the_reason(server_factory, clients):
    srv = server_factory(workers=2, max_connections=2)
    status, _, body = get(srv, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "serving", body
    clients.extend(open_ws(srv.port, path="/echo") for _ in range(2))
    status, headers, body = get(srv, "/healthz")
    assert status == 503 and headers.get("cache-control") == "no-store", (status, headers)
    assert json.loads(body)["reason"].startswith("full: 2 connections"), body
    clients.pop().close()
    wait_until(lambda: get(srv, "/healthz")[0] == 200, timeout=10, what="healthy again after a close")


def test_healthz_503_when_draining(server_factory, clients):
    srv = server_factory(workers=1, drain_timeout="5s")
    clients.append(open_ws(srv.port, path="/echo"))  # keeps the draining worker alive
    sock = socket.create_connection(("127.0.0.1", pub_port(srv)), timeout=10)
    clients.append(sock)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # in progress when the drain begins
    time.sleep(0.2)
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    sock.sendall(b"\r\n")
    data = b""
    while b"}\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head, head
    assert json.loads(body)["reason"] == "draining: the server is stopping", body


def test_pipelined_requests_on_several_routes_answer_in_order(server_factory, clients):
    srv = server_factory(workers=1)
    sock = socket.create_connection(("127.0.0.1", pub_port(srv)), timeout=10)
    clients.append(sock)
    reqs = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /pub/q HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    sock.sendall(b"".join(reqs))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    statuses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        statuses.append(int(head.split(b" ")[1]))
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        data = rest[length:]
    assert statuses == [200, 202, 200, 404, 200], statuses


def test_a_pipelined_batch_is_answered_in_one_send(server_factory, clients):
    srv = server_factory(workers=1)
    before = samples(metrics(srv))
    sock = socket.create_connection(("127.0.0.1", pub_port(srv)), timeout=10)
    clients.append(sock)
    batch = b"".join(b"POST /pub/one HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % (i % 10) for i in range(20))
    sock.sendall(batch + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    assert data.count(b"HTTP/1.1 202 Accepted") == 20 and data.count(b"HTTP/1.1 200 OK") == 1, data[-200:]
    after = samples(metrics(srv))
    # the /metrics answer that took `before` was sent after it was counted
    assert after["wsmill_http_requests_total"] - before["wsmill_http_requests_total"] == 22
    assert after["wsmill_http_sends_total"] - before["wsmill_http_sends_total"] == 2, (before, after)


def test_event_stream_sends_history_then_a_snapshot_a_second(server_factory, clients):
    srv = server_factory(workers=1)
    clients.append(open_ws(srv.port, path="/echo"))
    sock = socket.create_connection(("127.0.0.1", pub_port(srv)), timeout=10)
    clients.append(sock)
    # Connection: close does not end a stream: it lasts until the client goes
    sock.sendall(b"GET /dashboard/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, t0 = b"", time.monotonic()
    while data.count(b"\ndata: {") < 3:
        chunk = sock.recv(65536)
        assert chunk, data[-300:]
        data += chunk
    took = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: text/event-stream" in head, head
    events = body.split(b"\n\n")
    assert events[1].startswith(b"event: history\ndata: ["), events[1][:80]
    snaps = [json.loads(e[len(b"data: "):]) for e in events if e.startswith(b"data: {")]
    assert [s["connections"] for s in snaps] == [1] * len(snaps), snaps
    gaps = [b["time_ms"] - a["time_ms"] for a, b in zip(snaps, snaps[1:])]
    assert all(700 <= g <= 1500 for g in gaps) and took < 6, (gaps, took)


def test_tls_handshakes_are_counted(server_factory, tmp_path, clients):
    from tlskit import make_ca, make_leaf, tls_raw
    ca = make_ca(str(tmp_path))
    cert, key = make_leaf(str(tmp_path), "wsmill-m")
    tls_port = free_port()
    srv = server_factory(workers=2, tls_listen=f"127.0.0.1:{tls_port}", tls_cert=cert, tls_key=key)
    for _ in range(3):
        clients.append(tls_raw(tls_port, ca))
    bad = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
    clients.append(bad)
    bad.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to the TLS port
    bad.recv(4096)

    def counted():
        m = samples(metrics(srv))
        return (m['wsmill_tls_handshakes_total{outcome="ok"}'], m['wsmill_tls_handshakes_total{outcome="failed"}'])

    wait_until(lambda: counted() == (3, 1), timeout=10, what="3 TLS handshakes and 1 failure in /metrics")
    st = srv.status()
    assert counted() == (sum(w["tls_handshakes"] for w in st["workers"]), sum(w["tls_handshake_errors"] for w in st["workers"]))
