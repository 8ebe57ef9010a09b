"""The status socket's JSON: its shape, counters that move with traffic,
and the shared connection count at max_connections."""
import os
import signal

from rawws import OP_BINARY, OP_TEXT, RawWS, build_request, new_key, open_ws, wait_until

REJECT_KEYS = {"bad_request", "forbidden", "not_found", "method", "version", "header_size", "full", "timeout",
               "ip_connections", "ip_handshakes", "unauthorized", "channel_denied"}
CLOSE_KEYS = {"1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011", "1013", "other"}
WORKER_COUNTERS = ["connections", "accepted", "accept_errors", "handshakes", "messages_in", "messages_out",
                   "bytes_in", "bytes_out", "backpressure_closes", "pings_sent", "idle_closes"]


def test_status_shape(server_factory):
    srv = server_factory(workers=2, max_connections=1234)
    st = srv.status()
    for key in ("master_pid", "uptime", "config_generation", "connections", "max_connections", "workers"):
        assert key in st, f"status lacks {key}: {st}"
    assert st["master_pid"] == srv.proc.pid
    assert st["max_connections"] == 1234
    assert st["connections"] == 0
    assert isinstance(st["uptime"], (int, float)) and st["uptime"] >= 0
    assert isinstance(st["config_generation"], int)
    # Connections the per-address table could not count (fail open): shown
    # so an operator sees the table is too small; nothing fills it here.
    assert st["iptable_full"] == 0, st
    assert len(st["workers"]) == 2
    assert sorted(w["id"] for w in st["workers"]) == [0, 1]
    pids = {w["pid"] for w in st["workers"]}
    assert len(pids) == 2 and srv.proc.pid not in pids
    for w in st["workers"]:
        assert w["state"] == "active"
        assert isinstance(w["generation"], int)
        assert isinstance(w["started_at"], (int, float)) and w["started_at"] > 1_600_000_000
        for k in WORKER_COUNTERS:
            assert isinstance(w[k], int) and w[k] >= 0, (k, w)
        assert set(w["handshakes_rejected"]) == REJECT_KEYS, w["handshakes_rejected"]
        assert set(w["closes"]) == CLOSE_KEYS, w["closes"]
    # uptime moves
    wait_until(lambda: srv.status()["uptime"] > st["uptime"], timeout=5, what="uptime to grow")


def test_traffic_counters(server):
    st0 = server.status()
    payloads = [(OP_TEXT, b"hello"), (OP_BINARY, os.urandom(1000)), (OP_TEXT, b"x" * 70000)]
    nbytes = sum(len(p) for _, p in payloads)
    with open_ws(server.port) as c:
        for op, p in payloads:
            c.echo(op, p)
        wait_until(lambda: server.status()["connections"] == st0["connections"] + 1, what="connections + 1")

        def moved():
            st = server.status()
            return (server.total("messages_in", st) - server.total("messages_in", st0) == 3
                    and server.total("messages_out", st) - server.total("messages_out", st0) == 3
                    and server.total("bytes_in", st) - server.total("bytes_in", st0) == nbytes
                    and server.total("bytes_out", st) - server.total("bytes_out", st0) == nbytes
                    and server.total("accepted", st) - server.total("accepted", st0) == 1
                    and server.total("handshakes", st) - server.total("handshakes", st0) == 1)
        try:
            wait_until(moved, timeout=5, what="message/byte counters to match the traffic")
        except AssertionError:
            st = server.status()
            diff = {k: server.total(k, st) - server.total(k, st0)
                    for k in ("messages_in", "messages_out", "bytes_in", "bytes_out", "accepted", "handshakes")}
            raise AssertionError(f"counter deltas {diff}, expected 3 messages / {nbytes} bytes each way, "
                                 "1 accepted, 1 handshake")
        c.send_close(1000)
        c.expect_close(1000)
        c.expect_eof()
    wait_until(lambda: server.status()["connections"] == st0["connections"], what="connections back")
    assert server.closes(1000) > server.closes(1000, st0)


def test_abrupt_disconnects_release_slots(server):
    clients = [open_ws(server.port) for _ in range(30)]
    wait_until(lambda: server.status()["connections"] == 30, what="30 connections")
    for c in clients:
        c.close()  # no close frame
    wait_until(lambda: server.status()["connections"] == 0, timeout=10, what="connections back to 0")
    st = server.status()
    assert sum(w["connections"] for w in st["workers"]) == 0


def handshake_many(port, n, batch=100):
    """Opens n upgraded raw connections, batch requests in flight at a time."""
    out = []
    try:
        while len(out) < n:
            group = []
            for _ in range(min(batch, n - len(out))):
                c = RawWS(port, timeout=20)
                group.append(c)
                out.append(c)
            keys = []
            for c in group:
                k = new_key()
                keys.append(k)
                c.send(build_request(key=k))
            for c in group:
                r = c.read_response()
                assert r.status == 101, f"connection {len(out)}: expected 101, got {r.status}: {r.raw!r}"
    except BaseException:
        for c in out:
            c.close()
        raise
    return out


def test_thousand_connections_and_full(server_factory, clients):
    srv = server_factory(workers=2, max_connections=1000)
    clients.extend(handshake_many(srv.port, 1000))

    def counted():
        st = srv.status()
        return st["connections"] == 1000 and sum(w["connections"] for w in st["workers"]) == 1000

    try:
        wait_until(counted, timeout=10, what="1000 connections in status")
    except AssertionError:
        st = srv.status()
        raise AssertionError(f"status connections {st['connections']}, per worker "
                             f"{[w['connections'] for w in st['workers']]}, expected 1000")
    st = srv.status()
    assert all(w["connections"] > 0 for w in st["workers"]), "SO_REUSEPORT spread nothing to a worker"

    full0 = srv.rejected("full")
    with RawWS(srv.port) as c:
        c.send(build_request())
        r = c.read_response()
        assert r.status == 503, f"1001st connection: expected 503, got {r.status}"
    wait_until(lambda: srv.rejected("full") == full0 + 1, what="handshakes_rejected.full + 1")

    # one leaves, one more gets in
    c = clients.pop()
    c.send_close(1000)
    c.expect_close(1000)
    c.close()
    wait_until(lambda: srv.status()["connections"] == 999, what="999 connections")
    c = open_ws(srv.port)
    clients.append(c)
    c.echo(OP_TEXT, "the 1000th again")
    # a sample of the old ones still echo
    for old in clients[:1000:97]:
        old.echo(OP_TEXT, "old")
    assert srv.status()["connections"] == 1000

    for c in clients:
        c.close()
    clients.clear()
    wait_until(lambda: srv.status()["connections"] == 0, timeout=20, what="connections back to 0")


def test_config_generation_moves_on_reload(server):
    g0 = server.status()["config_generation"]
    server.signal(signal.SIGHUP)
    wait_until(lambda: server.status()["config_generation"] == g0 + 1, what="generation + 1")
