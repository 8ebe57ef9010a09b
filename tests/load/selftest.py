#!/usr/bin/env python3
"""Self-test for wsmill-load and wsmill-floor: every failure cause the tool
reports is provoked on purpose (fake_server.py) and must be counted exactly,
and clean runs against the floor must report no failures at all. The
publish/subscribe modes run against fake_server.py's channels, which lose,
repeat, reorder, corrupt or cross messages on purpose, and must count each.

usage: selftest.py [--bindir DIR]   (DIR holds wsmill-load and wsmill-floor)
Each case is bounded by the tool's own timeouts plus a hard subprocess
timeout; exits 0 when every case passes.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:  # wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return out, err


def run_load(bindir, args):
    cmd = [os.path.join(bindir, "wsmill-load")] + args + ["-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = r.stdout.strip().splitlines()
    return r.returncode, json.loads(lines[-1]) if lines else {}, r.stderr


def check(name, ok, detail):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
    return ok


def fake_cases():
    """(name, fake mode, load args, expected failures, extra check)."""
    return [
        ("bad status", "status:503", ["hold", "-n", "10", "-d", "0.2"],
         {"handshake:bad_status_503": 10}, None),
        ("bad accept", "bad-accept", ["hold", "-n", "10", "-d", "0.2"],
         {"handshake:bad_accept": 10}, None),
        ("no upgrade header", "no-upgrade", ["hold", "-n", "10", "-d", "0.2"],
         {"handshake:bad_upgrade_headers": 10}, None),
        ("handshake timeout", "silent", ["hold", "-n", "10", "-d", "0.2", "--conn-timeout", "1"],
         {"handshake:timeout": 10}, None),
        ("eof after 101", "eof", ["hold", "-n", "10", "-d", "0.5"], {"open:eof": 10}, None),
        ("server close 1001", "close:1001", ["hold", "-n", "10", "-d", "0.5"],
         {"open:unexpected_close_1001": 10}, None),
        ("pings answered", "ping", ["hold", "-n", "10", "-d", "1", "--verify-sample", "10"], {},
         lambda j: j["pings"] >= 50 and j["verify"]["ok"] == 10),
        ("fragmented echo", "fragment", ["echo", "-n", "5", "-d", "1"], {},
         lambda j: j["messages"]["received"] > 100 and j["pings"] > 100),
        ("corrupted echo", "corrupt", ["echo", "-n", "5", "-d", "1"], {"echo:mismatch": 5}, None),
        ("masked server frame", "masked", ["echo", "-n", "5", "-d", "1"],
         {"open:masked_frame": 5}, None),
        ("no FIN after close", "no-fin", ["hold", "-n", "5", "-d", "0.2", "--conn-timeout", "1"],
         {"close:timeout": 5}, None),
        ("large frames", "ok", ["echo", "-n", "4", "-d", "1", "-s", "100000", "--depth", "4"], {},
         lambda j: j["messages"]["received"] > 10),
        ("churn", "ok", ["churn", "-n", "5", "-d", "1"], {},
         lambda j: j["cycles"]["completed"] > 10),
    ]


def floor_cases():
    """(name, floor mode, load args, expected failures, extra check)."""
    return [
        ("floor hold + verify", "upgrade", ["hold", "-n", "500", "-d", "1", "--verify-sample", "50",
                                            "--per-src", "100"], {},
         lambda j: j["verify"]["ok"] == 50 and j["connections"]["closed_clean"] == 500),
        ("floor echo depth 16", "upgrade", ["echo", "-n", "20", "-d", "1", "--depth", "16"], {},
         lambda j: j["messages"]["received"] > 1000),
        ("floor echo 64 KiB+", "upgrade", ["echo", "-n", "4", "-d", "1", "-s", "70000"], {},
         lambda j: j["messages"]["received"] > 10),
        ("floor churn", "upgrade", ["churn", "-n", "10", "-d", "1"], {},
         lambda j: j["cycles"]["completed"] > 100),
        ("floor handshake-only churn", "upgrade", ["churn", "-n", "10", "-d", "1",
                                                   "--handshake-only"], {},
         lambda j: j["cycles"]["completed"] > 100 and j["messages"]["sent"] == 0),
        ("floor raw hold", "echo", ["hold", "--raw", "-n", "200", "-d", "0.5",
                                    "--verify-sample", "20"], {},
         lambda j: j["verify"]["ok"] == 20),
        ("floor raw echo", "echo", ["echo", "--raw", "-n", "10", "-d", "1", "--depth", "4"], {},
         lambda j: j["messages"]["received"] > 1000),
        ("floor raw churn", "echo", ["churn", "--raw", "-n", "10", "-d", "1"], {},
         lambda j: j["cycles"]["completed"] > 100),
        ("ws client vs raw floor", "echo", ["hold", "-n", "5", "-d", "0.2"],
         {"handshake:bad_response": 5}, None),
        ("--deflate declined by the floor", "upgrade", ["hold", "-n", "5", "-d", "0.2", "--deflate"],
         {"handshake:bad_response": 5}, None),
        ("two processes, rate", "upgrade", ["hold", "-n", "400", "-d", "0.5", "--procs", "2",
                                            "--rate", "1000", "--cpu", "0,1"], {},
         lambda j: j["ramp_s"] >= 0.3 and j["connections"]["opened"] == 400),
    ]


def odd(m):
    """Sequence numbers below m that end in 3 (what pubsub-* misbehave on)."""
    return (m + 6) // 10


def dl(j):
    return j.get("deliveries", {})


def pubsub_cases():
    """(name, fake mode, load args, expected failures, expected exit status,
    check); the URL placeholders {ws} and {http} get the fake's port."""
    n = 20
    fan = ["fanout", "--url", "{ws}/ch/x", "-n", str(n), "--pub-rate", "200", "-d", "1"]

    def clean(j):
        d, m = dl(j), j["publish"]["acked"]
        return (m >= 150 and d["received"] == n * m == d["expected"] and d["missing"] == 0 and
                d["gaps"] == d["duplicates"] == d["reordered"] == 0 and
                j["delay_us"]["count"] == d["received"] and j["publish"]["echoes"] == m)

    def http_clean(j):
        d, p = dl(j), j["publish"]
        return (p["acked"] == p["sent"] >= 150 and p["errors"] == {} and
                d["received"] == d["expected"] == 5 * p["acked"] and
                j["params"]["channels"] == 4 and p["latency_us"]["count"] == p["acked"] and
                d["gaps"] == d["duplicates"] == d["reordered"] == 0)

    def drop(j):
        d, m = dl(j), j["publish"]["acked"]
        return d["missing"] == n * odd(m) and n * odd(m) - n <= d["gaps"] <= d["missing"]

    def dup(j):
        d, m = dl(j), j["publish"]["acked"]
        return d["duplicates"] == n * odd(m) and d["missing"] == 0 and d["gaps"] == 0

    def reorder(j):
        d, m = dl(j), j["publish"]["acked"]
        tail = 1 if (m - 1) % 10 == 3 else 0  # the last one is held for ever
        return (d["reordered"] == n * (odd(m) - tail) and d["gaps"] == 0 and
                d["duplicates"] == 0 and d["missing"] == n * tail)

    def http503(j):
        p = j["publish"]
        return (p["errors"] == {"http_503": p["sent"] // 5} and p["acked"] == p["sent"] - p["sent"] // 5
                and p["errors_total"] == p["sent"] // 5)

    return [
        ("fanout ws publisher", "pubsub", fan, {}, 0, clean),
        ("fanout HTTP publishers, 4 channels", "pubsub",
         fan + ["--pub-url", "{http}/pub/x", "--channels", "4", "--publishers", "2"], {}, 0, http_clean),
        ("fanout, subscribers spinning", "pubsub", fan + ["--recv", "spin"], {}, 0, clean),
        ("lost messages", "pubsub-drop", fan, {}, 1, drop),
        ("lost messages, subscribers spinning", "pubsub-drop", fan + ["--recv", "spin"], {}, 1, drop),
        ("duplicated messages", "pubsub-dup", fan, {}, 1, dup),
        ("reordered messages", "pubsub-reorder", fan, {}, 1, reorder),
        ("corrupted messages", "pubsub-corrupt", fan, {"message:mismatch": n}, 1, None),
        ("crossed channels", "pubsub-cross", fan + ["--channels", "2"], {"message:wrong_channel": n // 2}, 1,
         None),
        ("publish API errors", "pubsub-503", ["publish", "--url", "{http}/pub/x", "--rate", "200", "-d", "1"],
         {}, 1, http503),
        ("floor fanout, ws publisher", "floor:fanout", ["fanout", "--url", "{ws}/ch/x", "-n", "200",
                                                        "--pub-rate", "500", "-d", "1"], {}, 0,
         lambda j: dl(j)["received"] == 200 * j["publish"]["acked"] >= 200 * 400 and dl(j)["missing"] == 0),
        ("floor fanout, HTTP, 10 channels", "floor:fanout",
         ["fanout", "--url", "{ws}/ch/x", "-n", "200", "--channels", "10", "--pub-url", "{http}/pub/x",
          "--publishers", "3", "--pub-rate", "1000", "-d", "1", "--pipeline", "8"], {}, 0,
         lambda j: (dl(j)["received"] == 20 * j["publish"]["acked"] and j["publish"]["acked"] >= 800 and
                    dl(j)["expected"] == dl(j)["received"] and j["publish"]["errors"] == {})),
        ("floor fanout, HTTP, 10 channels, spinning", "floor:fanout",
         ["fanout", "--url", "{ws}/ch/x", "-n", "200", "--channels", "10", "--pub-url", "{http}/pub/x",
          "--publishers", "3", "--pub-rate", "1000", "-d", "1", "--pipeline", "8", "--recv", "spin"], {}, 0,
         lambda j: (dl(j)["received"] == 20 * j["publish"]["acked"] and j["publish"]["acked"] >= 800 and
                    dl(j)["expected"] == dl(j)["received"] and j["publish"]["errors"] == {})),
        ("floor fanout, HTTP pipelined 20000/s", "floor:fanout",
         ["fanout", "--url", "{ws}/ch/x", "-n", "20", "--channels", "4", "--pub-url", "{http}/pub/x",
          "--pub-rate", "20000", "-d", "1", "--pipeline", "512"], {}, 0,
         lambda j: (j["publish"]["acked"] >= 5000 and dl(j)["received"] == 5 * j["publish"]["acked"] and
                    dl(j)["missing"] == 0)),
    ]


def subscribe_and_publish(bindir, port):
    """subscribe and publish as two processes: every message reaches each
    subscriber of its channel exactly once."""
    ws, http = "ws://127.0.0.1:%d" % port, "http://127.0.0.1:%d" % port
    sub = subprocess.Popen([os.path.join(bindir, "wsmill-load"), "subscribe", "--url", ws + "/ch/y", "-n", "10",
                            "--channels", "2", "-d", "3", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    time.sleep(1)  # the subscribers are open well before the first publish
    rc1, j1, err1 = run_load(bindir, ["publish", "--url", http + "/pub/y", "--channels", "2", "-n", "2",
                                      "--rate", "100", "-d", "1"])
    rc2, j2, err2 = run_load(bindir, ["publish", "--url", ws + "/ch/y", "--channels", "2", "--rate", "100",
                                      "-d", "0.5"])
    out, err = sub.communicate(timeout=60)
    j = json.loads(out.strip().splitlines()[-1])
    sent = j1.get("publish", {}).get("acked", 0) + j2.get("publish", {}).get("acked", 0)
    d = dl(j)
    ok = (sub.returncode == rc1 == rc2 == 0 and sent >= 120 and d["received"] == 5 * sent and
          d["gaps"] == d["duplicates"] == d["reordered"] == 0 and j["failures"] == {} and
          "Sanitizer" not in err + err1 + err2 and "runtime error" not in err + err1 + err2)
    return check("subscribe + publish (HTTP and ws) apart", ok,
                 "rc %s/%s/%s, sent %d, deliveries %s %s" % (sub.returncode, rc1, rc2, sent, d,
                                                             (err + err1 + err2)[-500:]))


def bad_options(bindir):
    ok = True
    for args in (["publish", "--url", "http://127.0.0.1:1/pub/x", "-s", "10"],
                 ["fanout", "--url", "http://127.0.0.1:1/pub/x"],
                 ["publish", "--url", "ws://127.0.0.1:1/ch/x", "--channels", "2", "-n", "3"],
                 ["hold", "--channels", "2"],
                 ["echo", "--recv", "spin"],
                 ["fanout", "--url", "ws://127.0.0.1:1/ch/x", "--recv", "poll"]):
        r = subprocess.run([os.path.join(bindir, "wsmill-load")] + args, capture_output=True, text=True,
                           timeout=10)
        ok &= check("refused: " + " ".join(args[:1] + args[3:]), r.returncode == 2 and r.stdout == "",
                    "exit %d" % r.returncode)
    return ok


def verdict(name, rc, j, expect, extra, err="", want_rc=None):
    bad = [l for l in err.splitlines()
           if "Sanitizer" in l or "runtime error" in l or "wsmill-load: client" in l]
    if bad:  # a crashed or sanitizer-flagged client process
        return check(name, False, "stderr: " + " | ".join(bad[:3]))
    fails = j.get("failures", {})
    if fails != expect:
        return check(name, False, "failures %s, expected %s" % (fails, expect))
    if rc != (want_rc if want_rc is not None else 1 if expect else 0):
        return check(name, False, "exit status %d" % rc)
    if extra and not extra(j):
        return check(name, False, "extra check failed on " + json.dumps(j))
    return check(name, True, "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", default=os.getcwd())
    a = ap.parse_args()
    ok = True

    port = free_port()
    rc, j, err = run_load(a.bindir, ["hold", "-n", "20", "-d", "5", "--url",
                                     "ws://127.0.0.1:%d/" % port])
    ok &= verdict("connect refused", rc, j, {"connect:ECONNREFUSED": 20},
                  lambda j: j["elapsed_s"] < 3, err)

    for name, mode, args, expect, extra in fake_cases():
        port = free_port()
        srv = start([sys.executable, os.path.join(HERE, "fake_server.py"), "--port", str(port),
                     "--mode", mode, "--duration", "60"], port)
        rc, j, err = run_load(a.bindir, args + ["--url", "ws://127.0.0.1:%d/x" % port])
        _, serr = stop(srv)
        if mode == "ping" and "'pongs_bad': 0" not in serr:
            ok &= check(name + " (pong payloads)", False, serr.strip())
        ok &= verdict(name, rc, j, expect, extra, err)

    for name, mode, args, expect, extra in floor_cases():
        port = free_port()
        srv = start([os.path.join(a.bindir, "wsmill-floor"), "--listen", "127.0.0.1:%d" % port,
                     "--mode", mode, "--duration", "60"], port)
        rc, j, err = run_load(a.bindir, args + ["--url", "ws://127.0.0.1:%d/x" % port])
        _, serr = stop(srv)
        ok &= verdict(name, rc, j, expect, extra, err + serr)

    for name, mode, args, expect, want_rc, extra in pubsub_cases():
        port = free_port()
        if mode.startswith("floor:"):
            srv = start([os.path.join(a.bindir, "wsmill-floor"), "--listen", "127.0.0.1:%d" % port,
                         "--mode", mode[6:], "--duration", "60"], port)
        else:
            srv = start([sys.executable, os.path.join(HERE, "fake_server.py"), "--port", str(port),
                         "--mode", mode, "--duration", "60"], port)
        args = [a.format(ws="ws://127.0.0.1:%d" % port, http="http://127.0.0.1:%d" % port) for a in args]
        rc, j, err = run_load(a.bindir, args)
        _, serr = stop(srv)
        ok &= verdict(name, rc, j, expect, extra, err + serr, want_rc)

    port = free_port()
    srv = start([sys.executable, os.path.join(HERE, "fake_server.py"), "--port", str(port),
                 "--mode", "pubsub", "--duration", "60"], port)
    ok &= subscribe_and_publish(a.bindir, port)
    stop(srv)
    ok &= bad_options(a.bindir)

    print("all passed" if ok else "FAILURES", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
