"""A real headless Chromium (Debian's chromium and chromium-driver, driven
by python3-selenium) opens wss:// to wsmill and echoes through it. The
browser trusts the test certificate by its public key
(--ignore-certificate-errors-spki-list: Chromium's switch for exactly this,
trusting one key without touching the system's CA store), so a wrong key, a
failed TLS handshake or a broken upgrade fails the page's WebSocket."""
import base64
import hashlib
import subprocess

import pytest

import chromium

from test_tls import pki, tls_server  # noqa: F401 (pki is a fixture)



def spki_hash(cert):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


SCRIPT = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
const ws = new WebSocket(url);
const got = [];
ws.binaryType = "arraybuffer";
ws.onopen = () => { ws.send("hello over wss"); ws.send(new Uint8Array([0, 1, 2, 255])); };
ws.onmessage = (e) => {
  got.push(typeof e.data === "string" ? e.data : Array.from(new Uint8Array(e.data)).join(","));
  if (got.length === 2) { ws.close(1000); done({ok: true, got: got}); }
};
ws.onerror = () => done({ok: false, got: got, error: "error event"});
ws.onclose = (e) => { if (got.length < 2) done({ok: false, got: got, code: e.code}); };
"""


def browser(spki):
    d = chromium.start([f"--ignore-certificate-errors-spki-list={spki}"])
    d.set_script_timeout(15)
    return d


@pytest.mark.skipif(not chromium.available(), reason="chromium / chromium-driver not installed")
def test_chromium_wss_echo(server_factory, pki):  # noqa: F811
    srv = tls_server(server_factory, pki)
    d = browser(spki_hash(pki["a"][0]))
    try:
        d.get(f"http://127.0.0.1:{srv.port}/")  # any page; the socket is what matters
        r = d.execute_async_script(SCRIPT, f"wss://localhost:{srv.tls_port}/echo")
        assert r["ok"], r
        assert r["got"] == ["hello over wss", "0,1,2,255"], r
        # Another key than the server's: the browser refuses the handshake.
        other = browser(spki_hash(pki["b"][0]))
        try:
            other.get(f"http://127.0.0.1:{srv.port}/")
            bad = other.execute_async_script(SCRIPT, f"wss://localhost:{srv.tls_port}/echo")
            assert not bad["ok"], bad
        finally:
            other.quit()
    finally:
        d.quit()
    st = srv.status()
    assert sum(w["tls_handshakes"] for w in st["workers"]) >= 1
