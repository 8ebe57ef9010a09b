"""A raw-socket WebSocket client for the integration tests.

It lets a test send any bytes it likes (bad requests, frames with reserved
bits, unmasked frames, wrong lengths) and read exactly what the server sent
back, frame by frame, with a timeout on every read."""
import base64
import hashlib
import os
import select
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed (EOF or reset) where the test expected more bytes."""


def wait_until(cond, timeout=10.0, interval=0.05, what="condition"):
    """Polls cond() until it returns a truthy value; returns that value.
    Raises AssertionError naming `what` after `timeout` seconds. Exceptions
    from cond count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def accept_for(key):
    """The Sec-WebSocket-Accept value a server must answer to key (str)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def build_request(path="/echo", host="127.0.0.1", key=None, version="13", method="GET",
                  http="HTTP/1.1", origin=None, extra=(), omit=(), upgrade="websocket",
                  connection="Upgrade"):
    """Returns the bytes of an upgrade request. Header values set to None
    and names listed in omit (lower case) are left out; extra is a list of
    (name, value) pairs appended at the end."""
    if key is None:
        key = new_key()
    headers = [("Host", host), ("Upgrade", upgrade), ("Connection", connection),
               ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    if origin is not None:
        headers.append(("Origin", origin))
    headers += list(extra)
    lines = [f"{method} {path} {http}"]
    for name, value in headers:
        if value is None or name.lower() in omit:
            continue
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def mask_bytes(payload, key):
    """XORs payload with the 4-byte key (fast for large payloads)."""
    n = len(payload)
    if n == 0 or key == b"\0\0\0\0":
        return bytes(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None):
    """Returns one frame's bytes. rsv is the 3-bit RSV1..3 field (4 = RSV1);
    mask=False sends it unmasked; length overrides the announced payload
    length (the payload is sent as given)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    if mask_key is None:
        mask_key = os.urandom(4)
    return head + mask_key + mask_bytes(payload, mask_key)


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        """The close code of a close frame, None when it carries no payload."""
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 32 else self.payload[:32] + b"..."
        return f"Frame(fin={self.fin}, rsv={self.rsv}, op={self.opcode:#x}, masked={self.masked}, payload={p!r})"


class Response:
    def __init__(self, status, reason, headers, raw):
        self.status, self.reason, self.headers, self.raw = status, reason, headers, raw

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"Response({self.status} {self.reason}, {self.headers})"


class RawWS:
    """One TCP connection to the server, driven byte by byte."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    # -- bytes ---------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads once more into buf; raises Closed on EOF/reset and
        socket.timeout when the deadline passes."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise Closed(f"connection reset: {e}")
        if not chunk:
            self.eof = True
            raise Closed("EOF")
        self.buf += chunk

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # -- HTTP ------------------------------------------------------------
    def read_response(self, timeout=None):
        """Reads an HTTP response head (and a body announced by
        Content-Length); bytes after it stay buffered for frames."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise AssertionError("response head over 64 KiB")
            self._fill(deadline)
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end])
        del self.buf[:end]
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101 and "content-length" in headers:
            n = int(headers["content-length"])
            try:
                self.recv_exact(n, max(0.1, deadline - time.monotonic()))
            except Closed:
                pass
        return Response(status, reason, headers, head)

    def handshake(self, path="/echo", key=None, **kw):
        """Sends an upgrade request, reads the answer and checks a 101 with
        the right Sec-WebSocket-Accept. Returns the Response."""
        key = key or new_key()
        self.send(build_request(path=path, key=key, **kw))
        r = self.read_response()
        assert r.status == 101, f"expected 101, got {r.status}: {r.raw!r}"
        assert r.header("sec-websocket-accept") == accept_for(key), r.raw
        assert "websocket" in (r.header("upgrade") or "").lower(), r.raw
        assert "upgrade" in (r.header("connection") or "").lower(), r.raw
        return r

    # -- frames ------------------------------------------------------------
    def send_frame(self, opcode, payload=b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=1000, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if code is not None else b"", **kw)

    def recv_frame(self, timeout=None):
        """Reads one frame. Raises Closed on EOF, socket.timeout on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < 2:
            self._fill(deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        need = 2
        if n == 126:
            need = 4
        elif n == 127:
            need = 10
        masked = bool(b1 & 0x80)
        if masked:
            need += 4
        while len(self.buf) < need:
            self._fill(deadline)
        if n == 126:
            n = struct.unpack("!H", bytes(self.buf[2:4]))[0]
        elif n == 127:
            n = struct.unpack("!Q", bytes(self.buf[2:10]))[0]
        while len(self.buf) < need + n:
            self._fill(deadline)
        payload = bytes(self.buf[need:need + n])
        if masked:
            payload = mask_bytes(payload, bytes(self.buf[need - 4:need]))
        del self.buf[:need + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def recv_message(self, timeout=None, answer_pings=True):
        """Reads a whole data message (reassembling fragments). Returns
        (opcode, payload). Control frames in between are collected in
        self.controls; pings are answered when answer_pings is set."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self.controls = getattr(self, "controls", [])
        opcode, parts = None, []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            assert not f.masked, f"server sent a masked frame: {f!r}"
            assert f.rsv == 0, f"server set reserved bits: {f!r}"
            if f.opcode >= 0x8:
                self.controls.append(f)
                if f.opcode == OP_CLOSE:
                    raise AssertionError(f"expected a message, got close {f.close_code}: {f.payload!r}")
                if f.opcode == OP_PING and answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if opcode is None:
                assert f.opcode in (OP_TEXT, OP_BINARY), f"message starts with {f!r}"
                opcode = f.opcode
            else:
                assert f.opcode == OP_CONT, f"expected continuation, got {f!r}"
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def echo(self, opcode, payload, timeout=None):
        """Sends one message and asserts it comes back unchanged."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_frame(opcode, payload)
        op, got = self.recv_message(timeout)
        assert op == opcode and got == payload, f"echo mismatch: op {op} len {len(got)} vs {opcode} len {len(payload)}"

    def expect_close(self, code, timeout=None):
        """Reads frames until a close frame and asserts its code (None for an
        empty close payload; a tuple for any of several). Data frames and
        pings before it are skipped. Returns the close Frame."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = []
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except Closed as e:
                raise AssertionError(f"expected close {code}, connection closed without a close frame ({e}); "
                                     f"frames seen: {seen[:5]}")
            except socket.timeout:
                raise AssertionError(f"expected close {code}, nothing came in time; frames seen: {seen[:5]}")
            if f.opcode != OP_CLOSE:
                seen.append(f)
                continue
            assert not f.masked, f"server sent a masked close frame: {f!r}"
            got = f.close_code
            want = code if isinstance(code, tuple) else (code,)
            assert got in want, f"expected close code {code}, got {got} (payload {f.payload!r})"
            return f

    def expect_eof(self, timeout=None):
        """Asserts the server closes the TCP connection (EOF or reset) in
        time; any bytes before that are discarded. Returns what was read."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = bytearray(self.buf)
        self.buf.clear()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not close the connection in time (read {len(got)} bytes)")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(262144)
            except (ConnectionResetError, BrokenPipeError):
                return bytes(got)
            except socket.timeout:
                continue
            if not chunk:
                return bytes(got)
            got += chunk

    def is_open(self):
        """True when the server has neither closed nor sent anything."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        if not r:
            return True
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except OSError:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_ws(port, path="/echo", timeout=5.0, rcvbuf=None, **kw):
    """Connects and completes the handshake; returns the RawWS. kw goes to
    build_request."""
    c = RawWS(port, timeout=timeout, rcvbuf=rcvbuf)
    try:
        c.handshake(path=path, **kw)
    except BaseException:
        c.close()
        raise
    return c
