"""Two-phase close (issue 12): subscribers that reset their connections in
the middle of a fan-out sweep are marked and released after the sweep step,
never freed while something iterates them. Run under the ASan build by
test.sh, where a use after free aborts the worker and fails the test."""
import socket
import struct
import time

from conftest import free_port
from rawws import RawWS, wait_until
from test_channels import http_post


def reset(c):
    """Closes with RST: the server's next send to it fails (EPIPE/ECONNRESET)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()


def test_subscribers_reset_mid_sweep(server_factory):
    srv = server_factory(workers=1, client_publish="on", max_handshakes_per_ip=0,
                         publish_listen=f"127.0.0.1:{free_port()}")
    port = int(srv.settings["publish_listen"].rsplit(":", 1)[1])
    subs = []
    for i in range(600):
        c = RawWS(srv.port, timeout=20, rcvbuf=4096 if i % 2 else None)
        assert c.handshake("/ch/storm").status == 101
        subs.append(c)
    wait_until(lambda: srv.total("subscriptions") == 600, timeout=10, what="600 subscriptions")
    keep = subs[::2]
    doomed = subs[1::2]  # small receive buffers: their sends back up, then fail
    N = 60
    body = b"\n".join(b"%04d" % i + b"." * 1000 for i in range(N))
    for k in range(3):
        status, _ = http_post(port, "/pub/storm?batch=lines", body)
        assert status == 202
        for c in doomed[k::3]:  # while the sweep of that batch runs
            reset(c)
    status, _ = http_post(port, "/pub/storm", b"end")
    assert status == 202
    for c in keep:
        n = 0
        while True:
            _, payload = c.recv_message(timeout=30)
            if payload == b"end":
                break
            assert payload[:4] == b"%04d" % (n % N), f"message {n} out of order: {payload[:8]!r}"
            n += 1
        assert n == 3 * N, f"a subscriber that stayed got {n} of {3 * N} messages"
    wait_until(lambda: srv.total("subscriptions") == len(keep), timeout=10,
               what="the reset subscribers to be released")
    st = srv.status()
    assert all(w["state"] == "active" for w in st["workers"])
    assert st.get("worker_deaths", 0) == 0, "a worker died while subscribers were reset mid-sweep"
    for c in keep:
        c.sock.close()
