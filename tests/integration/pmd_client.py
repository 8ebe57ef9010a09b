"""The client side of permessage-deflate (RFC 7692) for the raw test client,
on Python's zlib: it reads the server's answer, compresses what the client
sends (keeping its context unless client_no_context_takeover was agreed)
and inflates what the server sends, checking the server kept its promises:
no context carried between messages (each is inflated by a fresh
decompressor) and no match reaching past server_max_window_bits."""
import zlib

TAIL = b"\x00\x00\xff\xff"


class PmdViolation(AssertionError):
    """The server broke RFC 7692 or its own answer."""


def offer(client_bits=None, client_nct=False, server_bits=None, server_nct=False):
    """An offer string: client_bits True = the parameter without a value."""
    p = ["permessage-deflate"]
    if client_nct:
        p.append("client_no_context_takeover")
    if server_nct:
        p.append("server_no_context_takeover")
    if server_bits is not None:
        p.append(f"server_max_window_bits={server_bits}")
    if client_bits is True:
        p.append("client_max_window_bits")
    elif client_bits is not None:
        p.append(f"client_max_window_bits={client_bits}")
    return "; ".join(p)


def parse_answer(value):
    """'permessage-deflate; a; b=1' -> {'a': None, 'b': '1'}; raises when the
    answer is not permessage-deflate or repeats a parameter."""
    parts = [p.strip() for p in value.split(";")]
    if parts[0].lower() != "permessage-deflate":
        raise PmdViolation(f"answered extension {parts[0]!r}")
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        k = k.strip().lower()
        if k in params:
            raise PmdViolation(f"answer repeats {k}: {value!r}")
        params[k] = v.strip().strip('"') if v else None
    return params


class PmdClient:
    def __init__(self, answer, offered):
        """answer: the Sec-WebSocket-Extensions value; offered: the parsed
        parameters of the offer it answers."""
        self.params = parse_answer(answer)
        known = {"server_no_context_takeover", "client_no_context_takeover",
                 "server_max_window_bits", "client_max_window_bits"}
        if set(self.params) - known:
            raise PmdViolation(f"unknown parameter in answer {answer!r}")
        if "server_no_context_takeover" not in self.params:
            raise PmdViolation("wsmill promises server_no_context_takeover, answer lacks it")
        sb = self.params.get("server_max_window_bits")
        if sb is not None and "server_max_window_bits" not in offered:
            raise PmdViolation("server_max_window_bits answered though not offered")
        if sb is not None and int(sb) > int(offered["server_max_window_bits"]):
            raise PmdViolation(f"server_max_window_bits={sb} above the offered one")
        cb = self.params.get("client_max_window_bits")
        if cb is not None and "client_max_window_bits" not in offered:
            raise PmdViolation("client_max_window_bits answered though not offered")
        if cb is not None and offered["client_max_window_bits"] and int(cb) > int(offered["client_max_window_bits"]):
            raise PmdViolation(f"client_max_window_bits={cb} above the offered one")
        self.server_bits = int(sb) if sb else 15
        self.client_bits = int(cb) if cb else 15
        self.client_takeover = "client_no_context_takeover" not in self.params
        # zlib has no 8-bit raw deflate window; its 9-bit one reaches back 250 bytes at most.
        self._comp = self._new_comp()
        self.compressed_in = 0   # compressed messages received from the server
        self.plain_in = 0

    @classmethod
    def answering(cls, answer, offers):
        """The client for answer, checked against the first permessage-deflate
        offer in offers (a header value) it is a valid answer to."""
        first = None
        for o in offers.split(","):
            if not o.strip().lower().startswith("permessage-deflate"):
                continue
            try:
                return cls(answer, parse_answer(o))
            except PmdViolation as e:
                first = first or e
            except ValueError:
                continue
        raise first or PmdViolation(f"answer {answer!r} to an offer without permessage-deflate")

    def _new_comp(self):
        return zlib.compressobj(6, zlib.DEFLATED, -max(self.client_bits, 9))

    def compress(self, data):
        if not self.client_takeover:
            self._comp = self._new_comp()
        out = self._comp.compress(data) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        if not out.endswith(TAIL):
            raise AssertionError("zlib sync flush without its tail")
        return out[:-4]

    def inflate(self, data):
        """A server message: a fresh decompressor with exactly the agreed
        window, so a match into an earlier message fails. Up to 2 KiB of
        compressed data it is inflated one output byte per call, so every
        match comes from zlib's 2^bits window and one reaching further back
        fails too (with a big output buffer zlib also accepts matches into
        the same call's output)."""
        d = zlib.decompressobj(-self.server_bits)
        try:
            if len(data) > 2048:
                out = d.decompress(data + TAIL)
            else:
                out = bytearray(d.decompress(data + TAIL, 1))
                while True:
                    chunk = d.decompress(d.unconsumed_tail, 1)
                    if not chunk:
                        break
                    out += chunk
                out = bytes(out)
        except zlib.error as e:
            raise PmdViolation(f"server message does not inflate with a fresh {self.server_bits}-bit "
                               f"window: {e}") from None
        self.compressed_in += 1
        return out
