"""Config key `user`: with the master running as root, workers switch to that
user once their sockets are bound, and every way a worker is born (start,
respawn, new generation, binary upgrade) ends in the switch; the master keeps
root for its files (status socket 0600, pid file). An unknown user stops the
start with an error naming the key."""
import os
import pwd
import signal
import stat
import subprocess

import pytest

from conftest import BIN, Server
from rawws import OP_TEXT, open_ws, wait_until
from test_channels import http_post, landed_on, per_worker, pub_port
from test_reload import newest_active, reload_and_wait
from test_upgrade import upgrade_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs the master to run as root")

NOBODY = pwd.getpwnam("nobody")


def ids(pid):
    """(uids, gids, groups) of a process, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in val.split()]
    return out["Uid"], out["Gid"], out["Groups"]


def assert_nobody(pid):
    uids, gids, groups = ids(pid)
    assert uids == [NOBODY.pw_uid] * 4, f"worker {pid} uids (real, effective, saved, fs) {uids}"
    assert gids == [NOBODY.pw_gid] * 4, f"worker {pid} gids {gids}"
    assert 0 not in groups, f"worker {pid} kept root's group: {groups}"


def workers_of(srv):
    st = srv.status()
    srv.known_worker_pids.update(w["pid"] for w in st["workers"] if w["pid"])
    return [w["pid"] for w in st["workers"]]


def test_workers_run_as_user_master_keeps_root(server_factory):
    srv = server_factory(user="nobody", workers=2, client_publish="on")
    pids = workers_of(srv)
    assert len(pids) == 2
    for pid in pids:
        assert_nobody(pid)
    assert ids(srv.proc.pid)[0] == [0, 0, 0, 0], "the master must keep root (it binds and respawns)"
    # The master's files stay its own.
    st = os.stat(srv.status_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, oct(st.st_mode)
    assert os.stat(srv.settings["pid_file"]).st_uid == 0
    wait_until(lambda: srv.log().count("running as user nobody") == 2, what="both workers to log the switch")
    # Traffic still flows: echo, and a publish through the API (bound before
    # the switch) reaching a subscriber on each worker (workers wake each
    # other with signals, which needs the same user on both sides).
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, b"as nobody")
    port = pub_port(srv)
    subs, seen = [], set()
    try:
        for _ in range(40):
            before = per_worker(srv, "handshakes")
            c = open_ws(srv.port, path="/ch/priv")
            subs.append(c)
            seen.add(landed_on(srv, before))
            if len(seen) == 2:
                break
        assert len(seen) == 2, "could not place a subscriber on each worker"
        status, body = http_post(port, "/pub/priv", b"to both")
        assert 200 <= status < 300, (status, body)
        for c in subs:
            assert c.recv_message(timeout=10)[1] == b"to both"
    finally:
        for c in subs:
            c.close()


def test_respawned_and_new_generation_workers_switch_too(server_factory):
    srv = server_factory(user="nobody", workers=2)
    victim = workers_of(srv)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in workers_of(srv) and all(w["state"] == "active" and w["pid"]
               for w in srv.status()["workers"]), timeout=15, what="the killed worker to be respawned")
    for pid in workers_of(srv):
        assert_nobody(pid)
    r = reload_and_wait(srv, workers=3)
    assert r["ok"] and r["generation"] >= 2, r
    for w in newest_active(srv.status()):
        srv.known_worker_pids.add(w["pid"])
        assert_nobody(w["pid"])


def test_user_change_waits_for_restart(server_factory):
    srv = server_factory(user="nobody", workers=2)
    r = reload_and_wait(srv, user="root")
    assert r["ok"], r
    wait_until(lambda: "user changed: only a binary upgrade" in srv.log(), what="the kept-key warning")
    for pid in workers_of(srv):
        assert_nobody(pid)


def test_log_reopen_after_switch(server_factory):
    """SIGUSR1 after a rotation: workers running as nobody reopen the new file
    (the master gives it to the user; the directory must let nobody in)."""
    srv = server_factory(user="nobody", workers=2)
    os.chmod(srv.dir, 0o755)
    os.rename(srv.log_path, srv.log_path + ".1")
    srv.signal(signal.SIGUSR1)

    def reopened():
        for pid in workers_of(srv):
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            if srv.log_path not in fds:
                return False
        return True
    wait_until(reopened, timeout=10, what="every worker to hold the new log file open")
    assert os.stat(srv.log_path).st_uid == NOBODY.pw_uid
    with open(srv.log_path + ".1") as f:
        assert "keeping the old log" not in f.read()


def test_upgraded_masters_workers_switch(upgrade_server):  # noqa: F811 (fixture)
    srv = upgrade_server(user="nobody", workers=2)
    old = srv.proc.pid
    new, _ = srv.upgrade(old)
    srv.hand_over(old)
    st = srv.status()
    assert st["master_pid"] == new
    for w in st["workers"]:
        srv.known_worker_pids.add(w["pid"])
        assert_nobody(w["pid"])
    assert ids(new)[0] == [0, 0, 0, 0]


def test_unknown_user_stops_start(tmp_path):
    srv = Server(str(tmp_path), user="no-such-user-wsmill")
    p = subprocess.run([BIN, "-c", srv.conf_path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "user: no such user 'no-such-user-wsmill'" in p.stderr, p.stderr
    assert not os.path.exists(srv.status_path), "nothing may be left listening"
    p = subprocess.run([BIN, "check", "-c", srv.conf_path], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "user: no such user" in p.stderr, (p.returncode, p.stderr)
