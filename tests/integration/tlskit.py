"""Test certificates (made at test time with the openssl CLI: ECDSA P-256,
a test CA and leaves it signs), TLS and PROXY-protocol raw clients for the
integration tests of tls_listen and proxy_protocol."""
import os
import socket
import ssl
import struct
import subprocess

from rawws import RawWS


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name="wsmill test CA"):
    """A self-signed CA in d: returns the path of its certificate."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", f"/CN={name}", cwd=d)
    return os.path.join(d, "ca.pem")


def make_leaf(d, name, days=30, san="DNS:localhost,IP:127.0.0.1", chain=True):
    """A server key and certificate signed by d's CA: NAME.key (mode 0600)
    and NAME.pem (leaf then CA when chain). Returns (cert, key) paths."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.leaf", "-days", str(days), "-extfile", f"{name}.ext", cwd=d)
    cert, key = os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")
    with open(cert, "wb") as out:
        for part in [f"{name}.leaf"] + (["ca.pem"] if chain else []):
            with open(os.path.join(d, part), "rb") as f:
                out.write(f.read())
    os.chmod(key, 0o600)
    return cert, key


def client_context(ca, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def connect(port, source=None, host="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source:
            s.bind((source, 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def as_raw(sock, timeout=5.0):
    """A RawWS driving an already connected (maybe TLS) socket."""
    c = RawWS.__new__(RawWS)
    c.sock, c.timeout, c.buf, c.eof = sock, timeout, bytearray(), False
    return c


def tls_raw(port, ca, source=None, preamble=b"", timeout=5.0, ctx=None, host="127.0.0.1"):
    """Connects (from source), sends preamble (a PROXY header) in clear,
    then does the TLS handshake; returns a RawWS over it."""
    s = connect(port, source, host=host, timeout=timeout)
    try:
        if preamble:
            s.sendall(preamble)
        t = (ctx or client_context(ca)).wrap_socket(s, server_hostname="localhost")
    except BaseException:
        s.close()
        raise
    return as_raw(t, timeout)


# What a TLS client sees when the server closes during its handshake.
TLS_CLOSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError)


def peer_cn(t):
    """The subject CN of the certificate a TLS socket's server presented."""
    return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport=40000, dst="127.0.0.1", dport=443, command=1, tlv=b""):
    """A PROXY v2 header for TCP over IPv4 (command 1 PROXY, 0 LOCAL)."""
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlv
    return V2_SIG + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


def proxy_v1(src, sport=40000, dst="127.0.0.1", dport=443):
    return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()
