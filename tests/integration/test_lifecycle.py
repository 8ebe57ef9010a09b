"""Signals to the master: SIGHUP reload (good and broken files), SIGTERM
graceful stop with close 1001, SIGQUIT fast stop, and a SIGKILLed worker
being respawned while the other worker's clients keep working."""
import os
import re
import signal
import socket
import time

import pytest

from rawws import OP_BINARY, OP_TEXT, Closed, open_ws, wait_until


def proc_gone(pid):
    """True when pid no longer runs (gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def echo_works(c, payload=b"ping?"):
    try:
        c.echo(OP_BINARY, payload, timeout=5)
        return True
    except (Closed, OSError, AssertionError):
        return False


# -- worker crash -----------------------------------------------------------

def test_killed_worker_is_respawned(server_factory, clients):
    srv = server_factory(workers=2)
    for _ in range(20):
        clients.append(open_ws(srv.port))
    wait_until(lambda: srv.status()["connections"] == 20, what="20 connections")
    st = srv.status()
    assert st["worker_deaths"] == 0, st
    workers = sorted(st["workers"], key=lambda w: w["id"])
    assert len(workers) == 2
    # kill the busier worker so the other one surely has (a few) clients left
    victim = max(workers, key=lambda w: w["connections"])
    other = [w for w in workers if w["id"] != victim["id"]][0]
    survivors = other["connections"]
    assert victim["connections"] + survivors == 20, workers

    os.kill(victim["pid"], signal.SIGKILL)

    def respawned():
        ws = {w["id"]: w for w in srv.status()["workers"]}
        v, o = ws.get(victim["id"]), ws.get(other["id"])
        return (len(ws) == 2 and v and o and v["pid"] not in (0, victim["pid"]) and v["state"] == "active"
                and o["pid"] == other["pid"] and o["state"] == "active")

    wait_until(respawned, timeout=15, what="the killed worker to be respawned with a new pid")
    srv.worker_pids()  # remember the new pid for cleanup
    assert srv.proc.poll() is None, "master died"
    assert srv.status()["worker_deaths"] == 1, "status worker_deaths should count the killed worker"

    alive = sum(echo_works(c) for c in clients)
    assert alive == survivors, f"{alive} connections still echo, expected the other worker's {survivors}"
    # the admission counter forgets the dead worker's connections
    wait_until(lambda: srv.status()["connections"] == survivors, timeout=10,
               what=f"status connections == {survivors} after the crash")
    # new connections are served (by both workers, including the new one)
    for i in range(20):
        c = open_ws(srv.port)
        clients.append(c)
        c.echo(OP_TEXT, f"new {i}")
    wait_until(lambda: srv.status()["connections"] == survivors + 20, what="connections after respawn")


# -- SIGHUP ---------------------------------------------------------------------

def test_sighup_applies_max_message_size_to_open_connections(server_factory, clients):
    srv = server_factory(workers=1, max_message_size="1m")
    c = open_ws(srv.port)
    clients.append(c)
    big = os.urandom(100 * 1024)
    c.echo(OP_BINARY, big)
    gen0 = srv.status()["config_generation"]

    srv.write_conf(max_message_size="64k")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: srv.status()["config_generation"] > gen0, what="config_generation to increase")

    def probe_refuses():
        # a fresh connection on the (single) worker shows the new limit is live there
        with open_ws(srv.port) as p:
            try:
                p.send_binary(big)
            except OSError:
                pass
            f = p.recv_frame(timeout=5)
            return f.opcode == 0x8 and f.close_code == 1009

    wait_until(probe_refuses, timeout=10, what="a new connection to get 1009 for 100 KiB")
    c.echo(OP_BINARY, os.urandom(32 * 1024))
    try:
        c.send_binary(big)
    except OSError:
        pass
    c.expect_close(1009)


BROKEN_LINES = [
    "max_message_size = banana",
    "no_such_key = 1",
    "this line is not a setting",
    "workers = -5",
]


@pytest.mark.parametrize("broken", BROKEN_LINES)
def test_sighup_broken_config_keeps_old(server_factory, clients, broken):
    srv = server_factory(workers=2, max_message_size="1m")
    c = open_ws(srv.port)
    clients.append(c)
    gen0 = srv.status()["config_generation"]
    # a file that would lower the limit if it were applied, broken on its last line
    lines = [f"{k} = {'64k' if k == 'max_message_size' else v}" for k, v in srv.settings.items()]
    lines.append(broken)
    bad_line = len(lines)
    with open(srv.conf_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    srv.signal(signal.SIGHUP)

    name = re.escape(os.path.basename(srv.conf_path))
    pat = re.compile(name + r"\D{0,10}" + str(bad_line) + r"\b")
    try:
        wait_until(lambda: pat.search(srv.log()), timeout=10,
                   what=f"the log to name {srv.conf_path} line {bad_line}")
    except AssertionError as e:
        raise AssertionError(f"{e}; log tail:\n" + "\n".join(srv.log().splitlines()[-8:]))
    st = srv.status()
    assert st["config_generation"] == gen0, "a broken config was published"
    assert len(st["workers"]) == 2 and all(w["state"] == "active" for w in st["workers"]), st
    assert srv.proc.poll() is None
    big = os.urandom(100 * 1024)
    c.echo(OP_BINARY, big)  # the old 1m limit still holds
    with open_ws(srv.port) as n:
        n.echo(OP_BINARY, big)

    # and a good file afterwards is applied
    srv.write_conf(max_message_size="2m")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: srv.status()["config_generation"] > gen0, what="generation after a fixed file")


def test_sighup_keeps_connections_and_workers_serving(server_factory, clients):
    srv = server_factory(workers=2)
    for _ in range(10):
        clients.append(open_ws(srv.port))
    gen0 = srv.status()["config_generation"]
    for i in range(3):
        srv.signal(signal.SIGHUP)
        wait_until(lambda: srv.status()["config_generation"] > gen0 + i, what=f"reload {i + 1}")
    wait_until(lambda: len(srv.status()["workers"]) == 2
               and all(w["state"] == "active" for w in srv.status()["workers"]),
               what="two active workers after reloads")
    for c in clients:
        c.echo(OP_TEXT, "after reload")
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, "new after reload")


# -- SIGTERM / SIGQUIT ---------------------------------------------------------

def test_sigterm_sends_1001_to_every_client(server_factory, clients):
    srv = server_factory(workers=2, drain_timeout="10s")
    for _ in range(50):
        clients.append(open_ws(srv.port, timeout=15))
    wait_until(lambda: srv.status()["connections"] == 50, what="50 connections")
    pids = srv.worker_pids()
    srv.signal(signal.SIGTERM)
    for c in clients:
        c.expect_close(1001, timeout=15)
        try:
            c.send_close(1001)
        except OSError:
            pass
    for c in clients:
        c.expect_eof(timeout=15)
    rc = srv.proc.wait(timeout=20)
    assert rc == 0, f"master exit status {rc}"
    wait_until(lambda: all(proc_gone(p) for p in pids), what="workers to exit")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_sigterm_exits_after_drain_timeout(server_factory, clients):
    """A client that never answers the close frame does not hold the server
    past drain_timeout."""
    srv = server_factory(workers=2, drain_timeout="2s")
    for _ in range(4):
        clients.append(open_ws(srv.port, timeout=15))
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    for c in clients:
        c.expect_close(1001, timeout=15)  # and no reply
    srv.proc.wait(timeout=20)
    elapsed = time.monotonic() - t0
    for c in clients:
        c.expect_eof(timeout=5)
    assert elapsed < 15, f"took {elapsed:.1f}s to stop with drain_timeout = 2s"


def test_sigquit_fast_stop(server_factory, clients):
    srv = server_factory(workers=2, drain_timeout="30s")
    for _ in range(10):
        clients.append(open_ws(srv.port))
    pids = srv.worker_pids()
    srv.signal(signal.SIGQUIT)
    srv.proc.wait(timeout=10)
    for c in clients:
        c.expect_eof(timeout=10)
    wait_until(lambda: all(proc_gone(p) for p in pids), what="workers to exit")


def test_pid_file(server_factory):
    srv = server_factory(workers=1)
    with open(srv.settings["pid_file"]) as f:
        assert int(f.read().strip()) == srv.proc.pid
    assert srv.status()["master_pid"] == srv.proc.pid
