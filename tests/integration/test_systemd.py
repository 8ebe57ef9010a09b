"""Running under systemd (issue 18, item 8): the unit in conf/ and the
sd_notify datagrams the master sends, read from a socket standing in for
systemd's (NOTIFY_SOCKET, as a path and as an abstract '@' name):
READY=1 only once every worker serves, RELOADING=1 on SIGHUP and READY=1
again once the new generation serves, STOPPING=1 on SIGTERM."""
import os
import re
import shutil
import signal
import socket
import subprocess
import uuid

import pytest

from conftest import BIN, ROOT
from rawws import wait_until

UNIT = os.path.join(ROOT, "conf", "wsmill.service")


class Manager:
    """The stand-in for systemd: a unix datagram socket collecting messages."""

    def __init__(self, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.sock.settimeout(20)
        self.name = name

    def next(self):
        msg = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in msg.splitlines())

    def close(self):
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def manager(request, tmp_path, monkeypatch):
    name = str(tmp_path / "notify.sock") if request.param == "path" else f"@wsmill-test-{uuid.uuid4().hex}"
    m = Manager(name)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    yield m
    m.close()


def all_active(st, gen=None):
    mine = [w for w in st["workers"] if gen is None or w["generation"] == gen]
    return mine and all(w["state"] == "active" for w in mine)


def test_ready_reload_stopping(manager, server_factory):
    srv = server_factory(workers=2, drain_timeout="1s")
    ready = manager.next()
    assert ready.get("READY") == "1", ready
    assert ready["MAINPID"] == str(srv.proc.pid), ready
    # READY=1 came once every worker served (the status says so already).
    assert all_active(srv.status()), srv.status()
    # A hot reload: RELOADING=1 with the monotonic clock, then READY=1.
    srv.write_conf(max_message_size="1M")
    srv.signal(signal.SIGHUP)
    msg = manager.next()
    assert msg.get("RELOADING") == "1" and int(msg["MONOTONIC_USEC"]) > 0, msg
    assert manager.next().get("READY") == "1"
    # A reload that starts a new generation: READY=1 waits for it.
    srv.write_conf(workers=3)
    srv.signal(signal.SIGHUP)
    assert manager.next().get("RELOADING") == "1"
    ready = manager.next()
    assert ready.get("READY") == "1", ready
    st = srv.status()
    assert st["generation"] == 2 and all_active(st, 2) and len([w for w in st["workers"] if w["generation"] == 2]) == 3, st
    srv.known_worker_pids.update(w["pid"] for w in st["workers"])
    srv.settings["workers"] = 3
    srv.signal(signal.SIGTERM)
    msg = manager.next()
    assert msg.get("STOPPING") == "1", msg
    srv.proc.wait(20)


def test_refused_reload_still_ends_in_ready(manager, server_factory):
    """systemd holds `systemctl reload` until READY=1: a refused reload must
    send it too, or the unit would stay "reloading"."""
    srv = server_factory(workers=1)
    assert manager.next().get("READY") == "1"
    with open(srv.conf_path, "a") as f:
        f.write("max_message_size = banana\n")
    srv.signal(signal.SIGHUP)
    assert manager.next().get("RELOADING") == "1"
    assert manager.next().get("READY") == "1"
    assert srv.status()["last_reload"]["ok"] == 0


def test_no_notify_socket_sends_nothing(server_factory, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    srv = server_factory(workers=1)
    assert "NOTIFY_SOCKET" not in srv.log()
    assert all_active(srv.status())


def test_unit_file_verifies(tmp_path):
    """systemd-analyze accepts the unit (with ExecStart pointing at this
    build), and it is a notify service reloaded by HUP, stopped by TERM."""
    text = open(UNIT).read()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"):
        assert line in text.splitlines(), line
    nofile = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    assert nofile >= 1048576
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "wsmill.service"
    unit.write_text(text.replace("/usr/local/bin/wsmill", os.path.abspath(BIN)))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in p.stderr.splitlines() if "wsmill.service" in line]
    assert p.returncode == 0 and not problems, p.stderr
