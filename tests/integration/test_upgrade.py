"""Binary upgrade (issue 7): SIGUSR2 makes the master exec its binary with
the listening sockets and the status socket passed by descriptor number;
both generations accept for a moment, SIGWINCH makes the old master retire
its workers and exit. Under a steady churn of real clients nothing may
fail; a binary that exits at once leaves the old master serving."""
import os
import shutil
import signal
import subprocess
import time

import pytest

import sancheck

from conftest import BIN, Server
from rawws import OP_TEXT, open_ws, wait_until
from test_reload import SCRIPT, Churn, Established, newest_active, reload_and_wait


def proc_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class UpgradeServer(Server):
    """A Server whose master runs a private copy of the binary, so a test
    can replace it; masters started by upgrades are not our children and
    are tracked by pid."""

    def __init__(self, tmpdir, binary=None, **overrides):
        super().__init__(tmpdir, **overrides)
        self.bin = binary or os.path.join(tmpdir, "wsmill")
        if not binary:
            shutil.copy2(BIN, self.bin)
        self.masters = set()

    def start(self, timeout=15):
        self._stderr = open(self.log_path + ".stderr", "w")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf_path], stdout=subprocess.DEVNULL,
                                     stderr=self._stderr)
        self.masters.add(self.proc.pid)
        wait_until(lambda: self.proc.poll() is None and len(newest_active(self.status()) or []) == int(
            self.settings["workers"]), timeout=timeout, what="the server to start")
        return self

    @property
    def pid_file(self):
        return self.settings["pid_file"]

    def remember(self, st=None):
        st = st or self.status()
        self.masters.add(st["master_pid"])
        self.known_worker_pids.update(w["pid"] for w in st["workers"] if w["pid"])

    def upgrade(self, old, timeout=30):
        """USR2 to old; waits until a new master serves with all its workers
        active; returns (new pid, seconds from the signal to serving)."""
        t0 = time.monotonic()
        os.kill(old, signal.SIGUSR2)

        def serving():
            new = read_pid(self.pid_file)
            if not new or new == old or proc_gone(new):
                return None
            st = self.status()
            if st["master_pid"] != new or not newest_active(st):
                return None
            if len(newest_active(st)) != int(self.settings["workers"]):
                return None
            self.remember(st)
            return new
        new = wait_until(serving, timeout=timeout, what="the new master to serve")
        return new, time.monotonic() - t0

    def hand_over(self, old, timeout=30):
        os.kill(old, signal.SIGWINCH)
        wait_until(lambda: proc_gone(old), timeout=timeout, what=f"old master {old} to exit")
        if self.proc.pid == old:
            self.proc.wait(5)

    def stop_all(self):
        for pid in sorted(self.masters):
            if not proc_gone(pid):
                try:
                    os.kill(pid, signal.SIGQUIT)
                except OSError:
                    pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(proc_gone(p) for p in self.masters):
            time.sleep(0.05)
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(5)
        for pid in self.masters | self.known_worker_pids:
            try:
                if not proc_gone(pid) and os.path.realpath(f"/proc/{pid}/exe") in (
                        os.path.realpath(self.bin), os.path.realpath(BIN)):
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self._stderr:
            self._stderr.close()
            self._stderr = None
        sancheck.scan(self)


@pytest.fixture
def upgrade_server(tmp_path):
    made = []

    def make(**overrides):
        d = tmp_path / f"srv{len(made)}"
        d.mkdir()
        srv = UpgradeServer(str(d), **overrides)
        made.append(srv)
        return srv.start()
    yield make
    for srv in made:
        srv.stop_all()


def test_three_upgrades_under_churn(upgrade_server):
    srv = upgrade_server(workers=2, drain_timeout="3s")
    churn = Churn(srv.port).start()
    times = []
    try:
        churn.wait_ok(30)
        master = srv.proc.pid
        for _ in range(3):
            new, took = srv.upgrade(master)
            times.append(round(took, 3))
            # both generations accept for a moment: the new one gets clients
            wait_until(lambda: srv.total("accepted") >= 20, what="the new master's workers to accept")
            n = churn.ok
            churn.wait_ok(n + 150)
            srv.hand_over(master)
            assert read_pid(srv.pid_file) == new and not os.path.exists(srv.pid_file + ".oldbin")
            assert not os.path.exists(srv.status_path + ".oldbin")
            master = new
            n = churn.ok
            churn.wait_ok(n + 150)
    finally:
        churn.stop()
    print(f"\nupgrade churn: {churn.summary()}; signal->new master serving s {times}")
    assert not churn.failures, churn.summary()
    st = srv.status()
    assert st["master_pid"] == master and st["upgrade"]["inherited"] == 1
    assert len(newest_active(st)) == 2


def test_upgrade_keeps_established_connections(upgrade_server, clients):
    drain = 3.0
    srv = upgrade_server(workers=2, drain_timeout=f"{int(drain)}s")
    est = [Established(srv.port) for _ in range(4)]
    clients.extend(e.c for e in est)
    old = srv.proc.pid
    new, _ = srv.upgrade(old)
    for e in est:
        e.echo("both masters up")
    t_winch = time.monotonic()
    os.kill(old, signal.SIGWINCH)
    # the old master answers on status_socket.oldbin while it drains
    wait_until(lambda: subprocess.run([srv.bin, "status", "--oldbin", "-c", srv.conf_path],
                                      capture_output=True).returncode == 0, what="the old master's status")
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, "a new client reaches the new master")
    for e in est:
        e.echo("old master draining")
    for e in est:
        e.wait_close(timeout=drain + 15)
        assert e.close_code == 1001 and e.closed_at - t_winch >= drain - 0.25
    wait_until(lambda: proc_gone(old), timeout=15, what="the old master to exit")
    srv.proc.wait(5)
    assert srv.status()["master_pid"] == new


def test_failed_upgrade_keeps_old_master(upgrade_server):
    srv = upgrade_server(workers=2)
    good = srv.bin + ".good"
    shutil.copy2(srv.bin, good)
    broken = srv.bin + ".broken"
    with open(broken, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(broken, 0o755)
    os.rename(broken, srv.bin)  # what a bad deploy looks like
    churn = Churn(srv.port, concurrency=4).start()
    try:
        churn.wait_ok(20)
        old = srv.proc.pid
        os.kill(old, signal.SIGUSR2)
        wait_until(lambda: srv.status()["upgrade"]["failed"] == 1, what="the old master to report the failure")
        st = srv.status()
        assert st["master_pid"] == old and "status 3" in st["upgrade"]["last_error"], st["upgrade"]
        assert read_pid(srv.pid_file) == old and not os.path.exists(srv.pid_file + ".oldbin")
        n = churn.ok
        churn.wait_ok(n + 20)
        r = reload_and_wait(srv, workers=3)  # still in charge
        assert r["ok"] == 1 and r["serving"], r
        srv.remember()
        # a fixed binary then takes over
        os.rename(good, srv.bin)
        new, _ = srv.upgrade(old)
        srv.hand_over(old)
        n = churn.ok
        churn.wait_ok(n + 20)
    finally:
        churn.stop()
    assert not churn.failures, churn.summary()
    assert srv.status()["master_pid"] == new


def test_script_upgrade(upgrade_server):
    # the script drives build/wsmill; the master execs the path it runs from
    srv = upgrade_server(workers=2, binary=BIN)
    old = srv.proc.pid
    p = subprocess.run([SCRIPT, "upgrade", "-c", srv.conf_path], capture_output=True, text=True, timeout=90,
                       env={**os.environ, "WSMILL_NO_BUILD": "1"})
    new = read_pid(srv.pid_file)
    srv.masters.add(new)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"new master pid {new} serving" in p.stdout and f"old master pid {old}" in p.stdout, p.stdout
    wait_until(lambda: proc_gone(old), timeout=20, what="the old master to exit")
    srv.proc.wait(5)
    st = srv.status()
    srv.remember(st)
    assert st["master_pid"] == new and len(newest_active(st)) == 2
    with open_ws(srv.port) as c:
        c.echo(OP_TEXT, "after the scripted upgrade")
