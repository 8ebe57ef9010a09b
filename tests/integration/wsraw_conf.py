"""A raw RFC 6455 client for the conformance suite.

It sends whatever frames a test asks for (any FIN/RSV/opcode/length, masked
or not, whole or chopped into small writes) and checks every frame the
server sends back against the rules a server must follow (unmasked, RSV 0,
known opcode, control frames unfragmented and <= 125 bytes, text is valid
UTF-8). All reads are bounded by a timeout. With extensions= it offers
permessage-deflate and then inflates (and checks) the server's compressed
messages (RSV1 on a message's first frame) through pmd_client.py."""
import base64
import hashlib
import os
import socket
import struct
import threading
import time

from pmd_client import PmdClient

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
KNOWN_OPCODES = {OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}


class ProtocolViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


class Closed(AssertionError):
    """The TCP connection ended where the test expected more."""


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR data with the 4-byte key, fast for megabytes (one big-int XOR)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, key=None, length=None):
    """Encodes one frame. rsv is the 3-bit RSV field (RSV1 = 4). length
    overrides the encoded length (for deliberately broken frames)."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = key if key is not None else os.urandom(4)
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload")

    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(fin={self.fin}, rsv={self.rsv}, op={self.opcode:#x}, len={len(self.payload)}, {p!r})"


class WSConn:
    def __init__(self, host, port, path="/echo", timeout=5.0, headers=None, extensions=None):
        """extensions: a Sec-WebSocket-Extensions offer (pmd_client.offer());
        self.pmd is then the PmdClient when the server accepted it, else None."""
        self.extensions = extensions
        self.pmd = None
        self._frag_compressed = False
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.close_sent = False
        self.server_pings = []
        self._frag_op = None   # opcode of the server's open fragmented message
        self._frag = bytearray()
        self.handshake(host, port, path, headers or {})

    # -- handshake -------------------------------------------------------
    def handshake(self, host, port, path, headers):
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self.extensions:
            lines.append(f"Sec-WebSocket-Extensions: {self.extensions}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536 or time.monotonic() > deadline:
                raise ProtocolViolation(f"no complete handshake response: {bytes(self.buf[:200])!r}")
            if not self._recv(deadline):
                raise Closed(f"EOF during handshake: {bytes(self.buf)!r}")
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end]
        status, *hdr_lines = head.split("\r\n")
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or parts[1] != "101":
            raise ProtocolViolation(f"expected 101, got {status!r}")
        hdrs = {}
        for line in hdr_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        if "websocket" not in [v.lower() for v in hdrs.get("upgrade", [])]:
            raise ProtocolViolation(f"bad Upgrade header: {head!r}")
        conn_tokens = [t.strip().lower() for v in hdrs.get("connection", []) for t in v.split(",")]
        if "upgrade" not in conn_tokens:
            raise ProtocolViolation(f"bad Connection header: {head!r}")
        if hdrs.get("sec-websocket-accept") != [accept_key(key).decode()]:
            raise ProtocolViolation(f"bad Sec-WebSocket-Accept: {head!r}")
        ext = hdrs.get("sec-websocket-extensions", [])
        if ext and not self.extensions:
            raise ProtocolViolation(f"extension accepted though none was offered: {head!r}")
        if len(ext) > 1:
            raise ProtocolViolation(f"several extension answers: {head!r}")
        if ext:
            self.pmd = PmdClient.answering(ext[0], self.extensions)
        if "sec-websocket-protocol" in hdrs:
            raise ProtocolViolation(f"subprotocol selected though none was offered: {head!r}")
        self.response_headers = hdrs

    # -- sending ---------------------------------------------------------
    def send_raw(self, data, chop=None, delay=0.0):
        """Writes bytes; chop=k writes them k bytes at a time (with delay
        seconds between writes). Returns False if the peer is gone."""
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

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, chop=None, delay=0.0, length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        return self.send_raw(build_frame(opcode, payload, fin, rsv, mask, length=length), chop, delay)

    def send_frames(self, frames, chop=None, delay=0.0):
        """frames: iterable of (opcode, payload, fin[, rsv]) sent as one write
        (chop=None) or in chop-byte writes."""
        data = b""
        for f in frames:
            op, payload, fin = f[0], f[1], f[2]
            rsv = f[3] if len(f) > 3 else 0
            if isinstance(payload, str):
                payload = payload.encode()
            data += build_frame(op, payload, fin, rsv)
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

    def send_close(self, code=None, reason=b""):
        self.close_sent = True
        return self.send_frame(OP_CLOSE, close_payload(code, reason))

    def send_background(self, data):
        """Writes data from a thread so the caller can read the echo at the
        same time; join() the returned thread."""
        t = threading.Thread(target=self.send_raw, args=(data,), daemon=True)
        t.start()
        return t

    # -- receiving -------------------------------------------------------
    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server") from None
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                raise Closed(f"TCP closed by server (reset={self.reset}) with {len(self.buf)} "
                             f"of {n} bytes of a frame")
            if not self._recv(deadline):
                raise Closed(f"TCP closed by server (reset={self.reset}) with {len(self.buf)} "
                             f"of {n} bytes of a frame")

    def read_frame(self, timeout=5.0):
        """Reads one frame and checks it obeys the server-side rules.
        Raises Closed on EOF, TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, opcode = b0 >> 7, (b0 >> 4) & 7, b0 & 0xF
        masked, n = b1 >> 7, b1 & 0x7F
        hl = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack_from("!H", self.buf, 2)[0]
            hl = 4
            if n < 126:
                raise ProtocolViolation(f"non-minimal 16-bit length {n}")
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack_from("!Q", self.buf, 2)[0]
            hl = 10
            if n < 65536 or n >> 63:
                raise ProtocolViolation(f"bad 64-bit length {n}")
        if masked:
            raise ProtocolViolation("server sent a masked frame")
        if rsv and not (rsv == 4 and self.pmd and opcode in (OP_TEXT, OP_BINARY)):
            raise ProtocolViolation(f"server set RSV bits {rsv} on opcode {opcode:#x}"
                                    f"{' (deflate negotiated)' if self.pmd else ''}")
        if opcode not in KNOWN_OPCODES:
            raise ProtocolViolation(f"server sent reserved opcode {opcode:#x}")
        if opcode & 8 and (not fin or n > 125):
            raise ProtocolViolation(f"bad control frame from server: fin={fin} len={n}")
        self._need(hl + n, deadline)
        payload = bytes(self.buf[hl:hl + n])
        del self.buf[:hl + n]
        return Frame(fin, rsv, opcode, payload)

    def read_event(self, timeout=5.0):
        """Returns the next event: ("message", opcode, payload),
        ("pong", payload), ("ping", payload) or ("close", code, reason).
        Fragmented server messages are reassembled (messages are compared,
        not frames). Server pings (keepalive) are answered and skipped."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if f.opcode == OP_PING:
                self.server_pings.append(f.payload)
                if not self.close_sent:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                return ("pong", f.payload)
            if f.opcode == OP_CLOSE:
                p = f.payload
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
            # data frames
            if f.opcode == OP_CONT:
                if self._frag_op is None:
                    raise ProtocolViolation("server sent a continuation with no message open")
                self._frag += f.payload
            else:
                if self._frag_op is not None:
                    raise ProtocolViolation("server started a new message inside a fragmented one")
                self._frag_op = f.opcode
                self._frag = bytearray(f.payload)
                self._frag_compressed = bool(f.rsv)
            if f.fin:
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
            if self.eof:
                if self.buf:
                    raise AssertionError(f"bytes after the server's close frame: {bytes(self.buf[:60])!r}")
                return "reset" if self.reset else "eof"
            if self.buf:
                raise AssertionError(f"bytes after the server's close frame: {bytes(self.buf[:60])!r}")
            try:
                self._recv(deadline)
            except TimeoutError:
                raise AssertionError(f"server did not close the TCP connection within {timeout}s "
                                     "after the close handshake") from None

    def finish_close(self, code=None, timeout=5.0):
        """Answers the server's close (if we have not sent one) by echoing
        its code, and waits for the server to drop TCP."""
        if not self.close_sent:
            self.send_close(code)
        return self.wait_tcp_close(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
