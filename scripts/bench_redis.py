#!/usr/bin/python3
"""The measuring half of bench-redis.sh (see there).

usage: bench_redis.py [--only GROUP[,GROUP...]] [--list]
Groups:
  local-one-node     one wsmill node (broker = local, 2 workers), 3 x SUBS subscribers
  redis-three-nodes  three nodes (broker = redis, 2 workers each) on one redis-server,
                     SUBS subscribers on each; the publisher on node 1
  redis-connections  Redis alone: what one PUBLISH costs redis-server with 1, 2, 6 and
                     64 subscriber connections on the channel (the per-worker choice)
Merges its rows into docs/bench/redis.json (rows of groups not run are kept)."""
import argparse, json, os, selectors, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from bench_common import LOAD, Wsmill, free_port, in_netns, load, proc_cpu_s, shown, write_json  # noqa: E402

SUBS = int(os.environ.get("SUBS", "2000"))          # subscribers per node
PUB_D = os.environ.get("DURATION", "5")             # s of publishing per rate
RATES = [int(r) for r in os.environ.get("RATES", "25,100").split(",")]  # messages/s
SIZE = 64
CONF = "client_publish = on\nmax_backpressure = 16M\nslow_consumer = drop\n"
REDIS_SERVER = "/usr/bin/redis-server"
COST_RATE = int(os.environ.get("COST_RATE", "5000"))  # PUBLISH/s in redis-connections
COST_CONNS = [1, 2, 6, 64]


def redis_version():
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True).stdout
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("v=")), "?")


def machine_busy(seconds=1.0):
    """Share of both CPUs busy over `seconds` (others' work included)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], sum(v)
    a = snap()
    time.sleep(seconds)
    b = snap()
    return round(100.0 * (b[0] - a[0]) / max(1, b[1] - a[1]), 1)


def resp(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)


class Redis:
    """A redis-server of its own on a free port (no persistence), stopped by pid."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wsmill-bench-redis-")
        cmd = in_netns([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while self.cmd("PING") != "+PONG":
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start; see " + self.dir)
            time.sleep(0.05)

    def cmd(self, *args):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                resp(s, *args)
                return s.recv(65536).decode(errors="replace").strip()
        except OSError:
            return None

    def numsub(self, chan):
        r = self.cmd("PUBSUB", "NUMSUB", chan)  # *2 $len chan :N
        return int(r.rsplit(":", 1)[1]) if r and ":" in r else -1

    def stop(self):
        bench_common.stop_process(self.proc, 10)


# -- three nodes + Redis vs one node -----------------------------------------------

def subscriptions(node):
    return sum(w["subscriptions"] for w in node.status()["workers"])


def run_rate(group, nodes, redis, rate):
    per_proc = SUBS
    sub_d = float(PUB_D) + 12
    procs, cmds = [], []
    # One subscribe process per node's worth of subscribers; with one node all
    # three go to it, so the load tool does the same work in both setups.
    targets = nodes if len(nodes) == 3 else nodes * 3
    for k, node in enumerate(targets):
        cmd = in_netns([LOAD, "subscribe", "--url", node.url("/ch/fan"), "-n", str(per_proc), "-d", str(sub_d),
                        "--rate", "5000", "--src-base", f"127.9.{k + 1}.2", "--per-src", "25000", "-q"])
        cmds.append(shown(cmd))
        print("+", shown(cmd), file=sys.stderr, flush=True)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    want = {id(n): per_proc * targets.count(n) for n in nodes}
    deadline = time.time() + 30
    while not all(subscriptions(n) == want[id(n)] for n in nodes):
        if time.time() > deadline:
            raise RuntimeError("subscribers did not all open")
        time.sleep(0.1)
    if redis:
        workers = sum(1 for n in nodes for w in n.status()["workers"] if w["subscriptions"])
        while redis.numsub("wsmill:fan") != workers:
            if time.time() > deadline:
                raise RuntimeError("workers did not all subscribe in Redis")
            time.sleep(0.05)
    busy_before = machine_busy()
    pids = [w["pid"] for n in nodes for w in n.status()["workers"]]
    before = {"nodes": proc_cpu_s(pids), "redis": proc_cpu_s([redis.proc.pid]) if redis else 0.0}
    pub, pub_cmd = load(["publish", "--url", nodes[0].pub_url("/pub/fan"), "--rate", str(rate), "-d", PUB_D,
                         "-s", str(SIZE), "--pipeline", "1000", "--drain", "10"])
    after = {"nodes": proc_cpu_s(pids), "redis": proc_cpu_s([redis.proc.pid]) if redis else 0.0}
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=sub_d + 60)
        lines = out.strip().splitlines()
        results.append(json.loads(lines[-1]) if lines else {})
    acked = pub.get("publish", {}).get("acked", 0)
    window = pub.get("window_s") or float(PUB_D)
    received = sum(r.get("deliveries", {}).get("received", 0) for r in results)
    expected = acked * per_proc * len(targets)
    per_node = []
    for k, r in enumerate(results):
        d, dl = r.get("deliveries", {}), r.get("delay_us", {})
        per_node.append({
            "node": nodes.index(targets[k]) + 1, "subscribers": r.get("connections", {}).get("opened"),
            "received": d.get("received"), "gaps": d.get("gaps"), "duplicates": d.get("duplicates"),
            "reordered": d.get("reordered"), "first_to_last_s": d.get("first_to_last_s"),
            "delay_ms": {q: round(dl.get(q, 0) / 1000, 1) for q in ("p50", "p90", "p99", "max")},
            "failures": r.get("failures")})
    row = {
        "group": group, "nodes": len(nodes), "subscribers": per_proc * len(targets), "pub_rate": rate,
        "asked_per_s": rate * per_proc * len(targets),
        "deliveries_per_s": round(received / window, 1), "received": received, "expected": expected,
        "missing": expected - received,
        "duplicates": sum(p["duplicates"] or 0 for p in per_node), "gaps": sum(p["gaps"] or 0 for p in per_node),
        "reordered": sum(p["reordered"] or 0 for p in per_node),
        "delay_ms_p50_worst": max(p["delay_ms"]["p50"] for p in per_node),
        "delay_ms_p99_worst": max(p["delay_ms"]["p99"] for p in per_node),
        "publish": {"sent": pub.get("publish", {}).get("sent"), "acked": acked,
                    "errors": pub.get("publish", {}).get("errors"),
                    "latency_ms_p99": round(pub.get("publish", {}).get("latency_us", {}).get("p99", 0) / 1000, 1)},
        "per_subscribe_process": per_node,
        "cpu_s": {"wsmill_workers": round(after["nodes"] - before["nodes"], 2),
                  "redis_server": round(after["redis"] - before["redis"], 2)},
        "machine_busy_pct_before": busy_before, "window_s": window,
        "commands": {"subscribe": cmds, "publish": pub_cmd},
    }
    if redis:
        row["broker"] = [n.status()["broker"] for n in nodes]
    print(json.dumps({k: row[k] for k in ("group", "pub_rate", "asked_per_s", "deliveries_per_s", "missing",
                                          "duplicates", "delay_ms_p50_worst", "delay_ms_p99_worst", "cpu_s",
                                          "machine_busy_pct_before")}), flush=True)
    return row


def run_nodes(group):
    redis = Redis() if group.startswith("redis") else None
    extra = CONF + (f"broker = redis\nredis_url = redis://127.0.0.1:{redis.port}\n" if redis else "")
    nodes = []
    try:
        for _ in range(3 if redis else 1):
            nodes.append(Wsmill(2, extra=extra, publish=True))
        rows = [run_rate(group, nodes, redis, rate) for rate in RATES]
    finally:
        for n in nodes:
            n.stop()
        if redis:
            redis.stop()
    return {"setup": {"nodes": len(nodes), "workers_per_node": 2, "broker": "redis" if redis else "local",
                      "subscribers_per_subscribe_process": SUBS, "subscribe_processes": 3},
            "runs": rows}


# -- Redis's cost per subscriber connection ----------------------------------------

def reader(port, conns, seconds):
    """(child process) conns subscriber connections on wsmill:cost; counts
    the messages they receive until `seconds` passed, prints JSON."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        resp(s, "SUBSCRIBE", "wsmill:cost")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    print("ready", flush=True)
    count = 0
    tail = {}
    end = time.time() + seconds
    marker = b"$7\r\nmessage\r\n"
    while time.time() < end:
        for key, _ in sel.select(0.1):
            data = key.fileobj.recv(1 << 18)
            if not data:
                continue
            buf = tail.get(key.fd, b"") + data
            count += buf.count(marker)
            tail[key.fd] = buf[-(len(marker) - 1):]
    print(json.dumps({"received": count}), flush=True)


def run_cost():
    rows = []
    for conns in COST_CONNS:
        redis = Redis()
        seconds = float(PUB_D)
        try:
            rd = subprocess.Popen(in_netns([sys.executable, os.path.abspath(__file__), "--reader", str(redis.port),
                                            str(conns), str(seconds + 6)]), stdout=subprocess.PIPE, text=True)
            assert rd.stdout.readline().strip() == "ready"
            while redis.numsub("wsmill:cost") != conns:
                time.sleep(0.05)
            busy_before = machine_busy()
            pub = socket.create_connection(("127.0.0.1", redis.port))
            pub.setblocking(False)
            payload = b"x" * SIZE
            one = b"*3\r\n$7\r\nPUBLISH\r\n$11\r\nwsmill:cost\r\n$%d\r\n%s\r\n" % (SIZE, payload)
            c0 = proc_cpu_s([redis.proc.pid])
            t0 = time.time()
            sent = 0
            while True:  # COST_RATE PUBLISH/s in 10 ms batches, answers read and dropped
                now = time.time()
                if now - t0 >= seconds:
                    break
                due = int((now - t0) * COST_RATE) - sent
                if due > 0:
                    pub.setblocking(True)
                    pub.sendall(one * due)
                    pub.setblocking(False)
                    sent += due
                try:
                    while pub.recv(1 << 16):
                        pass
                except BlockingIOError:
                    pass
                time.sleep(0.01)
            elapsed = time.time() - t0
            time.sleep(0.5)
            c1 = proc_cpu_s([redis.proc.pid])
            pub.close()
            out = json.loads(rd.communicate(timeout=seconds + 30)[0].strip().splitlines()[-1])
        finally:
            redis.stop()
        redis_cpu = c1 - c0
        row = {"subscriber_connections": conns, "publishes": sent, "publish_per_s": round(sent / elapsed, 1),
               "deliveries_expected": sent * conns, "deliveries_received": out["received"],
               "redis_cpu_s": round(redis_cpu, 2), "redis_cpu_pct": round(100 * redis_cpu / elapsed, 1),
               "redis_us_per_publish": round(redis_cpu * 1e6 / max(1, sent), 2),
               "machine_busy_pct_before": busy_before}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"setup": {"publish_rate": COST_RATE, "seconds": float(PUB_D), "payload": SIZE,
                      "what": "one Python publisher pipelining PUBLISH wsmill:cost at publish_rate; one Python "
                              "process reading all subscriber connections; redis-server CPU from /proc"},
            "runs": rows}


GROUPS = {"local-one-node": lambda: run_nodes("local-one-node"),
          "redis-three-nodes": lambda: run_nodes("redis-three-nodes"),
          "redis-connections": run_cost}


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--reader":
        reader(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated groups (default: all)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(GROUPS))
        return
    names = bench_common.pick_groups(a.only, GROUPS)
    doc = bench_common.read_json("redis.json")
    groups = doc.get("groups", {})
    for n in names:
        groups[n] = GROUPS[n]()
        groups[n]["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        groups[n]["env"] = {"SUBS": SUBS, "DURATION": float(PUB_D), "RATES": RATES, "COST_RATE": COST_RATE}
    doc = {
        "command": "scripts/bench-redis.sh",
        "binaries": {"wsmill": shown([bench_common.BIN]), "wsmill-load": shown([LOAD]),
                     "redis-server": REDIS_SERVER + " (Debian " + redis_version() + ")"},
        "server_config": CONF.strip().split("\n") + ["workers = 2", "broker = local | redis"],
        "setup": ("Measured on a shared 2-vCPU machine (other engineers' builds and tests run meanwhile; "
                  "machine_busy_pct_before is the load in the second before a run, ours not included): "
                  "everything (nodes, redis-server, wsmill-load) on the same two CPUs, nothing pinned. "
                  "Subscribers: three wsmill-load subscribe processes of SUBS each on ws://.../ch/fan "
                  "(one per node; with one node all three on it). Publisher: wsmill-load publish on node 1's "
                  "publish API, 64-byte stamped messages at pub_rate for DURATION s."),
        "fields": ("deliveries_per_s: subscriber receipts / publish window; missing: expected - received when "
                   "the subscribe processes ended; delay_ms_*_worst: the worst subscribe process's percentile of "
                   "publisher stamp to receipt; cpu_s: CPU seconds over the publish window (incl. its drain)."),
        "findings": doc.get("findings", []),
        "groups": groups,
    }
    print("wrote", write_json("redis.json", doc), file=sys.stderr)


if __name__ == "__main__":
    main()
