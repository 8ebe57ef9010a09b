"""A second server on an address already served is refused (issue 18,
item 1): SO_REUSEPORT would let it join the first one's group and split
the traffic, so the master probes every listener (WebSocket and publish
API) before it binds and names the address and the pids holding it.
Reloads and the binary upgrade, which reuse the master's own sockets, are
covered by test_reload.py and test_upgrade.py; here a reload onto someone
else's address is refused too."""
import os
import signal
import socket
import subprocess

from conftest import BIN, Server, free_port
from rawws import OP_TEXT, open_ws, wait_until
from test_reload import reload_and_wait


def start_second(tmp_path, **settings):
    """Runs a master that must refuse to start; returns (rc, stderr)."""
    srv = Server(str(tmp_path), **settings)
    p = subprocess.run([BIN, "-c", srv.conf_path], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr


def reuseport_listener(port):
    """A listening socket of this test process that a SO_REUSEPORT bind of
    the same user could join."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    return s


def test_second_master_on_same_listen_is_refused(server_factory, tmp_path):
    first = server_factory(workers=2)
    rc, err = start_second(tmp_path, workers=2, listen=f"127.0.0.1:{first.port}")
    assert rc == 1, err
    assert f"listen 127.0.0.1:{first.port}: address already in use" in err, err
    assert f"pid {first.proc.pid} (wsmill)" in err, err
    for pid in first.worker_pids():
        assert f"pid {pid} (wsmill)" in err, err
    # The first one still serves, alone.
    with open_ws(first.port) as c:
        c.echo(OP_TEXT, "still mine")
    assert first.status()["master_pid"] == first.proc.pid


def test_second_master_on_same_publish_listen_is_refused(server_factory, tmp_path):
    first = server_factory(workers=2)
    rc, err = start_second(tmp_path, workers=1, publish_listen=first.settings["publish_listen"])
    assert rc == 1, err
    assert f"publish_listen {first.settings['publish_listen']}: address already in use" in err, err
    # The workers hold the publish API's sockets.
    assert any(f"pid {pid} (wsmill)" in err for pid in first.worker_pids()), err


def test_second_master_on_same_tls_listen_is_refused(server_factory, tmp_path):
    from tlskit import make_ca, make_leaf
    make_ca(str(tmp_path))
    cert, key = make_leaf(str(tmp_path), "wsmill-a")
    tls = f"127.0.0.1:{free_port()}"
    first = server_factory(workers=2, tls_listen=tls, tls_cert=cert, tls_key=key)
    second = tmp_path / "second"
    second.mkdir()
    rc, err = start_second(second, workers=1, tls_listen=tls, tls_cert=cert, tls_key=key)
    assert rc == 1, err
    assert f"tls_listen {tls}: address already in use by pid {first.proc.pid} (wsmill)" in err, err


def test_wildcard_listener_conflicts_with_loopback(tmp_path):
    """Another program on *:PORT (SO_REUSEPORT, same user) blocks
    127.0.0.1:PORT, and is named by pid."""
    port = free_port()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    s.listen(8)
    try:
        rc, err = start_second(tmp_path, workers=1, listen=f"127.0.0.1:{port}")
    finally:
        s.close()
    assert rc == 1, err
    assert f"listen 127.0.0.1:{port}: address already in use by pid {os.getpid()}" in err, err


def test_reload_onto_a_served_address_is_refused(server_factory, clients):
    srv = server_factory(workers=2)
    held = reuseport_listener(free_port())
    try:
        taken = held.getsockname()[1]
        r = reload_and_wait(srv, listen=f"127.0.0.1:{taken}")
        assert r["ok"] == 0, r
        assert f"listen 127.0.0.1:{taken}: address already in use by pid {os.getpid()}" in r["error"], r
        pub = held.getsockname()[1]
        r = reload_and_wait(srv, listen=f"127.0.0.1:{srv.port}", publish_listen=f"127.0.0.1:{pub}")
        assert r["ok"] == 0 and "publish_listen" in r["error"], r
    finally:
        held.close()
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, "the old configuration serves")
    # A free address is taken, and the old one is ours to keep meanwhile.
    r = reload_and_wait(srv, publish_listen=f"127.0.0.1:{free_port()}")
    assert r["ok"] == 1, r


def test_respawned_worker_rejoins_its_own_group(server_factory):
    srv = server_factory(workers=2)
    victim = srv.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in srv.worker_pids() and all(
        w["state"] == "active" for w in srv.status()["workers"]), what="the respawn")
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, "after the respawn")
