#!/usr/bin/python3
"""idle-memory.py: what an idle WebSocket connection costs wsmill's user space.

Starts nothing: point it at a running server (its status socket) and it opens
N upgraded connections from 127.0.0.2.., waits, and prints the sum of the
workers' RSS before and while holding them, divided by N. Every connection
is checked for a correct 101. Bounded: N connections, one pass, a timeout.

usage: scripts/idle-memory.py --status /tmp/wsmill.status.sock --port 8080 [-n 10000]
"""
import argparse, base64, json, os, selectors, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import status  # noqa: E402

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def workers_rss(path):
    st = status(path)
    return sum(rss_kib(w["pid"]) for w in st["workers"]), st

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    # Warm up: the first handshakes fault in code and tables (libcrypto's
    # SHA-1, libev's arrays) once per process; that is not per connection.
    for _ in range(200):
        w = socket.create_connection(("127.0.0.1", a.port)); w.sendall(req); w.recv(4096); w.close()
    time.sleep(1)
    before, _ = workers_rss(a.status)
    base = f"{os.getpid() % 200 + 1}.{int(time.time()) % 50}"  # fresh source addresses each run
    socks, sel, ok, bad = [], selectors.DefaultSelector(), 0, 0
    deadline = time.time() + a.timeout
    for i in range(a.n):
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT: port picked at connect
        s.bind((f"127.{base}.{2 + i // 5000}", 0))
        s.connect(("127.0.0.1", a.port))
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        while sel.get_map() and (len(sel.get_map()) > 500 or i == a.n - 1) and time.time() < deadline:
            for k, _ in sel.select(1):
                data = k.fileobj.recv(4096)
                sel.unregister(k.fileobj)
                if data.startswith(b"HTTP/1.1 101") and data.endswith(b"\r\n\r\n"):
                    ok += 1
                else:
                    bad += 1
    time.sleep(2)
    during, st = workers_rss(a.status)
    per = (during - before) * 1024 / max(ok, 1)
    print(json.dumps({"connections": ok, "failed": bad, "server_connections": st["connections"],
                      "workers": len(st["workers"]), "rss_before_kib": before, "rss_holding_kib": during,
                      "bytes_per_connection": round(per, 1)}))
    for s in socks:
        s.close()
    return 0 if bad == 0 and ok == a.n else 1

if __name__ == "__main__":
    sys.exit(main())
