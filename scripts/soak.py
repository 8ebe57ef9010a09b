#!/usr/bin/python3
"""soak.py MINUTES: the soak test behind scripts/soak.sh.

Starts build/wsmill (two workers, client_publish on, the publish API, the
per-address limits at their defaults) and runs, all at once and each bounded
in time:
  - wsmill-load churn (connect, upgrade, one echo, close, in a loop),
  - wsmill-load echo (steady traffic on long-lived connections),
  - wsmill-load subscribe (channel subscribers) + wsmill-load publish (HTTP
    publish API),
  - hostile clients from this process, one round every HOSTILE_EVERY_S
    seconds: slowloris headers, garbage instead of a request, garbage after
    the upgrade, a 2 GiB length field, an oversized frame, a flood past the
    message rate limit, and a subscriber that never reads while its channel
    is flooded through the publish API. Each round's outcome is checked
    against what docs/security.md promises.
Every minute it records VmRSS (and RssAnon) of the master, each worker and
each load process, the server's counters, the load tools' progress and the
hostile outcomes. At the end it prints first / peak / last-minute RSS per
process and a verdict, and writes docs/bench/soak.json.

Verdict: memory levels off (each server process's last-minute RSS within
LEVEL_TOLERANCE of its RSS at the reference minute: minute 10, or a third of
a shorter run), no worker died (worker_deaths 0 and the same pids
throughout), the master exits 0 on SIGTERM, every hostile round got the
promised answer, and the load tools report no failures."""
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import bench_common as bc  # noqa: E402
from rawws import OP_TEXT, Closed, RawWS, build_frame  # noqa: E402

HOSTILE_EVERY_S = 10
LEVEL_REF_MINUTE = 10
LEVEL_TOLERANCE = (0.10, 4 * 1024)  # last <= ref * (1 + 10 %) + 4 MiB (KiB units)
HANDSHAKE_TIMEOUT_S = 5
RATE_LIMIT = 10000  # max_messages_per_second (the default; well above what an echo connection does here)
CONF = (f"client_publish = on\nhandshake_timeout = {HANDSHAKE_TIMEOUT_S}s\nmax_frame_size = 64k\n"
        f"max_message_size = 1m\nmax_backpressure = 1m\nslow_consumer = close\nring_size = 4m\n"
        f"max_messages_per_second = {RATE_LIMIT}\nlog_level = notice\n")


def proc_mem(pid):
    """(VmRSS, RssAnon) in KiB, or None when the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon"):
                    out[k] = int(v.split()[0])
    except OSError:
        return None
    if "VmRSS" not in out:
        return None  # a zombie
    return out["VmRSS"], out.get("RssAnon", 0)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Load:
    """One wsmill-load run in the background; its progress lines go to a file."""

    def __init__(self, name, args, workdir):
        self.name = name
        self.err_path = os.path.join(workdir, f"load-{name}.err")
        self.out_path = os.path.join(workdir, f"load-{name}.out")
        self.cmd = [bc.LOAD] + args
        with open(self.err_path, "w") as e, open(self.out_path, "w") as o:
            self.proc = subprocess.Popen(self.cmd, stdout=o, stderr=e)

    def progress(self):
        """The last progress line's fields (open, failed, ...)."""
        try:
            with open(self.err_path, errors="replace") as f:
                lines = [ln for ln in f.read().replace("\r", "\n").splitlines() if "failed=" in ln]
        except OSError:
            return {}
        if not lines:
            return {}
        fields = dict(kv.split("=", 1) for kv in lines[-1].split() if "=" in kv and not kv.startswith("p"))
        return {"phase": lines[-1].split("]")[1].split()[0], **fields}

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def result(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)  # closes cleanly and reports
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open(self.out_path) as f:
            lines = f.read().strip().splitlines()
        try:
            rep = json.loads(lines[-1]) if lines else {}
        except ValueError:
            rep = {}
        return {"exit": self.proc.returncode, "failures": rep.get("failures", {}),
                "connections": rep.get("connections"), "cycles": rep.get("cycles"),
                "messages": {k: rep.get("messages", {}).get(k) for k in ("sent", "received")},
                "publish": {k: rep.get("publish", {}).get(k) for k in ("sent", "acked", "errors")},
                "deliveries": {k: rep.get("deliveries", {}).get(k)
                               for k in ("received", "gaps", "duplicates", "reordered")},
                "command": bc.shown(self.cmd)}


# -- hostile clients ------------------------------------------------------------
# Each returns True when the server answered as docs/security.md says.

def h_slowloris(srv):
    """10 clients trickle a request one byte every 0.5 s: all closed after
    handshake_timeout (and not long after)."""
    req = b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setblocking(False)
        socks.append([s, 0, False])
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < HANDSHAKE_TIMEOUT_S + 5 and not all(c[2] for c in socks):
            for c in socks:
                if c[2]:
                    continue
                try:
                    if c[0].recv(4096) == b"":
                        c[2] = True
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    c[2] = True
                    continue
                try:
                    c[0].send(req[c[1] % len(req):c[1] % len(req) + 1])
                    c[1] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    c[2] = True
            time.sleep(0.5)
        return all(c[2] for c in socks) and time.monotonic() - t0 >= HANDSHAKE_TIMEOUT_S - 1
    finally:
        for c in socks:
            c[0].close()


def h_garbage_request(srv):
    """Random bytes instead of a request: 400 and closed."""
    c = RawWS(srv.port, timeout=10)
    try:
        c.send(b"\x16\x03\x01" + os.urandom(250) + b"\r\n\r\n")
        got = c.expect_eof(10)
        return got.startswith(b"HTTP/1.1 400")
    finally:
        c.close()


def expect_code(c, code, timeout=20):
    try:
        c.expect_close(code, timeout)
        return True
    except (AssertionError, Closed, OSError):
        return False


def sent_after_upgrade(srv, data, code):
    """Upgrades on /echo, sends data, and says whether close `code` came."""
    c = RawWS(srv.port, timeout=10)
    try:
        c.handshake("/echo")
        c.send(data)
        return expect_code(c, code)
    finally:
        c.close()


def h_garbage_frames(srv):
    """Random bytes after the upgrade (reserved bits set): close 1002."""
    return sent_after_upgrade(srv, b"\xff" + os.urandom(63), 1002)


def h_huge_length(srv):
    """A 2 GiB length field: close 1009 at once."""
    return sent_after_upgrade(srv, b"\x82\xff" + struct.pack("!Q", 2 << 30) + os.urandom(4), 1009)


def h_oversized_frame(srv):
    """A 128 KiB frame over max_frame_size (64k): close 1009."""
    return sent_after_upgrade(srv, build_frame(0x2, os.urandom(128 * 1024)), 1009)


def h_flood(srv):
    """Twice the message rate limit's burst in one write: close 1008."""
    c = RawWS(srv.port, timeout=10)
    try:
        c.handshake("/echo")
        frame = build_frame(OP_TEXT, b"x", mask_key=b"abcd")
        try:
            c.send(frame * (2 * RATE_LIMIT + 100))
        except OSError:
            pass  # the server may close while we still write
        return expect_code(c, 1008, timeout=30)
    finally:
        c.close()


def h_never_reads(srv, slow_closes):
    """A subscriber that never reads while its channel gets up to 10 MiB
    through the publish API: the server closes it (slow_consumer = close, 1013),
    counted in slow_closes; the worker's memory stays bounded."""
    before = slow_closes()
    c = RawWS(srv.port, timeout=10, rcvbuf=4096)
    try:
        c.handshake("/ch/hog")
        conn = http.client.HTTPConnection("127.0.0.1", srv.pub_port, timeout=10)
        try:
            body = os.urandom(64 * 1024)
            for _ in range(160):  # 10 MiB: past max_backpressure and both socket buffers
                conn.request("POST", "/pub/hog?type=binary", body=body)
                r = conn.getresponse()
                r.read()
                if r.status != 202:
                    return False
                if slow_closes() > before:
                    break
        finally:
            conn.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and slow_closes() <= before:
            time.sleep(0.1)
        return slow_closes() > before
    finally:
        c.close()


class Hostile(threading.Thread):
    def __init__(self, srv, stop_at):
        super().__init__(daemon=True)
        self.srv, self.stop_at = srv, stop_at
        self.stopping = threading.Event()
        self.counts = {}  # name -> {"ok": n, "bad": n, "error": n}
        self.lock = threading.Lock()

    def slow_closes(self):
        st = self.srv.status()
        return sum(w["slow_closes"] for w in st["workers"]) + st["exited_workers"]["slow_closes"]

    def record(self, name, ok):
        with self.lock:
            c = self.counts.setdefault(name, {"ok": 0, "bad": 0, "error": 0})
            c[ok] += 1

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.counts))

    def run(self):
        checks = [("slowloris", h_slowloris), ("garbage_request", h_garbage_request),
                  ("garbage_frames", h_garbage_frames), ("huge_length", h_huge_length),
                  ("oversized_frame", h_oversized_frame), ("rate_flood", h_flood),
                  ("never_reads", lambda s: h_never_reads(s, self.slow_closes))]
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            t0 = time.monotonic()
            for name, fn in checks:
                if self.stopping.is_set():
                    return
                try:
                    self.record(name, "ok" if fn(self.srv) else "bad")
                except Exception as e:  # noqa: BLE001 (counted and shown, never fatal to the soak)
                    self.record(name, "error")
                    print(f"hostile {name}: {e!r}", file=sys.stderr, flush=True)
            self.stopping.wait(max(0.0, HOSTILE_EVERY_S - (time.monotonic() - t0)))


# -- sampling ---------------------------------------------------------------------

STATUS_KEYS = ("accepted", "handshakes", "messages_in", "messages_out", "publishes", "deliveries",
               "slow_closes", "backpressure_closes", "idle_closes", "accept_errors")


def server_counters(st):
    """Worker counters summed (live and exited), closes, rejects and limits."""
    ws = st["workers"] + [st["exited_workers"]]
    out = {k: sum(w.get(k, 0) for w in ws) for k in STATUS_KEYS}
    for group in ("closes", "handshakes_rejected", "limits"):
        agg = {}
        for w in ws:
            for k, v in w.get(group, {}).items():
                agg[k] = agg.get(k, 0) + v
        out[group] = {k: v for k, v in agg.items() if v}
    out["connections"] = st["connections"]
    out["worker_deaths"] = st.get("worker_deaths")
    return out


def sample(srv, loads, hostile, t0):
    st = srv.status()
    rss = {"master": proc_mem(srv.proc.pid)}
    pids = {}
    for w in st["workers"]:
        rss[f"worker {w['id']}"] = proc_mem(w["pid"])
        pids[f"worker {w['id']}"] = w["pid"]
    for ld in loads:
        for i, pid in enumerate(ld.pids()):
            m = proc_mem(pid)
            if m:
                rss[f"load {ld.name}" + (f" child {i}" if i else "")] = m
    rss["soak.py (hostile clients)"] = proc_mem(os.getpid())
    return {"t_s": round(time.monotonic() - t0, 1),
            "rss_kib": {k: v[0] for k, v in rss.items() if v},
            "rss_anon_kib": {k: v[1] for k, v in rss.items() if v},
            "worker_pids": pids, "server": server_counters(st),
            "load_progress": {ld.name: ld.progress() for ld in loads},
            "hostile": hostile.snapshot()}


def table(samples, ref_idx):
    """Per process, VmRSS in KiB: first (the sample at start, loads just
    started), minute 1, peak, the reference minute and the last minute."""
    names = []
    for s in samples:
        names += [n for n in s["rss_kib"] if n not in names]
    rows = {}
    for n in names:
        vals = [s["rss_kib"].get(n) for s in samples]
        have = [v for v in vals if v is not None]
        rows[n] = {"first": have[0], "minute_1": vals[1] if len(vals) > 1 else None, "peak": max(have),
                   "ref": vals[ref_idx] if len(vals) > ref_idx else None, "last": have[-1], "samples": len(have)}
    return rows


def main():
    minutes = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    out_path = os.environ.get("SOAK_OUT", os.path.join(ROOT, "docs", "bench", "soak.json"))
    secs = minutes * 60
    ref_minute = min(LEVEL_REF_MINUTE, max(1, minutes // 3))
    srv = bc.Wsmill(2, extra=CONF, publish=True, bench_limits=False)
    print(f"soak: {minutes} min, wsmill pid {srv.proc.pid} on :{srv.port} (publish :{srv.pub_port}), dir {srv.dir}",
          flush=True)
    t0 = time.monotonic()
    loads = []
    hostile = Hostile(srv, t0 + secs)
    final = {}
    try:
        common = ["--timeout", "30", "--conn-timeout", "10"]
        loads.append(Load("churn", ["churn", "--url", srv.url("/echo"), "-n", "10", "--rate", "200", "-d",
                                    str(secs), "--src-base", "127.0.0.2"] + common, srv.dir))
        loads.append(Load("echo", ["echo", "--url", srv.url("/echo"), "-n", "20", "-s", "256", "-d", str(secs),
                                   "--src-base", "127.0.0.3"] + common, srv.dir))
        loads.append(Load("subscribe", ["subscribe", "--url", srv.url("/ch/soak"), "--channels", "10", "-n", "200",
                                        "-d", str(secs), "--src-base", "127.0.0.4"] + common, srv.dir))
        time.sleep(2)  # subscribers first, so publishes have someone to reach
        loads.append(Load("publish", ["publish", "--url", srv.pub_url("/pub/soak"), "--channels", "10",
                                      "--rate", "200", "-s", "256", "-d", str(secs - 4)] + common, srv.dir))
        hostile.start()
        samples = [sample(srv, loads, hostile, t0)]
        first_pids = samples[0]["worker_pids"]
        for minute in range(1, minutes + 1):
            while time.monotonic() < t0 + minute * 60:
                time.sleep(min(1.0, t0 + minute * 60 - time.monotonic()))
            samples.append(sample(srv, loads, hostile, t0))
            s = samples[-1]
            print(f"[{minute:3d} min] " + " ".join(f"{k}={v // 1024}M" for k, v in s["rss_kib"].items()
                                                  if not k.startswith("load") or "child" not in k)
                  + f" conns={s['server']['connections']} deaths={s['server']['worker_deaths']}"
                  f" hostile_bad={sum(c['bad'] + c['error'] for c in s['hostile'].values())}", flush=True)
        hostile.stopping.set()
        hostile.join(60)
        results = {ld.name: ld.result(timeout=90) for ld in loads}
        final = server_counters(srv.status())
    finally:
        hostile.stopping.set()
        for ld in loads:
            if ld.proc.poll() is None:
                ld.proc.kill()
                ld.proc.wait()
        srv.stop()
    master_exit = srv.proc.returncode

    rows = table(samples, ref_minute)
    tol_rel, tol_abs = LEVEL_TOLERANCE
    server_procs = ["master"] + sorted(first_pids)
    level = {n: rows[n]["last"] <= rows[n]["ref"] * (1 + tol_rel) + tol_abs for n in server_procs}
    same_pids = all(s["worker_pids"] == first_pids for s in samples)
    with open(os.path.join(srv.dir, "wsmill.log"), errors="replace") as f:
        died_in_log = sum(1 for ln in f if "respawning in" in ln)  # the master's line for a dead worker
    hostile_counts = hostile.snapshot()
    hostile_ok = all(c["bad"] == 0 and c["error"] == 0 for c in hostile_counts.values()) and len(hostile_counts) == 7
    load_ok = all(r["exit"] == 0 and not r["failures"] for r in results.values())
    verdict = {
        "memory_levels_off": all(level.values()),
        "level_rule": f"last-minute VmRSS <= RSS at minute {ref_minute} x {1 + tol_rel:.2f} + {tol_abs // 1024} MiB",
        "per_process_level": level,
        "no_worker_died": final.get("worker_deaths") == 0 and same_pids and died_in_log == 0,
        "master_exit_status": master_exit,
        "hostile_all_as_promised": hostile_ok,
        "load_tools_clean": load_ok,
    }
    verdict["ok"] = (verdict["memory_levels_off"] and verdict["no_worker_died"] and master_exit == 0 and hostile_ok
                     and load_ok)
    print(f"\n{'process':28s} {'start':>9s} {'min 1':>9s} {'peak':>9s} {'min ' + str(ref_minute):>9s} {'last':>9s}"
          "  (VmRSS, MiB)")
    for n, r in rows.items():
        f = lambda v: "-" if v is None else f"{v / 1024:.1f}"  # noqa: E731
        print(f"{n:28s} {f(r['first']):>9s} {f(r['minute_1']):>9s} {f(r['peak']):>9s} {f(r['ref']):>9s}"
              f" {f(r['last']):>9s}")
    print("hostile rounds:", json.dumps(hostile_counts))
    print("load tools:", json.dumps({k: {"exit": v["exit"], "failures": v["failures"]} for k, v in results.items()}))
    print("server counters at the end:", json.dumps(final))
    print("verdict:", json.dumps(verdict))
    doc = {"command": f"scripts/soak.sh {minutes}", "minutes": minutes, "config": CONF.strip().split("\n"),
           "workers": 2, "reference_minute": ref_minute, "rss_table_kib": rows, "verdict": verdict,
           "load": results, "hostile": hostile_counts, "server_final": final, "samples": samples}
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
    print("written:", os.path.relpath(out_path, ROOT))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
