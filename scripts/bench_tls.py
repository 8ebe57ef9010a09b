#!/usr/bin/python3
"""The measuring half of bench-tls.sh (see there)."""
import json, os, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from bench_common import (FLOOR, LOAD, Wsmill, free_port, in_netns, load, pick_groups, read_json,  # noqa: E402
                          shown, status, stop_process, write_json)

N = int(os.environ.get("N", "100000"))
HOLD = os.environ.get("HOLD", "30")
DURATION = os.environ.get("DURATION", "10")
RUNS = int(os.environ.get("RUNS", "3"))


def make_certs(d, names=("srv",)):
    """A test CA and leaves for 127.0.0.1 it signs (ECDSA P-256): NAME.pem,
    NAME.key. Returns the first leaf's (cert, key)."""
    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for n in names:
        ossl("req", *ec, "-keyout", f"{n}.key", "-out", f"{n}.csr", "-subj", f"/CN={n}")
        ossl("x509", "-req", "-in", f"{n}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{n}.pem", "-days", "2", "-extfile", "ext")
        os.chmod(os.path.join(d, f"{n}.key"), 0o600)
    return os.path.join(d, f"{names[0]}.pem"), os.path.join(d, f"{names[0]}.key")


def reload_churn(d):
    """wss churn (connect, TLS, upgrade, close) by wsmill-load for DURATION
    seconds while the certificate is swapped and reloaded RELOADS times:
    the failed handshakes and the reloads' outcomes."""
    os.makedirs(d, exist_ok=True)
    make_certs(d, ("live", "a", "b"))
    cert, key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
    srv = TlsWsmill(2, cert, key)
    reloads = int(os.environ.get("RELOADS", "8"))
    try:
        cmd = in_netns([LOAD, "churn", "--handshake-only", "--url", srv.wss(), "-n", "32", "-d", DURATION, "-q"])
        print("+", shown(cmd), file=sys.stderr, flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        outcomes = []
        for i in range(reloads):
            src = "a" if i % 2 == 0 else "b"
            for ext in ("pem", "key"):
                tmp = os.path.join(d, f"live.{ext}.new")
                with open(os.path.join(d, f"{src}.{ext}"), "rb") as f, open(tmp, "wb") as g:
                    g.write(f.read())
                os.chmod(tmp, 0o600)
                os.replace(tmp, os.path.join(d, f"live.{ext}"))
            seq = srv.status()["last_reload"]["seq"]
            os.kill(srv.proc.pid, 1)  # SIGHUP
            deadline = time.time() + 10
            while srv.status()["last_reload"]["seq"] == seq and time.time() < deadline:
                time.sleep(0.05)
            outcomes.append(srv.status()["last_reload"]["ok"])
            time.sleep(max(0.2, (float(DURATION) - 2) / reloads))
        out = proc.stdout.read().strip().splitlines()
        res = json.loads(out[-1]) if out else {}
        st = srv.status()
        row = {"command": shown(cmd), "reloads": reloads, "reloads_ok": sum(outcomes),
               "cycles": res.get("cycles", {}).get("completed"), "failed": res.get("connections", {}).get("failed"),
               "failures": res.get("failures"),
               "cert_generation": [w["tls_cert_generation"] for w in st["workers"]],
               "tls_handshake_errors": sum(w["tls_handshake_errors"] for w in st["workers"])}
        print(json.dumps(row), flush=True)
        return row
    finally:
        srv.stop()


class TlsWsmill(Wsmill):
    def __init__(self, workers, cert, key, cpus=None, extra=""):
        self.tls_port = free_port()
        super().__init__(workers, cpus=cpus, extra=f"tls_listen = 127.0.0.1:{self.tls_port}\n"
                         f"tls_cert = {cert}\ntls_key = {key}\nhandshake_timeout = 30s\n" + extra)

    def wss(self, path="/echo"):
        return f"wss://127.0.0.1:{self.tls_port}{path}"


class TlsFloor:
    """wsmill-floor --mode upgrade --tls: a minimal OpenSSL accept loop."""

    def __init__(self, cert, key, cpu):
        self.port = free_port()
        cmd = in_netns([FLOOR, "--listen", f"127.0.0.1:{self.port}", "--mode", "upgrade", "--tls",
                        f"{cert},{key}", "--cpu", str(cpu), "--duration", "900"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:  # listening yet? (a plain connect: the floor drops it after a failed handshake)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("wsmill-floor --tls did not start")
                time.sleep(0.05)

    def wss(self, path="/echo"):
        return f"wss://127.0.0.1:{self.port}{path}"

    def stop(self):
        stop_process(self.proc, 30)


def kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def anon(st_path):
    st = status(st_path)
    return st["connections"], sum(kib(w["pid"], "RssAnon") for w in st["workers"])


def hold(srv, url, n, src):
    """Holds n connections to url; returns per-connection RssAnon growth."""
    subprocess.run(in_netns([LOAD, "hold", "--url", url, "-n", "160", "-d", "1", "-q", "--src-base",
                             "127.1.0.2"]), stdout=subprocess.DEVNULL, check=False)  # warm-up
    time.sleep(3)
    _, before = anon(srv.status_path)
    cmd = in_netns([LOAD, "hold", "--url", url, "-n", str(n), "--rate", "8000", "-d", HOLD, "--verify-sample",
                    "1000", "--per-src", "16000", "--src-base", src, "--max-pending", "200", "--timeout", "600",
                    "--conn-timeout", "60", "-q"])
    print("+", shown(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    held, reached = None, None
    while proc.poll() is None:
        time.sleep(2)
        try:
            conns, now = anon(srv.status_path)
        except (OSError, ValueError):
            continue
        if conns >= 0.99 * n:
            reached = reached or time.time()
            if held is None or time.time() - reached >= 10:
                held = (conns, now)
    out = proc.stdout.read().strip().splitlines()
    res = json.loads(out[-1]) if out else {}
    row = {"command": shown(cmd), "connections": n, "opened": res.get("connections", {}).get("opened"),
           "failed": res.get("connections", {}).get("failed"), "failures": res.get("failures"),
           "verify": res.get("verify"), "handshakes_per_s": res.get("connect_rate")}
    if held:
        row.update(held_connections=held[0], anon_kib_before=before, anon_kib_holding=held[1],
                   anon_bytes_per_conn=round((held[1] - before) * 1024 / max(held[0], 1), 1))
    return row


def idle(cert, key):
    workers = int(os.environ.get("WORKERS", "8"))
    rows = {}
    for kind in os.environ.get("IDLE_KINDS", "wss,ws").split(","):
        srv = TlsWsmill(workers, cert, key)
        try:
            url = srv.wss() if kind == "wss" else srv.url()
            rows[kind] = hold(srv, url, N, "127.60.0.2" if kind == "wss" else "127.70.0.2")
        finally:
            srv.stop()
        print(json.dumps({kind: {k: rows[kind].get(k) for k in ("held_connections", "anon_bytes_per_conn",
                                                                   "failed")}}), flush=True)
    return {"workers": workers, "hold_s": int(HOLD), "rows": rows}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def compare(cert, key, measure):
    rows = {"wsmill": [], "floor": []}
    for _ in range(RUNS):
        srv = TlsWsmill(1, cert, key, cpus="0")
        try:
            rows["wsmill"].append(measure(srv.wss()))
        finally:
            srv.stop()
        fl = TlsFloor(cert, key, 0)
        try:
            rows["floor"].append(measure(fl.wss()))
        finally:
            fl.stop()
    med = {who: median(r["value"] for r in rows[who]) for who in rows}
    ratio = round(med["wsmill"] / med["floor"], 3) if med["wsmill"] and med["floor"] else None
    print(json.dumps({"median": med, "ratio": ratio}), flush=True)
    return {"median": med, "ratio": ratio, "runs": rows}


def handshakes(url):
    res, cmd = load(["churn", "--handshake-only", "--url", url, "-n", "64", "-d", DURATION, "--cpu", "1"])
    return {"command": cmd, "value": res.get("cycles", {}).get("per_s"), "failures": res.get("failures")}


def echo(url):
    res, cmd = load(["echo", "--url", url, "-n", "100", "--depth", "8", "-s", "64", "-d", DURATION, "--cpu", "1"])
    return {"command": cmd, "value": res.get("messages", {}).get("per_s"), "failures": res.get("failures"),
            "rtt_us": res.get("rtt_us")}


def plain(_cert, _key):
    """Plain ws with this build against BASE_BIN (a build of the main branch
    without TLS), alternating: handshakes/s and echo 100 x 8 x 64 B."""
    base = os.environ.get("BASE_BIN")
    if not base:
        sys.exit("the plain group needs BASE_BIN=path/to/a/baseline/wsmill")
    mine = bench_common.BIN
    rows = {"this": {"handshakes": [], "echo": []}, "base": {"handshakes": [], "echo": []}}
    for _ in range(RUNS):
        for who, binary in (("this", mine), ("base", base)):
            bench_common.BIN = binary
            srv = Wsmill(1, cpus="0")
            try:
                rows[who]["handshakes"].append(handshakes(srv.url()))
                rows[who]["echo"].append(echo(srv.url()))
            finally:
                srv.stop()
    bench_common.BIN = mine
    med = {who: {k: median(r["value"] for r in rows[who][k]) for k in ("handshakes", "echo")} for who in rows}
    ratio = {k: round(med["this"][k] / med["base"][k], 3) if med["base"][k] else None for k in ("handshakes", "echo")}
    print(json.dumps({"median": med, "ratio": ratio}), flush=True)
    return {"base_bin": bench_common.shown([base]), "median": med, "ratio": ratio, "runs": rows}


def main():
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    groups = pick_groups(only, ["idle", "handshakes", "echo", "reload"] +
                         (["plain"] if os.environ.get("BASE_BIN") else []))
    out = read_json("tls.json")
    out["command"] = "scripts/bench-tls.sh" + (f" --only {only}" if only else "")
    out["setup"] = ("certificates: ECDSA P-256 (openssl CLI); handshakes/echo: one wsmill worker or "
                    "wsmill-floor --tls --mode upgrade on CPU 0, wsmill-load on CPU 1; idle: 8 workers")
    out["machine_load"] = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="wsmill-bench-tls-") as d:
        cert, key = make_certs(d)
        # Written after each group, so a run cut short keeps what it measured.
        for g in groups:
            if g == "idle":
                out[os.environ.get("IDLE_KEY", "idle")] = idle(cert, key)
            elif g in ("handshakes", "echo"):
                out[g] = compare(cert, key, handshakes if g == "handshakes" else echo)
            elif g == "reload":
                out[g] = reload_churn(os.path.join(d, "reload"))
            elif g == "plain":
                out[g] = plain(cert, key)
            write_json("tls.json", out)


if __name__ == "__main__":
    main()
