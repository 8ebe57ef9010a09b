#!/usr/bin/python3
"""The measuring half of bench-connections.sh (see there)."""
import json, os, re, resource, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from bench_common import BIN, LOAD, ROOT, Wsmill, in_netns, shown, status  # noqa: E402

HOLD = int(os.environ.get("HOLD", "60"))
RATE = int(os.environ.get("RATE", "12000"))
PER_WORKER = 19000
SHIPPED = os.path.join(ROOT, "conf", "wsmill.conf")


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def meminfo_kib(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def sockstat(pid):
    out = {}
    with open(f"/proc/{pid}/net/sockstat") as f:  # the server's network namespace
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                out = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts), 2)}
    return out


def sample(st_path):
    st = status(st_path)
    pids = [w["pid"] for w in st["workers"]]
    return {
        "connections": st["connections"],
        "workers_rss_kib": sum(proc_kib(p, "VmRSS") for p in pids),
        "workers_anon_kib": sum(proc_kib(p, "RssAnon") for p in pids),
        "master_rss_kib": proc_kib(st["master_pid"], "VmRSS"),
        "slab_kib": meminfo_kib("Slab"),
        "mem_available_kib": meminfo_kib("MemAvailable"),
        "tcp": sockstat(st["master_pid"]),
    }


def plan_for(n):
    """PLAN=1: what `wsmill check --plan` prints for N connections on this
    box (its memory, cores and hard open-file limit, clients on it too).
    Returns the command and its `key = value` lines."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cmd = [BIN, "check", "--plan", str(n), "--memory", f"{meminfo_kib('MemTotal')}k", "--cores",
           str(os.cpu_count()), "--local-clients", "-c", SHIPPED]
    if hard != resource.RLIM_INFINITY:
        cmd[-3:-3] = ["--nofile", str(hard)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return shown(cmd), [ln for ln in out.splitlines() if re.match(r"^[a-z_]+ = ", ln)]


def start_server(n):
    """The server for n connections: the benchmark's own settings, or with
    PLAN=1 the shipped conf/wsmill.conf plus only what the plan prints."""
    extra = os.environ.get("EXTRA_CONF", "").replace(";", "\n") + "\n"
    if os.environ.get("PLAN"):
        cmd, lines = plan_for(n)
        print("+ " + cmd + "\n  " + "\n  ".join(lines), file=sys.stderr, flush=True)
        workers = int(next(ln for ln in lines if ln.startswith("workers = ")).split(" = ")[1])
        rest = "\n".join(ln for ln in lines if not ln.startswith("workers = ")) + "\n"
        return Wsmill(workers, extra=rest + extra, bench_limits=False, base_conf=SHIPPED), {"plan": cmd,
                                                                                             "plan_lines": lines}
    workers = int(os.environ.get("WORKERS", "0")) or max(2, -(-n // PER_WORKER))
    return Wsmill(workers, extra="handshake_timeout = 30s\n" + extra), {}


def run_one(n, load_args=(), verify=None):
    """Holds n connections; load_args go to wsmill-load (e.g. --deflate),
    verify is how many echo once (default min(1000, n))."""
    srv, plan = start_server(n)
    workers = len(srv.status()["workers"])
    st_path = srv.status_path
    try:
        # Warm-up: fault in each worker's code paths once (not per connection).
        # With load_args (e.g. --deflate) the warm-up connections also echo
        # once, so per-worker state (zlib streams) is in before the baseline.
        warm = ["--verify-sample", str(workers * 20)] + list(load_args) if load_args else []
        subprocess.run(in_netns([LOAD, "hold", "--url", srv.url(), "-n", str(workers * 20), "-d", "1", "-q",
                                 "--src-base", "127.1.0.2"] + warm), stdout=subprocess.DEVNULL, check=False)
        time.sleep(3)
        before = sample(st_path)
        cmd = [LOAD, "hold", "--url", srv.url(), "-n", str(n), "--rate", str(RATE),
               "-d", str(HOLD), "--verify-sample", str(verify if verify is not None else min(1000, n)),
               "--per-src", os.environ.get("PER_SRC", "16000"),
               "--max-pending", os.environ.get("MAX_PENDING", "100"), "--timeout", os.environ.get("TIMEOUT", "300"),
               "--conn-timeout", os.environ.get("CONN_TIMEOUT", "30"), "-q"] + list(load_args)
        cmd = in_netns(cmd)
        print("+", shown(cmd), file=sys.stderr, flush=True)
        load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        holding = None
        t0 = time.time()
        reached = None
        best = None  # the sample with the most connections, if 99% is never reached
        while load.poll() is None:
            time.sleep(2)
            try:
                s = sample(st_path)
            except (OSError, ValueError):
                continue
            if best is None or s["connections"] >= best["connections"]:
                best = s
            if s["connections"] >= 0.99 * n:
                reached = reached or time.time()
                # The last sample while all are held, and at least 10 s in,
                # when the allocator has returned the ramp's freed memory.
                if holding is None or time.time() - reached >= 10:
                    holding = s
                    holding["at_s"] = round(time.time() - t0, 1)
        if holding:
            print(f"  held {holding['connections']} connections (sampled at {holding['at_s']} s)", file=sys.stderr)
        out = load.stdout.read().strip().splitlines()
        result = json.loads(out[-1]) if out else {}
        held = holding or best or sample(st_path)
        conns = max(held["connections"], 1)
        return {
            "connections": n,
            "workers": workers,
            "command": shown(cmd),
            "extra_conf": os.environ.get("EXTRA_CONF", ""),
            "ramp_s": result.get("ramp_s"),
            "handshakes_per_s": result.get("connect_rate"),
            "opened": result.get("connections", {}).get("opened"),
            "failed": result.get("connections", {}).get("failed"),
            "failures": result.get("failures"),
            "verify": result.get("verify"),
            "closed_clean": result.get("connections", {}).get("closed_clean"),
            "handshake_us": result.get("handshake_us"),
            "server_connections_while_holding": held["connections"],
            "user_bytes_per_conn": round((held["workers_rss_kib"] - before["workers_rss_kib"]) * 1024 / conns, 1),
            "user_anon_bytes_per_conn": round((held["workers_anon_kib"] - before["workers_anon_kib"]) * 1024 / conns, 1),
            "kernel_slab_bytes_per_conn": round((held["slab_kib"] - before["slab_kib"]) * 1024 / conns, 1),
            "kernel_tcp_sockets": held["tcp"].get("inuse"),
            "kernel_tcp_mem_pages": held["tcp"].get("mem"),
            "before": before,
            "holding": held,
            "load_exit": load.returncode,
            **plan,
        }
    finally:
        srv.stop()


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("python3-matplotlib missing: no plot", file=sys.stderr)
        return
    xs = [r["connections"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [r["user_bytes_per_conn"] * r["connections"] / 2**20 for r in results], "o-",
            label="wsmill user space (worker RSS growth)")
    ax.plot(xs, [r["kernel_slab_bytes_per_conn"] * r["connections"] / 2**20 for r in results], "s-",
            label="kernel slab (server + client sockets)")
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("MiB")
    ax.set_title("Memory against connections (wsmill, one machine)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ns = [int(a) for a in sys.argv[1:]] or [10000, 100000, 250000, 500000, 1000000]
    results = []
    buckets = None
    if os.environ.get("NETNS", "wsmill-bench") and not bench_common.NETNS:
        bench_common.NETNS = os.environ.get("NETNS", "wsmill-bench")
    if bench_common.NETNS:
        buckets = bench_common.netns_setup(bench_common.NETNS, 2 * max(ns))
        print(f"network namespace {bench_common.NETNS}: established hash {buckets} buckets", file=sys.stderr)
    try:
        results = [run_one(n) for n in ns]
    finally:
        if bench_common.NETNS:
            bench_common.netns_delete(bench_common.NETNS)
    for r in results:
        print(json.dumps({k: r[k] for k in ("connections", "workers", "ramp_s", "handshakes_per_s", "opened",
                                             "failed", "verify", "user_bytes_per_conn",
                                             "user_anon_bytes_per_conn", "kernel_slab_bytes_per_conn")}),
              flush=True)
    # Merge with earlier runs (one entry per connection count), so the plot
    # covers every size measured, each with the command line that made it.
    merged = {r["connections"]: r for r in bench_common.read_json("connections.json").get("results", [])}
    for r in results:
        r["hold_s"], r["rate"], r["netns"], r["ehash_buckets"] = HOLD, RATE, bench_common.NETNS, buckets
        merged[r["connections"]] = r
    allr = [merged[k] for k in sorted(merged)]
    bench_common.write_json("connections.json", {"command": "scripts/bench-connections.sh N...", "results": allr})
    plot(allr, os.path.join(ROOT, "docs", "bench", "connections.png"))
    return 0 if all(r["failed"] == 0 and r["opened"] == r["connections"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
