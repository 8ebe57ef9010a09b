"""bench_history.py: what history and resume cost (docs/history.md).

Groups (--only NAME,...; all by default):
  fanout      10,000 subscribers of one channel, one worker on CPU 0, the
              load tool on CPU 1 (--recv spin), one HTTP publisher at RATE
              messages/s for DURATION s: history off (history_size 0, raw
              subscribers), on (history_size 1000, raw), and on with wsmill.v1
              subscribers (envelopes), alternating, REPEAT times each.
  memory      10,000 idle subscribers (no publishing), one worker: the
              worker's RssAnon above an idle worker's, per connection, for
              the same three setups.
  storm       10,000 wsmill.v1 clients resuming at once (--rate 0), each 100
              messages behind (100 published first to channel storm): time
              until the last catch-up message arrived, beside the same
              10,000 subscribing fresh (nothing to catch up).
  redis-script what one publish costs redis-server: PUBLISH alone (before
              history), the Lua script wsmill runs (its text is read from
              worker/pubsub/redis_hist.c), and the same with a Stream (XADD
              MAXLEN) in place of the list; redis-benchmark, pipelined.
  resume-1000 the issue's figure: tests/integration/test_history.py's
              resume test with HIST_SUBS=1000 HIST_AWAY=5 HIST_RATE=1000.
Writes docs/bench/history.json (merging the groups run). Env: DURATION (10),
RATE (100), REPEAT (2), BENCH_NICE=1."""
import argparse, json, os, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common
from bench_common import ROOT, Wsmill, load, read_json, write_json, pick_groups

DURATION = os.environ.get("DURATION", "10")
RATE = int(os.environ.get("RATE", "100"))
REPEAT = int(os.environ.get("REPEAT", "2"))
N = int(os.environ.get("BENCH_N", "10000"))  # smaller only to try the script out
BASE = "max_backpressure = 16M\nslow_consumer = drop\nhistory_channels = 64\n"
SETUPS = {  # name: (extra config, wsmill-load flags)
    "off": ("history_size = 0\n", []),
    "on": ("history_size = 1000\n", []),
    "on-v1": ("history_size = 1000\n", ["--v1"]),
}


def fanout_once(setup):
    extra, flags = SETUPS[setup]
    srv = Wsmill(1, extra=BASE + extra, cpus="0", publish=True)
    try:
        pids = [w["pid"] for w in srv.status()["workers"]]
        cpu0 = bench_common.proc_cpu_s(pids)
        res, cmd = load(["fanout", "--url", srv.url("/ch/fan"), "--pub-url", srv.pub_url("/pub/fan"), "-n",
                         str(N), "--pub-rate", str(RATE), "-s", "64", "-d", DURATION, "--pipeline", "1000",
                         "--rate", "10000", "--per-src", "25000", "--src-base", "127.9.0.2", "--drain", "20",
                         "--recv", "spin", "--cpu", "1"] + flags)
        cpu = bench_common.proc_cpu_s(pids) - cpu0
    finally:
        srv.stop()
    d, delay = res.get("deliveries", {}), res.get("delay_us", {})
    row = {"setup": setup, "subscribers": N, "pub_rate": RATE, "asked_per_s": d.get("asked_per_s"),
           "deliveries_per_s": d.get("per_s"), "expected": d.get("expected"), "missing": d.get("missing"),
           "gaps": d.get("gaps"), "duplicates": d.get("duplicates"),
           "delay_ms": {k: round(delay.get(k, 0) / 1000, 1) for k in ("p50", "p99")},
           "server_cpu_s": round(cpu, 2),
           "server_ns_per_delivery": round(cpu * 1e9 / d["received"], 1) if d.get("received") else None,
           "command": cmd}
    print(json.dumps({k: row[k] for k in row if k != "command"}), flush=True)
    return row


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def memory_once(setup):
    extra, flags = SETUPS[setup]
    srv = Wsmill(1, extra=BASE + extra, cpus="0", publish=True)
    try:
        pid = srv.status()["workers"][0]["pid"]
        time.sleep(1)
        idle = rss_anon(pid)
        box = {}
        t = threading.Thread(target=lambda: box.update(r=load(
            ["subscribe", "--url", srv.url("/ch/mem"), "-n", str(N), "-d", "6", "--rate", "10000", "--per-src",
             "25000", "--src-base", "127.9.0.2", "--cpu", "1"] + flags)))
        t.start()
        time.sleep(4 + N / 10000)
        held = rss_anon(pid)
        conns = srv.status()["workers"][0]["connections"]
        t.join()
    finally:
        srv.stop()
    row = {"setup": setup, "connections": conns, "worker_rss_anon_idle": idle, "worker_rss_anon_held": held,
           "bytes_per_connection": round((held - idle) / conns, 1) if conns else None,
           "command": box.get("r", ({}, ""))[1]}
    print(json.dumps({k: row[k] for k in row if k != "command"}), flush=True)
    return row


def publish_n(url, n):
    res, cmd = load(["publish", "--url", url, "--rate", "1000", "-d", str(n / 1000), "-s", "64"])
    return res.get("publish", {}).get("acked", 0), cmd


def storm_once(behind):
    srv = Wsmill(1, extra=BASE + "history_size = 1000\n", cpus="0", publish=True)
    try:
        with urllib.request.urlopen(srv.pub_url("/channels/storm")) as r:
            pos = json.load(r)
        acked, pcmd = publish_n(srv.pub_url("/pub/storm"), behind) if behind else (0, "")
        query = f"?resume=storm:{pos['epoch']}:0" if behind else ""
        res, cmd = load(["subscribe", "--url", srv.url("/ch/storm" + query), "-n", str(N), "-d", "3", "--rate", "0",
                         "--per-src", "25000", "--src-base", "127.9.0.2", "--cpu", "1", "--v1"])
    finally:
        srv.stop()
    d = res.get("deliveries", {})
    row = {"behind": behind, "published_first": acked, "clients": N, "ramp_s": res.get("ramp_s"),
           "received": d.get("received"), "expected": N * behind, "gaps": d.get("gaps"),
           "duplicates": d.get("duplicates"), "first_to_last_s": d.get("first_to_last_s"),
           "handshake_ms_p99": round(res.get("handshake_us", {}).get("p99", 0) / 1000, 1),
           "failures": res.get("failures"), "publish_command": pcmd, "command": cmd}
    print(json.dumps({k: row[k] for k in row if "command" not in k}), flush=True)
    return row


def lua_from_source(name):
    """The Lua of `static const char NAME[]` in redis_hist.c (with EPOCH_LUA)."""
    import re
    src = open(os.path.join(ROOT, "worker", "pubsub", "redis_hist.c")).read()
    def body(block):
        return "".join(bytes(m, "utf-8").decode("unicode_escape") for m in re.findall(r'"((?:[^"\\]|\\.)*)"', block))
    epoch = body(re.search(r"#define EPOCH_LUA(.*?)\n\n", src, re.S).group(1))
    main = body(re.search(r"static const char " + name + r"\[\] =\s*EPOCH_LUA(.*?);\n", src, re.S).group(1))
    return epoch + main


def redis_script():
    import shutil, signal, tempfile
    port = bench_common.free_port()
    d = tempfile.mkdtemp(prefix="wsmill-bench-redis-")
    rs = subprocess.Popen(bench_common.in_netns(["taskset", "-c", "0", "redis-server", "--port", str(port),
                                                 "--save", "", "--appendonly", "no", "--dir", d]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    lua = lua_from_source("PUBLISH_LUA")
    stream = lua.replace("redis.call('RPUSH', k .. ':h', off .. ' ' .. ms .. ' ' .. op .. '\\n' .. ARGV[3])\n"
                         "    redis.call('LTRIM', k .. ':h', -size, -1)",
                         "redis.call('XADD', k .. ':s', 'MAXLEN', '~', size, '0-' .. off, 'm', ARGV[3])")
    assert stream != lua, "the list commands were not found in the script"
    payload = "x" * 64
    cases = [("publish", ["PUBLISH", "wsmill:bench", payload]),
             ("lua-list", ["EVAL", lua, "1", "wsmill:bench", "1", "bench", payload, "1000", "300000", "wsmill:"]),
             ("lua-stream", ["EVAL", stream, "1", "wsmill:bench2", "1", "bench2", payload, "1000", "300000",
                             "wsmill:"]),
             ("lua-no-history", ["EVAL", lua, "1", "wsmill:bench3", "1", "bench3", payload, "0", "300000",
                                 "wsmill:"])]
    rows = []
    try:
        for name, cmd in cases:
            n = int(os.environ.get("REDIS_N", "200000"))
            c0 = bench_common.proc_cpu_s([rs.pid])
            t0 = time.time()
            out = subprocess.run(bench_common.in_netns(["taskset", "-c", "1", "redis-benchmark", "-p", str(port),
                                                        "-n", str(n), "-P", "16", "-c", "4", "-q"] + cmd),
                                 capture_output=True, text=True).stdout
            secs = time.time() - t0
            cpu = bench_common.proc_cpu_s([rs.pid]) - c0
            row = {"case": name, "commands": n, "seconds": round(secs, 2), "per_s": round(n / secs),
                   "redis_cpu_us_per_command": round(cpu * 1e6 / n, 2),
                   "redis_benchmark": out.strip().splitlines()[-1:] if out else None}
            print(json.dumps(row), flush=True)
            rows.append(row)
        # the scripts did their work (redis-benchmark does not count errors)
        kept = {k: subprocess.run(["redis-cli", "-p", str(port), c, k], capture_output=True, text=True).stdout.strip()
                for c, k in (("LLEN", "wsmill:bench:h"), ("XLEN", "wsmill:bench2:s"), ("GET", "wsmill:bench:o"))}
        rows.append({"kept": kept})
        print(json.dumps(kept), flush=True)
    finally:
        bench_common.stop_process(rs, 10)
        shutil.rmtree(d, ignore_errors=True)
    return rows


def resume_1000(test, subs_env):
    """The issue's first target at full scale: test_history.py's test (the
    redis one moves HIST_SUBS / 2 subscribers from one node to another)."""
    env = dict(os.environ, HIST_SUBS=subs_env, HIST_AWAY="5", HIST_RATE="1000", WSMILL_BIN=bench_common.BIN)
    cmd = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/integration/test_history.py::" + test]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    row = {"test": test, "subscribers": 1000, "away_s": 5, "rate": 1000, "passed": p.returncode == 0,
           "seconds": round(time.time() - t0, 1),
           "tail": [line[:2000] for line in p.stdout.strip().splitlines() if line.startswith("E   ")][:6]
           + p.stdout.strip().splitlines()[-3:],
           "command": f"HIST_SUBS={subs_env} HIST_AWAY=5 HIST_RATE=1000 " + " ".join(cmd[2:])}
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    groups = {"fanout": None, "memory": None, "storm": None, "redis-script": None, "resume-1000": None}
    out = read_json("history.json")
    for g in pick_groups(a.only, groups):
        if g == "fanout":
            rows = [fanout_once(s) for _ in range(REPEAT) for s in SETUPS]
        elif g == "memory":
            rows = [memory_once(s) for s in SETUPS]
        elif g == "storm":
            rows = [storm_once(b) for b in (100, 0)]
        elif g == "redis-script":
            rows = redis_script()
        else:
            rows = [resume_1000("test_resume_recovers_exactly_once", "1000"),
                    resume_1000("test_redis_resume_on_another_node", "2000")]
        out[g] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
                  "nice": bench_common.NICE}
    if not a.no_write:
        print("wrote", write_json("history.json", out), file=sys.stderr)


if __name__ == "__main__":
    main()
