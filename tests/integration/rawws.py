"""The raw-socket WebSocket client of the integration tests (the only one).

It lets a test send any bytes it likes (bad requests, frames with reserved
bits, unmasked frames, wrong lengths, whole or chopped into small writes)
and read exactly what the server sent back, frame by frame, with a timeout
on every read. Two ways to read:
- recv_frame / recv_message / expect_close: what came, for tests about
  answers (status codes, close codes, echoes);
- read_frame / read_event / events_until_close: every frame checked against
  the rules a server must follow (unmasked, RSV 0, known opcode, minimal
  length, control frames unfragmented and <= 125 bytes, text and close
  reasons valid UTF-8), for the RFC 6455 conformance suite; a breach raises
  ProtocolViolation.
With extensions= (open_ws) it offers permessage-deflate; when the server
accepts, self.pmd (pmd_client.py) compresses what send_message sends and
read_event inflates and checks the server's compressed messages (RSV1 on a
message's first frame, the only RSV bit then allowed)."""
import base64
import hashlib
import os
import select
import socket
import struct
import threading
import time

from pmd_client import PmdClient

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
KNOWN_OPCODES = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}


class Closed(Exception):
    """The server closed (EOF or reset) where the test expected more bytes."""


class ProtocolViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


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
    """A close frame's payload; code None gives the empty payload."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload, length_bytes=0):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload
        self.length_bytes = length_bytes  # extended length field: 0, 2 or 8 bytes

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
    def __init__(self, status, reason, headers, raw, all_headers=None):
        self.status, self.reason, self.headers, self.raw = status, reason, headers, raw
        self.all_headers = all_headers or {}  # lower-case name -> every value, in order

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
        self.reset = False          # the EOF was a reset
        self.close_sent = False
        self.server_pings = []      # payloads of pings read_event answered
        self._frag_op = None        # opcode of the server's open fragmented message
        self._frag = bytearray()
        self._frag_compressed = False
        self.pmd = None             # PmdClient once permessage-deflate is agreed

    # -- bytes ---------------------------------------------------------
    def send(self, data):
        """Writes data; raises OSError when the server is gone."""
        self.sock.sendall(data)

    def send_raw(self, data, chop=None, delay=0.0):
        """Writes data, chop bytes at a time when chop is set (with delay
        seconds between writes). Returns False when the server is gone
        (reset or broken pipe), True otherwise."""
        data = bytes(data)
        try:
            if not chop:
                self.sock.sendall(data)
            else:
                for i in range(0, len(data), chop):
                    self.sock.sendall(data[i:i + chop])
                    if delay:
                        time.sleep(delay)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_background(self, data):
        """Writes data from a thread so the caller can read the echo at the
        same time; join() the returned thread."""
        t = threading.Thread(target=self.send_raw, args=(data,), daemon=True)
        t.start()
        return t

    def _fill(self, deadline):
        """Reads once more into buf; raises Closed on EOF/reset and
        socket.timeout when the deadline passes."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read timed out")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = self.reset = True
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
        headers, all_headers = {}, {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
            all_headers.setdefault(name.strip().lower(), []).append(value.strip())
        if status != 101 and "content-length" in headers:
            n = int(headers["content-length"])
            try:
                self.recv_exact(n, max(0.1, deadline - time.monotonic()))
            except Closed:
                pass
        return Response(status, reason, headers, head, all_headers)

    def handshake(self, path="/echo", key=None, **kw):
        """Sends an upgrade request, reads the answer and checks it: an
        HTTP/1.1 101 with exactly one right Sec-WebSocket-Accept, Upgrade
        and Connection tokens, and no extension or subprotocol the request
        did not offer. Returns the Response."""
        key = key or new_key()
        self.send(build_request(path=path, key=key, **kw))
        r = self.read_response()
        assert r.raw.startswith(b"HTTP/1.1 101 "), f"expected HTTP/1.1 101, got {r.status}: {r.raw!r}"
        assert r.all_headers.get("sec-websocket-accept") == [accept_for(key)], r.raw
        assert "websocket" in [v.strip().lower() for v in r.all_headers.get("upgrade", [])], r.raw
        tokens = [t.strip().lower() for v in r.all_headers.get("connection", []) for t in v.split(",")]
        assert "upgrade" in tokens, r.raw
        offered = {name.lower(): value for name, value in kw.get("extra", ())}
        for h in ("sec-websocket-extensions", "sec-websocket-protocol"):
            assert h in offered or h not in r.all_headers, f"{h} answered though none was offered: {r.raw!r}"
        ext = r.all_headers.get("sec-websocket-extensions", [])
        if len(ext) > 1:
            raise ProtocolViolation(f"several extension answers: {r.raw!r}")
        if ext:
            self.pmd = PmdClient.answering(ext[0], offered["sec-websocket-extensions"])
        return r

    # -- frames ------------------------------------------------------------
    def send_frame(self, opcode, payload=b"", chop=None, delay=0.0, **kw):
        """Sends one frame (kw goes to build_frame), chopped as send_raw
        does. Returns False when the server is gone."""
        return self.send_raw(build_frame(opcode, payload, **kw), chop, delay)

    def send_frames(self, frames, chop=None, delay=0.0):
        """frames: iterable of (opcode, payload, fin[, rsv]) sent as one write
        (chop None) or in chop-byte writes."""
        data = b"".join(build_frame(f[0], f[1], f[2], f[3] if len(f) > 3 else 0) for f in frames)
        return self.send_raw(data, chop, delay)

    def send_message(self, opcode, payload, compress=True, frag=None, chop=None):
        """One data message, compressed with the agreed parameters when
        compress (RSV1 on its first frame), in frames of frag bytes of the
        (compressed) payload when frag is set."""
        if isinstance(payload, str):
            payload = payload.encode()
        rsv = 0
        if compress:
            payload, rsv = self.pmd.compress(payload), 4
        if not frag:
            return self.send_raw(build_frame(opcode, payload, True, rsv), chop)
        parts = [payload[i:i + frag] for i in range(0, len(payload), frag)] or [b""]
        data = b"".join(build_frame(opcode if i == 0 else OP_CONT, p, i == len(parts) - 1,
                                    rsv if i == 0 else 0) for i, p in enumerate(parts))
        return self.send_raw(data, chop)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=1000, reason=b"", **kw):
        """Sends a close frame (code None: empty payload)."""
        self.close_sent = True
        return self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

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
        length_bytes = need - 2
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
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload, length_bytes)

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

    # -- strict reading (the conformance suite) ----------------------------
    def read_frame(self, timeout=5.0):
        """Reads one frame and checks the rules a server must follow.
        Raises ProtocolViolation on a breach, Closed on EOF, TimeoutError
        (socket.timeout) on timeout."""
        f = self.recv_frame(timeout)
        n = len(f.payload)
        if f.length_bytes == 2 and n < 126:
            raise ProtocolViolation(f"non-minimal 16-bit length {n}")
        if f.length_bytes == 8 and (n < 65536 or n >> 63):
            raise ProtocolViolation(f"bad 64-bit length {n}")
        if f.masked:
            raise ProtocolViolation("server sent a masked frame")
        if f.rsv and not (f.rsv == 4 and self.pmd and f.opcode in (OP_TEXT, OP_BINARY)):
            raise ProtocolViolation(f"server set RSV bits {f.rsv} on opcode {f.opcode:#x}"
                                    f"{' (deflate agreed)' if self.pmd else ''}")
        if f.opcode not in KNOWN_OPCODES:
            raise ProtocolViolation(f"server sent reserved opcode {f.opcode:#x}")
        if f.opcode & 8 and (not f.fin or n > 125):
            raise ProtocolViolation(f"bad control frame from server: fin={f.fin} len={n}")
        return f

    def _close_event(self, p):
        if len(p) == 1:
            raise ProtocolViolation("server sent a close payload of 1 byte")
        if not p:
            return ("close", None, b"")
        code = struct.unpack("!H", p[:2])[0]
        if code < 1000 or code in (1004, 1005, 1006, 1015):
            raise ProtocolViolation(f"server sent close code {code}, which must not be sent")
        try:
            p[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation(f"server close reason is not UTF-8: {p[2:]!r}")
        return ("close", code, p[2:])

    def _data_event(self, f):
        """Adds a data frame to the open message; returns the message event
        when f ends it, else None."""
        if f.opcode == OP_CONT:
            if self._frag_op is None:
                raise ProtocolViolation("server sent a continuation with no message open")
            self._frag += f.payload
        else:
            if self._frag_op is not None:
                raise ProtocolViolation("server started a new message inside a fragmented one")
            self._frag_op, self._frag = f.opcode, bytearray(f.payload)
            self._frag_compressed = bool(f.rsv)
        if not f.fin:
            return None
        op, data = self._frag_op, bytes(self._frag)
        self._frag_op, self._frag = None, bytearray()
        if self._frag_compressed:
            data = self.pmd.inflate(data)
        elif self.pmd:
            self.pmd.plain_in += 1
        if op == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolViolation("server sent a text message that is not UTF-8")
        return ("message", op, data)

    def read_event(self, timeout=5.0):
        """Returns the next event: ("message", opcode, payload),
        ("pong", payload) or ("close", code, reason), every frame checked by
        read_frame. Fragmented server messages are reassembled (messages are
        compared, not frames). Server pings (keepalive) are answered (until
        we sent a close) and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f.opcode == OP_PING:
                self.server_pings.append(f.payload)
                if not self.close_sent:
                    self.send_frame(OP_PONG, f.payload)
            elif f.opcode == OP_PONG:
                return ("pong", f.payload)
            elif f.opcode == OP_CLOSE:
                return self._close_event(f.payload)
            else:
                ev = self._data_event(f)
                if ev:
                    return ev

    def expect_silence(self, duration):
        """Asserts the server sends nothing (other than keepalive pings) and
        keeps the connection open for duration seconds."""
        deadline = time.monotonic() + duration
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                ev = self.read_event(remaining)
            except TimeoutError:
                return
            except Closed as e:
                raise AssertionError(f"server closed the connection during a quiet period: {e}")
            raise AssertionError(f"expected nothing from the server, got {ev!r}")

    def events_until_close(self, timeout=5.0):
        """Reads events until the server's close frame (included, last).
        Raises if the connection ends without one or on timeout."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            try:
                ev = self.read_event(max(deadline - time.monotonic(), 0.001))
            except Closed as e:
                raise AssertionError(f"TCP closed without a close frame; events so far {events!r}: {e}")
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s; events so far {events!r}")
            events.append(ev)
            if ev[0] == "close":
                return events

    def wait_tcp_close(self, timeout=5.0):
        """After the close handshake: the server must close TCP and send
        nothing more. Returns 'eof' or 'reset'."""
        deadline = time.monotonic() + timeout
        while True:
            if self.buf:
                raise AssertionError(f"bytes after the server's close frame: {bytes(self.buf[:60])!r}")
            if self.eof:
                return "reset" if self.reset else "eof"
            try:
                self._fill(deadline)
            except Closed:
                pass
            except TimeoutError:
                raise AssertionError(f"server did not close the TCP connection within {timeout}s "
                                     "after the close handshake") from None

    def finish_close(self, code=None, timeout=5.0):
        """Answers the server's close (if we have not sent one) by echoing
        its code, and waits for the server to drop TCP."""
        if not self.close_sent:
            self.send_close(code)
        return self.wait_tcp_close(timeout)

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


def open_ws(port, path="/echo", timeout=5.0, rcvbuf=None, extensions=None, **kw):
    """Connects and completes the handshake; returns the RawWS. kw goes to
    build_request; extensions is a Sec-WebSocket-Extensions offer
    (pmd_client.offer()): c.pmd is then set when the server accepted it."""
    if extensions:
        kw["extra"] = list(kw.get("extra", ())) + [("Sec-WebSocket-Extensions", extensions)]
    c = RawWS(port, timeout=timeout, rcvbuf=rcvbuf)
    try:
        c.handshake(path=path, **kw)
    except BaseException:
        c.close()
        raise
    return c
