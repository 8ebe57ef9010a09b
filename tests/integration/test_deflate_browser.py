"""permessage-deflate with a real browser: headless Chromium (Debian's
chromium and chromium-driver, driven by python3-selenium) talks to /echo
and /ch/NAME. Chromium offers `permessage-deflate; client_max_window_bits`
on every connection and compresses what it sends; the server's counters
show both directions compressed."""
import json
import os
import sys

import pytest

import chromium

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_channels import http_post  # noqa: E402


def deflate(srv, key):
    return sum(w["deflate"][key] for w in srv.status()["workers"])


@pytest.fixture(scope="module")
def browser():
    if not chromium.available():
        pytest.skip("chromium and chromium-driver are not installed (scripts/test.sh installs them)")
    with chromium.blank_page() as page:
        d = chromium.start()
        try:
            d.set_script_timeout(30)
            d.get(page)
            yield d
        finally:
            d.quit()


MSGS = [json.dumps([{"seq": i * 10 + k, "user": "chromium", "text": "compressed in the browser"}
                    for k in range(20)]) for i in range(8)]

ECHO_JS = """
const [url, msgs, done] = arguments;
const ws = new WebSocket(url);
const got = [];
ws.onopen = () => msgs.forEach(m => ws.send(m));
ws.onmessage = e => { got.push(e.data); if (got.length === msgs.length) { ws.close(); done({ext: ws.extensions, got}); } };
ws.onerror = () => done({error: 'websocket error', ext: ws.extensions, got});
"""


def test_chromium_echo(server, browser):
    in0, out0 = deflate(server, "in_compressed"), deflate(server, "out_compressed")
    r = browser.execute_async_script(ECHO_JS, server.url("/echo"), MSGS)
    assert "error" not in r, r
    assert r["ext"].startswith("permessage-deflate"), r["ext"]
    assert "server_no_context_takeover" in r["ext"], r["ext"]
    assert r["got"] == MSGS
    assert deflate(server, "in_compressed") - in0 == len(MSGS)   # Chromium compressed them
    assert deflate(server, "out_compressed") - out0 == len(MSGS)  # and inflated our replies


OPEN_JS = """
const [url, n, done] = arguments;
window.subs = [];
let open = 0;
for (let i = 0; i < n; i++) {
  const ws = new WebSocket(url);
  const s = {ws, got: []};
  ws.onmessage = e => s.got.push(e.data);
  ws.onopen = () => { if (++open === n) done(window.subs.map(x => x.ws.extensions)); };
  ws.onerror = () => done('error');
  window.subs.push(s);
}
"""

WAIT_JS = """
const [n, done] = arguments;
const check = () => window.subs.every(s => s.got.length >= n)
    ? done(window.subs.map(s => s.got)) : setTimeout(check, 20);
check();
"""


def test_chromium_channel(server, browser):
    port = int(server.settings["publish_listen"].rsplit(":", 1)[1])
    exts = browser.execute_async_script(OPEN_JS, server.url("/ch/news"), 3)
    assert exts != "error" and all(e.startswith("permessage-deflate") for e in exts), exts
    before = deflate(server, "out_compressed")
    for m in MSGS:
        status, body = http_post(port, "/pub/news", m.encode())
        assert 200 <= status < 300, body
    got = browser.execute_async_script(WAIT_JS, len(MSGS))
    assert got == [MSGS] * 3
    assert deflate(server, "out_compressed") - before == 3 * len(MSGS)
    browser.execute_script("window.subs.forEach(s => s.ws.close())")
