#!/usr/bin/python3
"""The measuring half of bench-handshakes.sh (see there)."""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Floor, Wsmill, load, write_json  # noqa: E402

N = os.environ.get("N", "15000")
DURATION = os.environ.get("DURATION", "10")
RUNS = int(os.environ.get("RUNS", "3"))


def ramp(url, src):
    res, cmd = load(["hold", "--url", url, "-n", N, "--rate", "0", "-d", "1", "--cpu", "1", "--per-src", "16000",
                     "--src-base", src, "--max-pending", "1000"])
    return {"command": cmd, "rate": res.get("connect_rate"), "opened": res.get("connections", {}).get("opened"),
            "failures": res.get("failures"), "p99_us": res.get("handshake_us", {}).get("p99")}


def churn(url):
    res, cmd = load(["churn", "--handshake-only", "--url", url, "-n", "64", "-d", DURATION, "--cpu", "1"])
    return {"command": cmd, "cycles_per_s": res.get("cycles", {}).get("per_s"), "failures": res.get("failures")}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def main():
    rows = {"wsmill": {"ramp": [], "churn": []}, "floor": {"ramp": [], "churn": []}}
    for i in range(RUNS):
        # Alternate, so drift in the machine's load hits both alike.
        srv = Wsmill(1, cpus="0")
        try:
            rows["wsmill"]["ramp"].append(ramp(srv.url(), f"127.{20 + i}.0.2"))
            rows["wsmill"]["churn"].append(churn(srv.url()))
        finally:
            srv.stop()
        fl = Floor("upgrade", cpu=0)
        try:
            rows["floor"]["ramp"].append(ramp(fl.url(), f"127.{40 + i}.0.2"))
            rows["floor"]["churn"].append(churn(fl.url()))
        finally:
            fl.stop()
    summary = {}
    for who in rows:
        summary[who] = {"ramp_rate_median": median(r["rate"] for r in rows[who]["ramp"]),
                        "churn_cycles_median": median(r["cycles_per_s"] for r in rows[who]["churn"])}
    ratio_ramp = summary["wsmill"]["ramp_rate_median"] / summary["floor"]["ramp_rate_median"]
    ratio_churn = summary["wsmill"]["churn_cycles_median"] / summary["floor"]["churn_cycles_median"]
    out = {"command": "scripts/bench-handshakes.sh", "connections": int(N), "runs": RUNS,
           "setup": "server (one wsmill worker, or wsmill-floor --mode upgrade) on CPU 0, wsmill-load on CPU 1",
           "summary": summary, "ratio_ramp": round(ratio_ramp, 3), "ratio_churn": round(ratio_churn, 3),
           "runs_detail": rows}
    print(json.dumps({"summary": summary, "ratio_ramp": out["ratio_ramp"], "ratio_churn": out["ratio_churn"]}))
    write_json("handshakes.json", out)


if __name__ == "__main__":
    main()
