"""Shared pieces of the benchmark scripts: start/stop a wsmill or a floor
server, run wsmill-load, read its JSON. Every process started here is
stopped by its pid."""
import json, os, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WSMILL_BIN", os.path.join(ROOT, "build", "wsmill"))
LOAD = os.environ.get("WSMILL_LOAD", os.path.join(ROOT, "build", "tests", "load", "wsmill-load"))
FLOOR = os.environ.get("WSMILL_FLOOR", os.path.join(ROOT, "build", "tests", "load", "wsmill-floor"))


# NETNS=name runs servers and the load tool inside a network namespace of
# that name (made by netns_setup), whose loopback has its own TCP hash
# tables sized for the run: the host's established-connection table is sized
# at boot (262,144 buckets here), and two million sockets in it make every
# packet walk long chains.
NETNS = os.environ.get("NETNS", "")


# BENCH_NICE=1 runs the measured processes (server, floor, load tool) at
# nice -20: on a shared machine they then take ~99% of their CPUs from
# whatever else runs at nice 0 (builds, tests), close to a machine of their
# own. (SCHED_FIFO would be stricter but the kernel's RT throttling then
# stops a busy process for 50 ms every second, which is what p99 sees.)
NICE = os.environ.get("BENCH_NICE") == "1"


def in_netns(cmd):
    if NICE:
        cmd = ["nice", "-n", "-20"] + cmd
    return ["ip", "netns", "exec", NETNS] + cmd if NETNS else cmd


def netns_setup(name, sockets):
    """Creates namespace `name` with an established hash of >= sockets
    buckets, its loopback up and the per-namespace sysctls tuned."""
    buckets = 1 << max(16, (sockets - 1).bit_length())
    subprocess.run(["ip", "netns", "delete", name], stderr=subprocess.DEVNULL, check=False)
    with open("/proc/sys/net/ipv4/tcp_child_ehash_entries", "w") as f:
        f.write(str(min(buckets, 1 << 24)))
    subprocess.run(["ip", "netns", "add", name], check=True)
    with open("/proc/sys/net/ipv4/tcp_child_ehash_entries", "w") as f:
        f.write("0")
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    tune = os.path.join(ROOT, "scripts", "tune-kernel.sh")
    out = subprocess.run(["ip", "netns", "exec", name, tune, "--connections", str(sockets // 2), "--local-clients",
                          "--apply"], stdout=subprocess.PIPE, text=True, check=False).stdout
    for line in out.splitlines():  # what the run changed (inside its namespace)
        if line.startswith(("changed", "# could not")):
            print(f"netns {name}: {line}", flush=True)
    return buckets


def netns_delete(name):
    subprocess.run(["ip", "netns", "delete", name], check=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    return json.loads(data)


def conf_keys(text):
    """The keys `key = value` lines of a config text set."""
    return [ln.split("=", 1)[0].strip() for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith(("#", ";"))]


def base_without(path, keys):
    """A config file's text without the lines setting keys (each key may
    appear once: what the benchmark sets replaces the file's value)."""
    with open(path) as f:
        return "".join(ln for ln in f if not conf_keys(ln) or conf_keys(ln)[0] not in keys)


class Wsmill:
    """A wsmill master started on a temp config; `taskset` pins it.
    publish=True also opens the HTTP publish API on a free port (pub_url).
    bench_limits=False keeps the server's default max_connections and
    per-address limits (the soak wants them on) instead of lifting them."""

    def __init__(self, workers, extra="", cpus=None, publish=False, bench_limits=True, base_conf=None):
        self.dir = tempfile.mkdtemp(prefix="wsmill-bench-")
        self.port = free_port()
        self.pub_port = free_port() if publish else None
        pub_listen = f"127.0.0.1:{self.pub_port}" if publish else ""
        self.status_path = os.path.join(self.dir, "status.sock")
        conf = os.path.join(self.dir, "wsmill.conf")
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{self.port}\nworkers = {workers}\n"
                    f"status_socket = {self.status_path}\npid_file = {self.dir}/wsmill.pid\n"
                    f"log_file = {self.dir}/wsmill.log\npublish_listen = {pub_listen}\n")
            if bench_limits:
                f.write("max_connections = 2000000\nmax_connections_per_ip = 0\nmax_handshakes_per_ip = 0\n")
            f.write(extra)
            if base_conf:
                f.write("\n" + base_without(base_conf, ["listen", "workers", "status_socket", "pid_file", "log_file",
                                                        "publish_listen"] + conf_keys(extra)))
        cmd = [BIN, "-c", conf]
        if cpus is not None:
            cmd = ["taskset", "-c", cpus] + cmd
        cmd = in_netns(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                st = status(self.status_path)
                if len(st["workers"]) == workers and all(w["state"] == "active" for w in st["workers"]):
                    return
            except (OSError, ValueError, KeyError):
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("wsmill did not start; see " + self.dir)
            time.sleep(0.2)

    def url(self, path="/echo"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def pub_url(self, path):
        return f"http://127.0.0.1:{self.pub_port}{path}"

    def status(self):
        return status(self.status_path)

    def stop(self):
        stop_process(self.proc, 60)


class Floor:
    """wsmill-floor: raw TCP echo, a bare 101 + frame echo, or fan-out."""

    def __init__(self, mode, cpu=None):
        self.port = free_port()
        cmd = [FLOOR, "--listen", f"127.0.0.1:{self.port}", "--mode", mode, "--duration", "900"]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        cmd = in_netns(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("wsmill-floor did not start")
                time.sleep(0.05)

    def url(self, path="/echo"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def pub_url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        stop_process(self.proc, 30)


def stop_process(proc, timeout):
    """SIGTERM to proc (ours, by its pid), SIGKILL if it is not gone within
    timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_cpu_s(pids):
    """CPU seconds (user + system) the processes pids have used so far."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def shown(cmd):
    """A command line as recorded in docs/bench: paths relative to the repo."""
    return " ".join(a[len(ROOT) + 1:] if a.startswith(ROOT + "/") else a for a in cmd)


def load(args, quiet=True):
    """Runs wsmill-load with args; returns (its JSON, the command line)."""
    cmd = in_netns([LOAD] + args + (["-q"] if quiet else []))
    print("+", shown(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False).stdout.strip().splitlines()
    return (json.loads(out[-1]) if out else {}), shown(cmd)


def read_json(name):
    """docs/bench/NAME as written by an earlier run ({} when absent or
    unreadable), so a run of some groups keeps the others' results."""
    try:
        with open(os.path.join(ROOT, "docs", "bench", name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def pick_groups(only, groups):
    """--only's comma-separated names (all groups without it); exits on an
    unknown one."""
    names = only.split(",") if only else list(groups)
    for n in names:
        if n not in groups:
            sys.exit(f"unknown group {n}; --list shows them")
    return names


def write_json(name, data):
    path = os.path.join(ROOT, "docs", "bench", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    return path
