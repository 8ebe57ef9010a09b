#!/usr/bin/python3
"""The measuring half of bench-fanout.sh (see there).

usage: bench_fanout.py [--only GROUP[,GROUP...]] [--rates R,...] [--repeat N] [--no-write] [--perf] [--list]
Each group starts its own server, runs wsmill-load fanout once per publish
rate, reads the server's status before and after every run, and merges its
rows into docs/bench/fanout.json (rows of groups not run are kept)."""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from bench_common import Floor, Wsmill, load, write_json  # noqa: E402

DURATION = os.environ.get("DURATION", "10")
# The machine may be shared: before each run wait (at most QUIET_WAIT s) for
# a second in which both CPUs are below QUIET_BUSY % busy; the row records
# how long that took and how busy the CPUs were.
QUIET_BUSY = float(os.environ.get("QUIET_BUSY", "30"))
QUIET_WAIT = float(os.environ.get("QUIET_WAIT", "120"))
SIZE = 64
# How wsmill-load's subscribers wait for data when it has a core of its own:
# "spin" keeps it from sleeping in epoll and being woken from the server's
# core (see tests/load/README.md); BENCH_RECV=epoll for the way of earlier
# runs. Unpinned groups always use epoll: there a spinning load tool would
# take the cores the workers need.
RECV = os.environ.get("BENCH_RECV", "spin")
CONF = "client_publish = on\nmax_backpressure = 16M\nslow_consumer = drop\n"
COUNTERS = ("deliveries", "slow_drops", "slow_closes", "ring_missed", "publishes", "publish_rejected",
            "fanout_passes", "fanout_pass_us")

# name: (server, workers, server cpus, load --cpu, subscribers, channels, publish rates (messages/s))
GROUPS = {
    "one-core-10k": ("wsmill", 1, "0", "1", 10000, 0, [25, 50, 100, 250]),
    "floor-one-core-10k": ("floor", 1, "0", "1", 10000, 0, [25, 50, 100, 250]),
    "all-workers-10k": ("wsmill", 2, None, None, 10000, 0, [25, 50, 100, 250]),
    "one-core-100k": ("wsmill", 6, "0", "1", 100000, 0, [5, 10, 25]),
    "all-workers-100k": ("wsmill", 6, None, None, 100000, 0, [5, 10, 25]),
    "channels-100x100-one-core": ("wsmill", 1, "0", "1", 10000, 100, [250, 2500, 10000]),
    "floor-channels-100x100-one-core": ("floor", 1, "0", "1", 10000, 100, [250, 2500, 10000]),
    "channels-1000x100-one-core": ("wsmill", 6, "0", "1", 100000, 1000, [2500, 10000, 25000]),
    "channels-1000x100-all-workers": ("wsmill", 6, None, None, 100000, 1000, [2500, 10000, 25000]),
}


def cpu_times():
    """Per-CPU (busy, total) jiffies for cpu0 and cpu1."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("cpu0", "cpu1"):
                v = [int(x) for x in parts[1:]]
                idle = v[3] + v[4]
                out[parts[0]] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def busy_pct(a, b):
    return {c: round(100.0 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]), 1) for c in a}


def worker_counters(srv):
    if srv is None:
        return {}
    st = srv.status()
    return {w["id"]: {k: w.get(k, 0) for k in COUNTERS + ("ring_lag", "pid")} for w in st["workers"]}


def counter_delta(before, after):
    out = {}
    for wid, a in after.items():
        b = before.get(wid, {})
        row = {k: a[k] - b.get(k, 0) for k in COUNTERS}
        row["ring_lag_at_end"] = a["ring_lag"]
        out[str(wid)] = row
    total = {k: sum(r[k] for r in out.values()) for k in COUNTERS}
    return {"workers": out, "total": total}


def recv_mode(load_cpu):
    return RECV if load_cpu is not None else "epoll"


def perf_top(pid, seconds, path):
    """perf record on one worker for a few seconds; the top symbols."""
    rec = subprocess.run(["perf", "record", "-g", "-o", path, "-p", str(pid), "--", "sleep", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 60)
    if rec.returncode != 0:
        return {"error": rec.stderr.strip()[-300:]}
    rep = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "symbol", "--stdio", "-g", "none"],
                         capture_output=True, text=True, timeout=120)
    top = []
    for line in rep.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and not line.startswith("#"):
            while parts and parts[-1] == "-":
                parts.pop()
            top.append(" ".join(parts))
        if len(top) == 20:
            break
    return {"seconds": seconds, "top_symbols": top}


def run_rate(group, srv_kind, srv, load_cpu, n, channels, rate, perf=False):
    sub_url = srv.url("/ch/fan")
    pub_url = srv.pub_url("/pub/fan")
    # 25,000 per source address from 127.9.0.2 on: far from the ports other
    # runs (and their TIME_WAIT sockets) hold on 127.0.0.x, where connect()'s
    # port search slowed a 100,000 ramp to 150 connections/s.
    args = ["fanout", "--url", sub_url, "--pub-url", pub_url, "-n", str(n), "--pub-rate", str(rate),
            "-s", str(SIZE), "-d", DURATION, "--pipeline", "1000", "--rate", "10000", "--per-src", "25000",
            "--src-base", "127.9.0.2",
            "--drain", "20", "--recv", recv_mode(load_cpu)]
    if channels:
        args += ["--channels", str(channels), "--publishers", "4"]
    if load_cpu is not None:
        args += ["--cpu", load_cpu]
    wsm = srv if srv_kind == "wsmill" else None
    pids = [w["pid"] for w in wsm.status()["workers"]] if wsm else [srv.proc.pid]
    t0 = time.time()
    while True:
        c0 = cpu_times()
        time.sleep(1)
        c1 = cpu_times()
        bg = busy_pct(c0, c1)
        if max(bg.values()) < QUIET_BUSY or time.time() - t0 >= QUIET_WAIT:
            break
    waited = round(time.time() - t0 - 1, 1)
    before, cpu_before = worker_counters(wsm), bench_common.proc_cpu_s(pids)
    prof = None
    if perf:
        # wsmill-load in the background; profile one worker in the middle of the window
        import threading
        box = {}
        t = threading.Thread(target=lambda: box.update(r=load(args)))
        t.start()
        ramp = n / 10000 + 2
        time.sleep(ramp)
        prof = perf_top(pids[0], 5, os.path.join("/tmp", f"wsmill-fanout-{os.getpid()}.perf"))
        t.join()
        res, cmd = box["r"]
    else:
        res, cmd = load(args)
    c2 = cpu_times()
    after, cpu_after = worker_counters(wsm), bench_common.proc_cpu_s(pids)
    d = res.get("deliveries", {})
    pub = res.get("publish", {})
    delay = res.get("delay_us", {})
    server_cpu = round(cpu_after - cpu_before, 2)
    row = {
        "group": group, "server": srv_kind, "recv": recv_mode(load_cpu), "subscribers": n,
        "channels": channels or 1,
        "pub_rate": rate,
        "asked_per_s": d.get("asked_per_s"), "deliveries_per_s": d.get("per_s"),
        "received": d.get("received"), "expected": d.get("expected"), "missing": d.get("missing"),
        "gaps": d.get("gaps"), "duplicates": d.get("duplicates"), "reordered": d.get("reordered"),
        "delay_ms": {k: round(delay.get(k, 0) / 1000, 1) for k in ("p50", "p90", "p99", "p999", "max")},
        "publish": {"sent": pub.get("sent"), "acked": pub.get("acked"), "rate_achieved": pub.get("rate_achieved"),
                    "errors": pub.get("errors"),
                    "latency_ms_p50": round(pub.get("latency_us", {}).get("p50", 0) / 1000, 1),
                    "latency_ms_p99": round(pub.get("latency_us", {}).get("p99", 0) / 1000, 1)},
        "opened": res.get("connections", {}).get("opened"), "failures": res.get("failures"),
        "window_s": res.get("window_s"), "drain_s": pub.get("drain_s"),
        "server_cpu_s": server_cpu, "pass_ms_avg": None,
        "server_cpu_ns_per_delivery": round(server_cpu * 1e9 / d["received"], 1) if d.get("received") else None,
        "load_cpu_s": round(sum(res.get("cpu", {}).values()), 2),
        "cpu_busy_pct_before": bg, "quiet_wait_s": waited, "cpu_busy_pct_during": busy_pct(c1, c2),
        "command": cmd,
    }
    if wsm:
        row["server_status"] = counter_delta(before, after)
        t = row["server_status"]["total"]
        # a message waits for its subscriber's turn at most one pass
        if t["fanout_passes"]:
            row["pass_ms_avg"] = round(t["fanout_pass_us"] / t["fanout_passes"] / 1000, 1)
    if prof:
        row["perf_worker0"] = prof
    print(json.dumps({k: row[k] for k in ("group", "server", "subscribers", "channels", "pub_rate", "asked_per_s",
                                          "deliveries_per_s", "missing", "gaps", "delay_ms", "pass_ms_avg",
                                          "server_cpu_s",
                                          "load_cpu_s", "cpu_busy_pct_before", "quiet_wait_s")}), flush=True)
    return row


def run_group(name, perf, only_rates=None, repeat=1):
    kind, workers, cpus, load_cpu, n, channels, rates = GROUPS[name]
    if only_rates:
        rates = [r for r in rates if r in only_rates] or only_rates
    if kind == "wsmill":
        srv = Wsmill(workers, extra=CONF, cpus=cpus, publish=True)
    else:
        srv = Floor("fanout", cpu=int(cpus) if cpus is not None else None)
    rows = []
    try:
        for rate in rates:
            for k in range(repeat):
                do_perf = perf and rate == rates[-1] and kind == "wsmill" and k == 0
                rows.append(run_rate(name, kind, srv, load_cpu, n, channels, rate, do_perf))
                rows[-1]["repeat"] = k
    finally:
        srv.stop()
    setup = {"server": kind, "workers": workers, "server_cpus": cpus or "any", "load_cpus": load_cpu or "any"}
    return {"setup": setup, "runs": rows}


def kernel_settings():
    """The sysctls that move these figures, as they were for this run."""
    out = {}
    for key in ("net.core.skb_defer_max", "net.ipv4.tcp_congestion_control", "net.core.default_qdisc"):
        try:
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                out[key] = f.read().strip()
        except OSError:
            out[key] = None
    return out


def targets(groups):
    """The issue's targets, against the one-core 10,000-subscriber runs (the
    median where a rate was run more than once: the host is noisy)."""
    rows = {}
    for r in groups.get("one-core-10k", {}).get("runs", []):
        rows.setdefault(r["pub_rate"], []).append(r)
    out = {}

    def median_of(rate, get):
        v = sorted(get(r) or 0 for r in rows[rate])
        return v[len(v) // 2], v

    if 250 in rows:
        m, v = median_of(250, lambda r: r["deliveries_per_s"])
        out["deliveries_at_2.5M_asked"] = {"target": ">= 2400000", "measured": m, "runs": v, "met": m >= 2400000}
    if 100 in rows:
        m, v = median_of(100, lambda r: r["delay_ms"]["p99"])
        out["delay_p99_ms_at_1M"] = {"target": "< 100", "measured": m, "runs": v, "met": m < 100}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated groups (default: all)")
    ap.add_argument("--perf", action="store_true", help="perf record one worker at each group's top rate")
    ap.add_argument("--rates", help="comma-separated publish rates (messages/s) instead of the group's")
    ap.add_argument("--no-write", action="store_true", help="print the rows, leave docs/bench/fanout.json alone")
    ap.add_argument("--repeat", type=int, default=1, help="run each rate this many times (one server per group)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k, v in GROUPS.items():
            print(k, v)
        return
    names = bench_common.pick_groups(a.only, GROUPS)
    doc = bench_common.read_json("fanout.json")
    groups = doc.get("groups", {})
    for name in names:
        groups[name] = run_group(name, a.perf, [int(r) for r in a.rates.split(",")] if a.rates else None,
                                 max(1, a.repeat))
        groups[name]["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if a.no_write:
        return
    doc = {
        "command": ("BENCH_NICE=1 " if bench_common.NICE else "") + "scripts/bench-fanout.sh",
        "duration_s": float(DURATION), "size": SIZE,
        "binaries": {"wsmill": bench_common.shown([bench_common.BIN]),
                     "wsmill-load": bench_common.shown([bench_common.LOAD]),
                     "wsmill-floor": bench_common.shown([bench_common.FLOOR])},
        "server_config": CONF.strip().split("\n") + ["publish_listen = 127.0.0.1:PORT (HTTP publisher)"],
        "kernel": kernel_settings(),
        "setup": ("wsmill-load fanout: N subscribers on ws://.../ch/fan (or fan-0..fan-999), one HTTP "
                  "publisher (4 with channels) on the publish API, 64-byte stamped messages, subscribers read with "
                  "--recv spin when wsmill-load has its own CPU, else epoll (row field recv); 'one-core': server "
                  "under taskset -c 0, wsmill-load --cpu 1; 'all-workers': nothing pinned. 2 vCPUs shared with "
                  "other engineers' builds and tests: before each run the script waits up to QUIET_WAIT s for a second "
                  "with both CPUs under QUIET_BUSY % busy; cpu_busy_pct_before is that second's load (not ours) "
                  "and quiet_wait_s how long it waited. Others may start work during a run: figures are noisy."
                  + (" BENCH_NICE=1: server, floor and wsmill-load ran at nice -20, so work of others at nice >= 0 "
                     "got ~1% of their CPUs." if bench_common.NICE else "")),
        "fields": ("deliveries_per_s: subscriber receipts inside the publishing window / window; delay_ms: "
                   "publisher's stamp (before the HTTP request) to the subscriber's read; missing: owed deliveries "
                   "not received when the drain ended (late or lost: server_status tells drops and ring_missed); "
                   "pass_ms_avg: the workers' mean pass over a channel's subscribers (status fanout_pass_us / "
                   "fanout_passes) over the run; server_cpu_s: the workers' (or floor's) utime+stime over the run "
                   "incl. ramp and close, softirq time may be accounted elsewhere; load_cpu_s: wsmill-load's client "
                   "processes."),
        "targets": targets(groups),
        "findings": doc.get("findings", []),
        "groups": groups,
    }
    print("wrote", write_json("fanout.json", doc), file=sys.stderr)


if __name__ == "__main__":
    main()
