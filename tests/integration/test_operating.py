"""Operating it from the README alone (issue 18): tune-kernel.sh never
lowers a setting (multi-valued ones included), `check --plan` for a box
that is not this one, the shipped config passes `check` here, `status` is
a readable summary (and works with a broken file or only a socket),
`reload -c OTHER` is refused naming the file the master reads, and
`start` prints what it serves and where its log goes."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, ROOT, Server, free_port
from rawws import OP_TEXT, open_ws, wait_until

SCRIPT = os.path.join(ROOT, "scripts", "wsmill.sh")
TUNE = os.path.join(ROOT, "scripts", "tune-kernel.sh")
SHIPPED = os.path.join(ROOT, "conf", "wsmill.conf")


def run(*args, timeout=60, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def fake_proc(tmp_path, values):
    root = tmp_path / "sys"
    for key, value in values.items():
        path = root / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return root


def read_fake(root, key):
    return (root / key.replace(".", "/")).read_text().split()


def test_tune_kernel_never_lowers_multi_valued(tmp_path):
    """The sequence of issue 18: a big tcp_mem (as bench-connections leaves
    it), then tune-kernel.sh for 20000 connections with --apply."""
    root = fake_proc(tmp_path, {"net.ipv4.tcp_mem": "1000000\t1500000\t2000000",
                                "net.ipv4.ip_local_port_range": "500\t60999",
                                "net.core.somaxconn": "4096", "fs.file-max": "100"})
    p = run(TUNE, "--connections", "20000", "--local-clients", "--apply",
            env={"WSMILL_PROC_SYS": str(root), "WSMILL_BIN": BIN})
    assert p.returncode == 0, p.stdout + p.stderr
    assert read_fake(root, "net.ipv4.tcp_mem") == ["1000000", "1500000", "2000000"], p.stdout
    assert read_fake(root, "net.ipv4.ip_local_port_range") == ["500", "65535"], p.stdout
    assert read_fake(root, "net.core.somaxconn") == ["65535"]
    assert int(read_fake(root, "fs.file-max")[0]) >= 40000
    assert "changed net.core.somaxconn: 4096 -> 65535" in p.stdout, p.stdout
    assert "changed net.ipv4.tcp_mem" not in p.stdout and "# ok  net.ipv4.tcp_mem" in p.stdout, p.stdout
    # Without --apply: prints what it would do and exits 1 while short.
    root2 = fake_proc(tmp_path / "b", {"net.ipv4.tcp_mem": "20000 30000 40000"})
    p = run(TUNE, "--connections", "1000000", env={"WSMILL_PROC_SYS": str(root2), "WSMILL_BIN": BIN})
    assert p.returncode == 1
    assert 'sysctl -w net.ipv4.tcp_mem="500000 750000 1000000"   # now 20000 30000 40000' in p.stdout, p.stdout
    assert read_fake(root2, "net.ipv4.tcp_mem") == ["20000", "30000", "40000"]


def test_check_agrees_with_tune_on_multi_valued(tmp_path):
    """check uses the same rule: a larger tcp_mem is ok, a smaller one a warning
    whose fix never lowers any value."""
    conf = tmp_path / "c.conf"
    conf.write_text("max_connections = 1000\nworkers = 1\n")
    root = fake_proc(tmp_path, {"net.ipv4.tcp_mem": "100 200 300000"})
    p = run(BIN, "check", "-c", str(conf), env={"WSMILL_PROC_SYS": str(root)})
    assert "[warn] net.ipv4.tcp_mem = 100 200 300000" in p.stdout, p.stdout
    assert 'sysctl -w net.ipv4.tcp_mem="500 750 300000"' in p.stdout, p.stdout
    (root / "net/ipv4/tcp_mem").write_text("1000000 1500000 2000000\n")
    p = run(BIN, "check", "-c", str(conf), env={"WSMILL_PROC_SYS": str(root)})
    assert "[ ok ] net.ipv4.tcp_mem = 1000000 1500000 2000000" in p.stdout, p.stdout


def test_check_plan_for_the_seed_box():
    p = run(BIN, "check", "--plan", "1000000", "--memory", "16G", "--cores", "4", "-c", SHIPPED)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for want in ("workers = 4", "max_connections = 1000000", "LimitNOFILE=252036", "thash_entries=1048576",
                 "tcp_child_ehash_entries", 'sysctl -w fs.file-max=', 'net.ipv4.tcp_mem="500000 750000 1000000"',
                 "## memory", "max_backpressure", "TiB", "## keepalive", "pings and as many pongs"):
        assert want in out, (want, out)
    # every sysctl line has a reason
    for line in out.splitlines():
        if line.startswith("sysctl -w"):
            assert re.search(r'" +# \S', line), line
    script = run(SCRIPT, "check", "--plan", "1000000", "--memory", "16G", "--cores", "4", timeout=300)
    assert script.returncode == 0 and script.stdout == out.replace("settings from " + SHIPPED,
                                                                   "settings from " + os.path.realpath(SHIPPED)), \
        script.stdout + script.stderr
    p = run(BIN, "check", "--plan", "1000000", "--memory", "16MiB", "--cores", "4", "-c", SHIPPED)
    assert p.returncode == 2 and "need more than" in p.stdout, p.stdout
    p = run(BIN, "check", "--plan", "1000000", "--cores", "4", "-c", SHIPPED)
    assert p.returncode == 1 and "--memory" in p.stderr
    p = run(BIN, "check", "--plan", "1000000", "--memory", "16 bananas", "--cores", "4")
    assert p.returncode == 1 and "--memory needs a size" in p.stderr


def test_plan_config_lines_paste_into_a_config(tmp_path):
    """Every `key = value` line the plan prints is accepted by the config
    parser as it is (no trailing comment inih would take as the value)."""
    p = run(BIN, "check", "--plan", "1000000", "--memory", "24G", "--cores", "2", "--nofile", "20000",
            "--local-clients", "-c", SHIPPED)
    lines = [ln for ln in p.stdout.splitlines() if re.match(r"^[a-z_]+ = ", ln)]
    assert {ln.split(" = ")[0] for ln in lines} >= {"workers", "max_connections", "max_connections_per_ip",
                                                  "ping_interval", "idle_timeout"}, p.stdout
    conf = tmp_path / "plan.conf"
    conf.write_text("\n".join(lines) + "\n")
    g = run(BIN, "get", "workers", "max_connections", "-c", str(conf))
    assert g.returncode == 0, g.stderr
    assert g.stdout.split()[1] == "1000000" and int(g.stdout.split()[0]) * 19968 > 1000000, g.stdout
    assert re.search(r"^LimitNOFILE=\d+$", p.stdout, re.M), p.stdout


def test_shipped_config_passes_check_here():
    p = run(BIN, "check", "-c", SHIPPED)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "max_connections = auto:" in p.stdout and "[FAIL]" not in p.stdout, p.stdout


def test_auto_max_connections_printed_and_served(server_factory):
    srv = server_factory(workers=2, max_connections="auto")
    st = srv.status()
    assert st["max_connections_auto"] == 1 and st["max_connections"] > 0, st
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert st["max_connections"] <= 2 * max(soft, 20000), st
    assert re.search(r"max_connections = auto: %d \(descriptors allow 2 workers" % st["max_connections"],
                     srv.log()), srv.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="the message is about root without the capability")
def test_root_without_cap_sys_resource_is_named(tmp_path):
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        pytest.skip("this root may raise the hard limit (it has CAP_SYS_RESOURCE)")
    except (ValueError, OSError):
        pass
    conf = tmp_path / "c.conf"
    conf.write_text(f"max_connections = {hard * 4}\nworkers = 1\n")
    p = run(BIN, "check", "-c", str(conf))
    assert "without the capability CAP_SYS_RESOURCE (a container?)" in p.stdout, p.stdout


def summary(*args):
    p = run(BIN, "status", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


def test_status_summary_by_default(server_factory, clients):
    srv = server_factory(workers=2, max_connections=5000)
    for _ in range(3):
        c = open_ws(srv.port)
        clients.append(c)
        c.echo(OP_TEXT, "hello")
    out, _ = summary("-c", srv.conf_path, "--interval", "0.5")
    assert f"wsmill master pid {srv.proc.pid}" in out, out
    assert f"ws://127.0.0.1:{srv.port}" in out and f"publish API http://{srv.settings['publish_listen']}" in out
    assert "connections 3 of max_connections 5000" in out, out
    assert "workers  2 active (generation 1)" in out, out
    assert re.search(r"rates over the last 0\.\d s: \d+ accepts/s", out), out
    assert "broker   local" in out and "reload   none since start" in out, out
    assert f"config {os.path.realpath(srv.conf_path)}" in out
    # Rates are over the interval: echoes while it runs show up.
    import threading
    stop = threading.Event()

    def talk():  # bounded, and under max_messages_per_second
        for _ in range(3000):
            if stop.is_set():
                return
            clients[0].echo(OP_TEXT, "x")
            time.sleep(0.001)
    t = threading.Thread(target=talk)
    t.start()
    try:
        out, _ = summary("-c", srv.conf_path, "--interval", "1")
    finally:
        stop.set()
        t.join()
    msgs = int(re.search(r"(\d+) msgs in/s", out).group(1))
    assert msgs > 10, out
    # --json is the snapshot as before
    import json
    p = run(BIN, "status", "--json", "-c", srv.conf_path)
    assert json.loads(p.stdout)["master_pid"] == srv.proc.pid


def test_status_with_broken_config_and_socket_only(server_factory):
    srv = server_factory(workers=1)
    with open(srv.conf_path, "a") as f:
        f.write("max_message_size = banana\n")
    out, err = summary("-c", srv.conf_path, "--interval", "0.1")
    assert f"wsmill master pid {srv.proc.pid}" in out
    assert "banana" in err and srv.status_path in err, err
    out, _ = summary("-s", srv.status_path, "--interval", "0.1")
    assert f"wsmill master pid {srv.proc.pid}" in out
    p = run(SCRIPT, "status", "-s", srv.status_path, "--json", "-c", "/nonexistent.conf")
    assert p.returncode == 0 and f'"master_pid":{srv.proc.pid}' in p.stdout, p.stderr
    p = run(BIN, "status", "-s", srv.status_path + ".nope")
    assert p.returncode == 1 and "connect(" in p.stderr


def test_reload_with_another_file_is_refused(server_factory, tmp_path):
    srv = server_factory(workers=1)
    other = tmp_path / "other.conf"
    other.write_text(open(srv.conf_path).read().replace("workers = 1", "workers = 2"))
    p = run(SCRIPT, "reload", "-c", str(other))
    assert p.returncode == 1, p.stdout
    assert f"reads {os.path.realpath(srv.conf_path)}" in p.stderr and str(other) in p.stderr, p.stderr
    assert srv.status()["last_reload"]["seq"] == 0, "no SIGHUP was sent"
    p = run(SCRIPT, "reload", "-c", srv.conf_path)
    assert p.returncode == 0 and "changed: nothing" in p.stdout, p.stdout + p.stderr


def test_start_prints_addresses_and_log(tmp_path):
    srv = Server(str(tmp_path), workers=1, log_file="")
    p = run(SCRIPT, "start", "-c", srv.conf_path, timeout=120)
    pid = None
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        pid = int(re.search(r"wsmill started: pid (\d+)", p.stdout).group(1))
        assert f"ws://127.0.0.1:{srv.port}/echo" in p.stdout, p.stdout
        assert f"http://{srv.settings['publish_listen']}/pub/NAME" in p.stdout, p.stdout
        assert re.search(r"log +\S*build/wsmill.out", p.stdout), p.stdout
        with open_ws(srv.port) as c:
            c.echo(OP_TEXT, "started by the script")
    finally:
        if pid:
            q = run(SCRIPT, "stop", "-c", srv.conf_path, timeout=60)
            if q.returncode != 0:
                os.kill(pid, signal.SIGKILL)


def test_jwt_example_in_the_docs_works(server_factory, clients):
    """The Python block of docs/security.md's worked example, run as it is."""
    doc = open(os.path.join(ROOT, "docs", "security.md")).read()
    part = doc.split("### Worked example", 1)[1]
    code = part.split("```python\n", 1)[1].split("```", 1)[0]
    scope = {}
    exec(compile(code, "docs/security.md", "exec"), scope)
    token = scope["token"]
    srv = server_factory(workers=1, auth_secret="change-me", client_publish="on")
    c = open_ws(srv.port, path=f"/ch/room.5?token={token}")
    clients.append(c)
    c.send_text("mine")
    op, got = c.recv_message()
    assert got == b"mine", "client_publish = on: the sender gets its own message back (docs/channels.md)"
    from rawws import RawWS, build_request
    raw = RawWS(srv.port)
    clients.append(raw)
    raw.send(build_request(path=f"/ch/lobby?token={token}"))
    assert raw.read_response().status == 403
    bad = scope["make_token"]("wrong-secret")
    raw = RawWS(srv.port)
    clients.append(raw)
    raw.send(build_request(path=f"/ch/room.5?token={bad}"))
    assert raw.read_response().status == 401
