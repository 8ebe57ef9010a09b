#!/usr/bin/python3
"""The measuring half of bench-echo.sh (see there).

Groups (--only a,b; all by default):
  classic    100 and 10,000 connections, 64 B and 4 KiB, one message in flight
  pipelined  100 connections x 8 messages in flight, 64 B binary (issue 13)
  single     500 connections x 1 in flight, 512 B
Each case runs against one wsmill worker and against wsmill-floor (raw TCP
echo, which batches its replies: one read, one write; and a bare WebSocket
echo) on the same CPU, and records the server's CPU time per echoed message
and, for wsmill, its socket sends per message (status `sends`)."""
import argparse, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Floor, Wsmill, load, pick_groups, proc_cpu_s, read_json, write_json  # noqa: E402

DURATION = os.environ.get("DURATION", "10")
GROUPS = {
    "classic": [(100, 64, 1), (100, 4096, 1), (10000, 64, 1), (10000, 4096, 1)],
    "pipelined": [(100, 64, 8)],
    "single": [(500, 512, 1)],
}


def echo_run(url, n, size, depth, pids, raw=False):
    args = ["echo", "--url", url, "-n", str(n), "-s", str(size), "-d", DURATION, "--cpu", "1",
            "--rate", "20000", "--per-src", "20000", "--depth", str(depth)]
    if raw:
        args.append("--raw")
    cpu0 = proc_cpu_s(pids)
    res, cmd = load(args)
    cpu = proc_cpu_s(pids) - cpu0
    lat = res.get("latency_us", {})
    msgs = res.get("messages", {})
    total = msgs.get("received") or 0  # the CPU is read over the whole run
    return {"command": cmd, "messages_per_s": msgs.get("per_s"), "messages": total,
            "mb_per_s": msgs.get("mb_per_s"), "p50_us": lat.get("p50"), "p99_us": lat.get("p99"),
            "failures": res.get("failures"), "opened": res.get("connections", {}).get("opened"),
            "server_cpu_s": round(cpu, 3),
            "server_cpu_us_per_msg": round(cpu * 1e6 / total, 3) if total else None}


def wsmill_case(n, size, depth):
    srv = Wsmill(1, cpus="0")
    try:
        pids = [w["pid"] for w in srv.status()["workers"]]
        st0 = srv.status()
        row = echo_run(srv.url(), n, size, depth, pids)
        st1 = srv.status()
        tot = lambda st, k: sum(w.get(k, 0) for w in st["workers"])  # noqa: E731
        sends, msgs = tot(st1, "sends") - tot(st0, "sends"), tot(st1, "messages_in") - tot(st0, "messages_in")
        row["sends"] = sends
        row["sends_per_msg"] = round(sends / msgs, 4) if msgs else None
        return row
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    old = read_json("echo.json")
    results = {r.get("group", "classic") + f"/{r['connections']}x{r.get('depth', 1)}x{r['size']}": r
               for r in old.get("results", [])}
    for g in pick_groups(a.only, GROUPS):
        for n, size, depth in GROUPS[g]:
            row = {"group": g, "connections": n, "size": size, "depth": depth}
            row["wsmill"] = wsmill_case(n, size, depth)
            for mode, key, raw in (("echo", "raw_tcp_floor", True), ("upgrade", "ws_floor", False)):
                fl = Floor(mode, cpu=0)
                try:
                    row[key] = echo_run(fl.url(), n, size, depth, [fl.proc.pid], raw=raw)
                finally:
                    fl.stop()
            w, f = row["wsmill"]["messages_per_s"] or 0, row["raw_tcp_floor"]["messages_per_s"] or 0
            row["ratio_to_raw_tcp"] = round(w / f, 3) if f else None
            gf = row["ws_floor"]["messages_per_s"] or 0
            row["ratio_to_ws_floor"] = round(w / gf, 3) if gf else None
            print(json.dumps({"group": g, "connections": n, "size": size, "depth": depth, "wsmill_msg_s": w,
                              "raw_floor_msg_s": f, "ws_floor_msg_s": gf, "ratio_to_raw_tcp": row["ratio_to_raw_tcp"],
                              "wsmill_cpu_us_per_msg": row["wsmill"]["server_cpu_us_per_msg"],
                              "raw_floor_cpu_us_per_msg": row["raw_tcp_floor"]["server_cpu_us_per_msg"],
                              "wsmill_sends_per_msg": row["wsmill"]["sends_per_msg"],
                              "wsmill_p99_us": row["wsmill"]["p99_us"],
                              "raw_floor_p99_us": row["raw_tcp_floor"]["p99_us"]}), flush=True)
            results[f"{g}/{n}x{depth}x{size}"] = row
    path = write_json("echo.json", {"command": "scripts/bench-echo.sh", "duration_s": int(DURATION),
                                    "setup": "server (one worker / floor) pinned to CPU 0, wsmill-load on CPU 1",
                                    "results": list(results.values())})
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
