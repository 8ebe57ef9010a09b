#!/usr/bin/python3
"""The measuring half of bench-scrape.sh (see there): does a Prometheus
scrape every second slow the data path? Each workload runs REPEAT times
without and REPEAT times with a scraper (GET /metrics once a second on one
keep-alive connection, as Prometheus does), alternating, against one
worker pinned to CPU 0 with wsmill-load on CPU 1. The medians are compared
with the spread between runs of the same condition: that spread is the
noise."""
import http.client, json, os, statistics, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import Wsmill, load, proc_cpu_s, write_json  # noqa: E402

DURATION = os.environ.get("DURATION", "10")
REPEAT = int(os.environ.get("REPEAT", "3"))


class Scraper(threading.Thread):
    """GET /metrics every second until stopped; counts scrapes and bytes."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stopped, self.scrapes, self.bytes, self.errors = port, threading.Event(), 0, 0, 0

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stopped.wait(1.0):
            try:
                c.request("GET", "/metrics")
                r = c.getresponse()
                self.bytes += len(r.read())
                self.scrapes += r.status == 200
            except (OSError, http.client.HTTPException):
                self.errors += 1
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.close()


def workload_args(kind, srv):
    common = ["-d", DURATION, "--cpu", "1", "--rate", "20000", "--per-src", "20000"]
    if kind == "echo":
        return ["echo", "--url", srv.url(), "-n", "100", "-s", "64", "--depth", "8"] + common
    return ["fanout", "--url", srv.url("/ch/fan"), "--pub-url", srv.pub_url("/pub/fan"), "-n", "10000",
            "--pub-rate", "50", "-s", "64", "--pipeline", "1000", "--drain", "20"] + common


def run(kind, scrape):
    srv = Wsmill(1, cpus="0", publish=True, extra="client_publish = on\nmax_backpressure = 16M\n")
    scraper = Scraper(srv.pub_port) if scrape else None
    try:
        pids = [w["pid"] for w in srv.status()["workers"]]
        if scraper:
            scraper.start()
        cpu0 = proc_cpu_s(pids)
        res, cmd = load(workload_args(kind, srv))
        cpu = proc_cpu_s(pids) - cpu0
    finally:
        if scraper:
            scraper.stopped.set()
            scraper.join()
        srv.stop()
    if kind == "echo":
        rate, total, p99 = res["messages"]["per_s"], res["messages"]["received"], res["latency_us"]["p99"]
    else:
        rate, total, p99 = res["deliveries"]["per_s"], res["deliveries"]["received"], res["delay_us"]["p99"]
    return {"kind": kind, "scrape": scrape, "command": cmd, "per_s": rate, "p99_us": p99,
            "server_cpu_us_per_msg": round(cpu * 1e6 / total, 4) if total else None,
            "scrapes": scraper.scrapes if scraper else 0, "scrape_errors": scraper.errors if scraper else 0,
            "scrape_bytes": scraper.bytes if scraper else 0}


def summary(rows, key):
    v = [r[key] for r in rows if r[key] is not None]
    return {"median": statistics.median(v), "min": min(v), "max": max(v)} if v else None


def main():
    out = {"command": "scripts/bench-scrape.sh", "duration_s": int(DURATION), "repeat": REPEAT,
           "setup": "one worker pinned to CPU 0, wsmill-load on CPU 1; scraper: GET /metrics every 1 s",
           "runs": [], "summary": {}}
    for kind in ("echo", "fanout"):
        rows = []
        for i in range(REPEAT):
            for scrape in ((False, True) if i % 2 == 0 else (True, False)):
                rows.append(run(kind, scrape))
                print(json.dumps({k: rows[-1][k] for k in ("kind", "scrape", "per_s", "p99_us",
                                                            "server_cpu_us_per_msg", "scrapes")}), flush=True)
        out["runs"] += rows
        for scrape in (False, True):
            sel = [r for r in rows if r["scrape"] == scrape]
            out["summary"][f"{kind}/{'scrape' if scrape else 'none'}"] = {
                k: summary(sel, k) for k in ("per_s", "p99_us", "server_cpu_us_per_msg")}
    print(json.dumps(out["summary"], indent=1))
    print("wrote", write_json("scrape.json", out), file=sys.stderr)


if __name__ == "__main__":
    main()
