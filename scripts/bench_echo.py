#!/usr/bin/python3
"""The measuring half of bench-echo.sh (see there)."""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Floor, Wsmill, load, write_json  # noqa: E402

DURATION = os.environ.get("DURATION", "10")


def echo_run(url, n, size, raw=False):
    args = ["echo", "--url", url, "-n", str(n), "-s", str(size), "-d", DURATION, "--cpu", "1",
            "--rate", "20000", "--per-src", "20000"]
    if raw:
        args.append("--raw")
    res, cmd = load(args)
    lat = res.get("latency_us", {})
    return {"command": cmd, "messages_per_s": res.get("messages", {}).get("per_s"),
            "mb_per_s": res.get("messages", {}).get("mb_per_s"), "p50_us": lat.get("p50"),
            "p99_us": lat.get("p99"), "failures": res.get("failures"),
            "opened": res.get("connections", {}).get("opened")}


def main():
    cases = [(100, 64), (100, 4096), (10000, 64), (10000, 4096)]
    results = []
    for n, size in cases:
        row = {"connections": n, "size": size}
        srv = Wsmill(1, cpus="0")
        try:
            row["wsmill"] = echo_run(srv.url(), n, size)
        finally:
            srv.stop()
        for mode, key, raw in (("echo", "raw_tcp_floor", True), ("upgrade", "ws_floor", False)):
            fl = Floor(mode, cpu=0)
            try:
                row[key] = echo_run(fl.url(), n, size, raw=raw)
            finally:
                fl.stop()
        w, f = row["wsmill"]["messages_per_s"] or 0, row["raw_tcp_floor"]["messages_per_s"] or 0
        row["ratio_to_raw_tcp"] = round(w / f, 3) if f else None
        g = row["ws_floor"]["messages_per_s"] or 0
        row["ratio_to_ws_floor"] = round(w / g, 3) if g else None
        print(json.dumps({"connections": n, "size": size, "wsmill_msg_s": w, "raw_floor_msg_s": f,
                          "ws_floor_msg_s": g, "ratio_to_raw_tcp": row["ratio_to_raw_tcp"],
                          "wsmill_p99_us": row["wsmill"]["p99_us"],
                          "raw_floor_p99_us": row["raw_tcp_floor"]["p99_us"]}), flush=True)
        results.append(row)
    path = write_json("echo.json", {"command": "scripts/bench-echo.sh", "duration_s": int(DURATION),
                                    "setup": "server (one worker / floor) pinned to CPU 0, wsmill-load on CPU 1",
                                    "results": results})
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
