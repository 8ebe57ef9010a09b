#!/usr/bin/env python3
"""Self-test for wsmill-load and wsmill-floor: every failure cause the tool
reports is provoked on purpose (fake_server.py) and must be counted exactly,
and clean runs against the floor must report no failures at all.

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
        ("two processes, rate", "upgrade", ["hold", "-n", "400", "-d", "0.5", "--procs", "2",
                                            "--rate", "1000", "--cpu", "0,1"], {},
         lambda j: j["ramp_s"] >= 0.3 and j["connections"]["opened"] == 400),
    ]


def verdict(name, rc, j, expect, extra, err=""):
    bad = [l for l in err.splitlines()
           if "Sanitizer" in l or "runtime error" in l or "wsmill-load: client" in l]
    if bad:  # a crashed or sanitizer-flagged client process
        return check(name, False, "stderr: " + " | ".join(bad[:3]))
    fails = j.get("failures", {})
    if fails != expect:
        return check(name, False, "failures %s, expected %s" % (fails, expect))
    if rc != (1 if expect else 0):
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

    print("all passed" if ok else "FAILURES", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
