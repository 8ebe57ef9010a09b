"""Shared fixtures: start the real wsmill binary on 127.0.0.1 with a free
port and a config written for the test, and stop it by its pid."""
import json
import os
import signal
import signal as _signal
import socket
import subprocess
import tempfile
import time

import pytest

import sancheck

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("WSMILL_BIN", os.path.join(ROOT, "build", "wsmill"))


def _sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# The binary under test is an ASan build (scripts/test.sh runs the suite
# against build-asan/wsmill too). ASan's allocator keeps freed memory in a
# quarantine (256 MiB per process by default) and adds shadow memory and
# redzones, so a worker's RSS measures ASan, not wsmill: memory bounds are
# asserted only against the release build.
SANITIZED = _sanitized(BIN)



# WSMILL_TEST_PORTS=LO-HI: take ports from this range only, in order, never
# the same one twice. test.sh runs the release and the sanitizer passes at
# once, each in a range of its own, so one pass cannot be handed a port the
# other was just handed and has not bound yet (bind to port 0 could).
_PORTS = os.environ.get("WSMILL_TEST_PORTS", "")
_next_port = [int(_PORTS.split("-")[0]) if _PORTS else 0]


def free_port():
    if not _PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    hi = int(_PORTS.split("-")[1])
    while _next_port[0] < hi:
        port = _next_port[0]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (a client's local port, another program)
            return port
    raise RuntimeError(f"WSMILL_TEST_PORTS={_PORTS}: every port of the range was handed out")


class Server:
    """One running wsmill master with its workers."""

    def __init__(self, tmpdir, **overrides):
        self.dir = tmpdir
        self.port = free_port()
        self.status_path = os.path.join(tmpdir, "status.sock")
        self.log_path = os.path.join(tmpdir, "wsmill.log")
        self.conf_path = os.path.join(tmpdir, "wsmill.conf")
        self.settings = {
            "listen": f"127.0.0.1:{self.port}",
            "workers": 2,
            "status_socket": self.status_path,
            "pid_file": os.path.join(tmpdir, "wsmill.pid"),
            "log_file": self.log_path,
            "log_level": "info",
            # A port of its own: the default 8081 would be shared (SO_REUSEPORT)
            # by every server the suite runs at once.
            "publish_listen": f"127.0.0.1:{free_port()}",
        }
        self.settings.update(overrides)
        self.write_conf()
        self.proc = None
        self._stderr = None
        self.known_worker_pids = set()
        self._san_offset = 0
        self.sanitizer_reports = []
        sancheck.servers.append(self)

    def write_conf(self, **changes):
        self.settings.update(changes)
        with open(self.conf_path, "w") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = {v}\n")

    def start(self, timeout=15):
        self._stderr = open(self.log_path + ".stderr", "w")
        self.proc = subprocess.Popen([BIN, "-c", self.conf_path],
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wsmill exited with {self.proc.returncode}: {self.log()}")
            try:
                st = self.status()
                self.known_worker_pids.update(w["pid"] for w in st["workers"] if w.get("pid"))
                want = self.settings.get("workers", 2)
                if all(w["state"] == "active" for w in st["workers"]) and len(st["workers"]) == int(want):
                    return self
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError("wsmill did not become ready: " + self.log())

    def status(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.status_path)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def worker_pids(self):
        pids = [w["pid"] for w in self.status()["workers"]]
        self.known_worker_pids.update(p for p in pids if p)
        return pids

    def total(self, key, st=None):
        """A worker counter summed over all workers."""
        st = st or self.status()
        return sum(w[key] for w in st["workers"])

    def rejected(self, reason, st=None):
        """handshakes_rejected[reason] summed over all workers."""
        st = st or self.status()
        return sum(w["handshakes_rejected"][reason] for w in st["workers"])

    def closes(self, code, st=None):
        """closes[str(code)] summed over all workers."""
        st = st or self.status()
        return sum(w["closes"][str(code)] for w in st["workers"])

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def log(self):
        out = ""
        for p in (self.log_path, self.log_path + ".stderr"):
            try:
                with open(p) as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def url(self, path="/echo"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self, sig=None, timeout=15):
        """Stops the master (SIGQUIT unless sig is given), SIGKILLing it after
        timeout, and then any worker it left behind."""
        # (the default is resolved here: in the class body `signal` names
        # the method above, not the module)
        sig = _signal.SIGQUIT if sig is None else sig
        if self.proc and self.proc.poll() is None:
            try:
                self.worker_pids()
            except (OSError, ValueError, KeyError):
                pass
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reap_workers()
        if self._stderr:
            self._stderr.close()
            self._stderr = None
        sancheck.scan(self)  # before the caller removes the directory
        return self.proc.returncode if self.proc else None

    def _reap_workers(self, timeout=5):
        """Kills (by pid) workers this test saw that outlived their master,
        so one broken test cannot leave processes behind."""
        deadline = time.time() + timeout
        for pid in sorted(self.known_worker_pids):
            while _is_wsmill(pid) and time.time() < deadline:
                time.sleep(0.05)
            if _is_wsmill(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _is_wsmill(pid):
    """True if pid is a live (not zombie) process running the wsmill binary."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(BIN)
    except (OSError, IndexError):
        return False


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Fails the test when a server printed a sanitizer report during it
    (servers stopped by now were read in stop(); running ones are read here)."""
    yield
    reports = sancheck.collect()
    if reports:
        pytest.fail("sanitizer report in the server's stderr:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def server_factory():
    """server_factory(**config) -> a started Server; all are stopped after the test."""
    started = []
    dirs = []

    def make(**overrides):
        d = tempfile.TemporaryDirectory(prefix="wsmill-test-")
        dirs.append(d)
        srv = Server(d.name, **overrides)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()
    for d in dirs:
        d.cleanup()


@pytest.fixture
def server(server_factory):
    """A default two-worker server with limits large enough for the echo tests."""
    return server_factory(max_message_size="16M", max_backpressure="64M")


@pytest.fixture
def clients():
    """A list the test appends sockets/clients to; all are closed after it."""
    held = []
    yield held
    for c in held:
        try:
            c.close()
        except OSError:
            pass
