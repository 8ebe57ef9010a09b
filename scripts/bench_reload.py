"""Reloads and binary upgrades under load (scripts/bench-reload.sh).

wsmill-load churn (connect, upgrade, one echo, clean close, in a loop) runs
against 4 workers while the master is reloaded RELOADS times, workers 4 -> 2
-> 4 ..., one reload a second, then upgraded UPGRADES times (USR2, then WINCH
to the old master once the new one serves). Prints and writes to
docs/bench/reload.json: handshakes attempted and failed (by cause), and per
reload the master's own signal-to-serving time (status last_reload), per
upgrade the time from USR2 to the new master's workers all active."""
import json, os, signal, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from bench_common import Wsmill, load, write_json  # noqa: E402

RELOADS = int(os.environ.get("RELOADS", "10"))
UPGRADES = int(os.environ.get("UPGRADES", "3"))
CHURN = os.environ.get("CHURN", "50")
CONF = "drain_timeout = 5s\n"


def set_workers(srv, n):
    path = os.path.join(srv.dir, "wsmill.conf")
    with open(path) as f:
        lines = [line for line in f if not line.startswith("workers = ")]
    with open(path, "w") as f:
        f.write(f"workers = {n}\n" + "".join(lines))


def wait(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {what}")


def all_active(st, pid=None):
    return (pid is None or st["master_pid"] == pid) and st["workers"] and \
        all(w["state"] == "active" for w in st["workers"])


def reload_once(srv, workers):
    seq = srv.status()["last_reload"]["seq"]
    set_workers(srv, workers)
    t0 = time.time()
    os.kill(srv.status()["master_pid"], signal.SIGHUP)
    st = wait(lambda: (lambda s: s if s["last_reload"]["seq"] > seq and s["last_reload"]["serving"] else None)(
        srv.status()), 30, "the reload to serve")
    seen_ms = (time.time() - t0) * 1000
    r = st["last_reload"]
    return {"workers": workers, "ok": r["ok"], "serving_ms": r["serving_ms"], "seen_by_client_ms": round(seen_ms, 1)}


def upgrade_once(srv):
    old = srv.status()["master_pid"]
    t0 = time.time()
    os.kill(old, signal.SIGUSR2)
    st = wait(lambda: (lambda s: s if s["master_pid"] != old and all_active(s) else None)(srv.status()), 60,
              "the new master's workers")
    ms = (time.time() - t0) * 1000
    os.kill(old, signal.SIGWINCH)
    wait(lambda: not os.path.exists(f"/proc/{old}") or open(f"/proc/{old}/stat").read().split()[2] == "Z",
         60, "the old master to exit")
    return {"old_master": old, "new_master": st["master_pid"], "usr2_to_all_active_ms": round(ms, 1)}


def main():
    srv = Wsmill(4, extra=CONF)
    out = {"churn": None, "reloads": [], "upgrades": []}
    try:
        window = RELOADS * 1.0 + UPGRADES * 3.0 + 4
        args = ["churn", "--url", srv.url("/echo"), "-n", CHURN, "-d", str(int(window)), "--src-base", "127.9.5.2",
                "--per-src", "25000"]
        box = {}
        t = threading.Thread(target=lambda: box.update(r=load(args)))
        t.start()
        time.sleep(2)
        for i in range(RELOADS):
            out["reloads"].append(reload_once(srv, 2 if i % 2 == 0 else 4))
            print(json.dumps(out["reloads"][-1]), flush=True)
            time.sleep(1)
        for _ in range(UPGRADES):
            out["upgrades"].append(upgrade_once(srv))
            print(json.dumps(out["upgrades"][-1]), flush=True)
            time.sleep(1)
        t.join()
        res, cmd = box["r"]
        out["churn"] = {"command": cmd, "result": res}
        print(json.dumps({"churn": {k: res.get(k) for k in ("handshakes", "failures", "connections")}}))
    finally:
        try:
            pid = srv.status()["master_pid"]
            if pid != srv.proc.pid:  # upgraded: the running master is not our child
                os.kill(pid, signal.SIGTERM)
                wait(lambda: not os.path.exists(f"/proc/{pid}"), 60, "the master to stop")
        except (OSError, ValueError, KeyError, RuntimeError):
            pass
        srv.stop()
    out.update({"command": "scripts/bench-reload.sh", "config": CONF.strip(), "workers": "4 -> 2 -> 4 ...",
                "binaries": {"wsmill": bench_common.shown([bench_common.BIN]),
                             "wsmill-load": bench_common.shown([bench_common.LOAD])},
                "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    print("wrote", write_json("reload.json", out), file=sys.stderr)


if __name__ == "__main__":
    main()
