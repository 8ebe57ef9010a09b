#!/usr/bin/python3
"""The measuring half of bench-deflate.sh (see there): permessage-deflate's
memory, fan-out and echo figures, deflate off against on, into
docs/bench/deflate.json."""
import json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
import bench_connections  # noqa: E402
from bench_common import Wsmill, load, proc_cpu_s, write_json  # noqa: E402

DURATION = os.environ.get("DURATION", "10")
IDLE_N = int(os.environ.get("IDLE_N", "100000"))
FANOUT_RATES = [int(r) for r in os.environ.get("FANOUT_RATES", "25,100,250").split(",")]
CONF = ("client_publish = on\nmax_backpressure = 16M\nslow_consumer = drop\n"
        "max_messages_per_second = 0\nmax_bytes_per_second = 0\n")


def deflate_counters(srv):
    st = srv.status()
    out = {}
    for w in st["workers"]:
        for k, v in w["deflate"].items():
            out[k] = out.get(k, 0) + v
    for k in ("messages_in", "messages_out", "bytes_in", "bytes_out", "deliveries", "publishes"):
        out[k] = sum(w[k] for w in st["workers"])
    return out


def delta(a, b):
    return {k: b[k] - a[k] for k in b if k != "windows"} | {"windows_at_end": b["windows"]}


def idle(cases=None):
    rows = []
    # --verify-first: the echoes happen when the hold begins, so the sample
    # (10 s into the hold) sees connections that talked once and then sat
    # idle, not the echo burst itself.
    cases = cases or [("plain, nothing sent", [], 0), ("deflate negotiated, nothing sent", ["--deflate"], 0),
                      ("plain, every connection echoed one message", ["--verify-first"], IDLE_N),
                      ("deflate, every connection sent one compressed message keeping its context",
                       ["--deflate-takeover", "--verify-first"], IDLE_N)]
    bench_common.NETNS = os.environ.get("NETNS", "wsmill-bench-pmd")
    buckets = bench_common.netns_setup(bench_common.NETNS, 2 * IDLE_N)
    try:
        for name, args, verify in cases:
            r = bench_connections.run_one(IDLE_N, load_args=args, verify=verify)
            r["case"] = name
            rows.append(r)
            print(json.dumps({k: r[k] for k in ("case", "connections", "opened", "failed", "verify",
                                                 "user_bytes_per_conn", "user_anon_bytes_per_conn")}), flush=True)
    finally:
        bench_common.netns_delete(bench_common.NETNS)
        bench_common.NETNS = ""
    return {"netns_ehash_buckets": buckets, "hold_s": bench_connections.HOLD, "rows": rows}


def measured(publish, args_for):
    """One load run against a fresh one-worker server on CPU 0: the load
    tool's JSON, its command, the server's counters over the run and the
    worker's CPU seconds."""
    srv = Wsmill(1, extra=CONF, cpus="0", publish=publish)
    try:
        pids = [w["pid"] for w in srv.status()["workers"]]
        c0, cpu0 = deflate_counters(srv), proc_cpu_s(pids)
        res, cmd = load(args_for(srv))
        c1, cpu1 = deflate_counters(srv), proc_cpu_s(pids)
    finally:
        srv.stop()
    return res, cmd, delta(c0, c1), round(cpu1 - cpu0, 2)


def fanout():
    rows = []
    for rate in FANOUT_RATES:
        for deflate in (False, True):
            res, cmd, server, cpu = measured(
                True, lambda srv: ["fanout", "--url", srv.url("/ch/fan"), "--pub-url", srv.pub_url("/pub/fan"),
                                   "-n", "10000", "--pub-rate", str(rate), "-s", "512", "-d", DURATION, "--pipeline",
                                   "1000", "--rate", "10000", "--per-src", "25000", "--src-base", "127.9.0.2",
                                   "--drain", "20", "--recv", "spin", "--cpu", "1", "--json"]
                + (["--deflate"] if deflate else []))
            d = res.get("deliveries", {})
            delay = res.get("delay_us", {})
            row = {"deflate": deflate, "pub_rate": rate, "subscribers": 10000, "size": 512,
                   "asked_per_s": d.get("asked_per_s"), "deliveries_per_s": d.get("per_s"),
                   "received": d.get("received"), "missing": d.get("missing"), "failures": res.get("failures"),
                   "delay_ms": {k: round(delay.get(k, 0) / 1000, 1) for k in ("p50", "p99")},
                   "server_cpu_s": cpu,
                   "server_cpu_ns_per_delivery": round(cpu * 1e9 / d["received"], 1) if d.get("received") else None,
                   "load_cpu_s": round(sum(res.get("cpu", {}).values()), 2),
                   "server": server, "command": cmd}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("deflate", "pub_rate", "asked_per_s", "deliveries_per_s",
                                                  "missing", "server_cpu_s", "server_cpu_ns_per_delivery",
                                                  "load_cpu_s")} | {"compressions": row["server"]["compressions"],
                                                                    "publishes": row["server"]["publishes"]}),
                  flush=True)
    return rows


def echo():
    rows = []
    for deflate in (False, True):
        res, cmd, dc, cpu = measured(
            False, lambda srv: ["echo", "--url", srv.url("/echo"), "-n", "100", "--depth", "8", "-s", "512", "--json",
                                "-d", DURATION, "--cpu", "1"] + (["--deflate"] if deflate else []))
        m = res.get("messages", {})
        payload = dc["bytes_in"] + dc["bytes_out"]
        wire = payload - dc["in_bytes_saved"] - dc["out_bytes_saved"]
        row = {"deflate": deflate, "connections": 100, "depth": 8, "size": 512, "msgs_per_s": m.get("per_s"),
               "received": m.get("received"), "failures": res.get("failures"),
               "latency_us": {k: res.get("latency_us", {}).get(k) for k in ("p50", "p99")},
               "server_cpu_s": cpu,
               "server_cpu_us_per_msg": round(cpu * 1e6 / m["received"], 2) if m.get("received") else None,
               "payload_bytes_both_ways": payload, "payload_bytes_on_wire": wire,
               "wire_over_payload": round(wire / payload, 3) if payload else None,
               "load_cpu_s": round(sum(res.get("cpu", {}).values()), 2), "server": dc, "command": cmd}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("deflate", "msgs_per_s", "server_cpu_us_per_msg", "wire_over_payload",
                                              "latency_us", "load_cpu_s")}), flush=True)
    return rows


def main():
    parts = os.environ.get("PARTS", "idle,fanout,echo").split(",")
    out = bench_common.read_json("deflate.json")
    t0 = time.time()
    env = " ".join(f"{k}={os.environ[k]}" for k in ("BENCH_NICE", "HOLD", "DURATION", "IDLE_N", "FANOUT_RATES")
                   if k in os.environ)
    for p in parts:
        out[p] = {"idle": idle, "fanout": fanout, "echo": echo}[p]()
        out[p + "_measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        out[p + "_command"] = f"{env} PARTS={','.join(parts)} flock /tmp/wsmill-bench.lock scripts/bench-deflate.sh".strip()
    out["machine"] = "2 cores shared with other engineers' builds and tests; see each row's load"
    write_json("deflate.json", out)
    print(f"done in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
