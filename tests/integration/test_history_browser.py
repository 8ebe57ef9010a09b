"""The JavaScript client of docs/history.md, as printed there, in headless
Chromium: it subscribes with wsmill.v1, loses its connection when a reload
retires its worker, reconnects by itself with its position while messages
are published, and ends with every message exactly once and in order."""
import os
import re
import signal
import time

import pytest

import chromium

from conftest import ROOT, free_port
from rawws import wait_until
from test_history import http_get, publish

pytest.importorskip("selenium.webdriver")


def doc_client():
    with open(os.path.join(ROOT, "docs", "history.md")) as f:
        blocks = re.findall(r"```js\n(.*?)```", f.read(), re.S)
    assert blocks, "docs/history.md has no ```js block"
    return blocks[0]


@pytest.fixture
def page():
    with chromium.blank_page() as url:
        yield url


@pytest.fixture
def browser():
    try:
        drv = chromium.start()
    except Exception as e:  # no usable browser here: say so instead of passing
        pytest.skip(f"headless Chromium unavailable: {e}")
    yield drv
    drv.quit()


def test_doc_client_resumes_in_chromium(server_factory, browser, page):
    srv = server_factory(workers=1, history_size=1000, drain_timeout="1s",
                         publish_listen=f"127.0.0.1:{free_port()}")
    port = int(srv.settings["publish_listen"].rsplit(":", 1)[1])
    browser.get(page)
    browser.execute_script(doc_client() + """
        window.got = []; window.resets = [];
        window.sub = wsmillSubscribe(arguments[0], ["news"],
            (c, o, b) => got.push([c, o, typeof b === "string" ? b : "bin"]),
            (c, r) => resets.push([c, r]));
    """, f"ws://127.0.0.1:{srv.port}")
    wait_until(lambda: browser.execute_script("return !!window.sub.positions.news"), timeout=10,
               what="the browser's subscribed answer")
    for i in range(10):
        publish(port, "news", f"m{i}")
    wait_until(lambda: browser.execute_script("return got.length") == 10, timeout=10,
               what="ten messages in the browser")
    # A reload that starts a new generation: the old worker closes its
    # clients (1001) after drain_timeout; the client comes back a second later.
    seq = srv.status()["last_reload"]["seq"]
    srv.write_conf(workers=2)
    srv.signal(signal.SIGHUP)
    wait_until(lambda: srv.status()["last_reload"]["seq"] > seq, timeout=30, what="the reload")
    deadline = time.monotonic() + 4
    i = 10
    while time.monotonic() < deadline:  # published while the client is away and after it is back
        publish(port, "news", f"m{i}")
        i += 1
        time.sleep(0.1)
    wait_until(lambda: browser.execute_script("return got.length") == i, timeout=15,
               what=f"{i} messages in the browser")
    got = browser.execute_script("return got")
    assert got == [["news", k + 1, f"m{k}"] for k in range(i)]
    assert browser.execute_script("return resets") == []
    _, ch = http_get(port, "/channels/news")
    assert ch["subscribers"] == 1 and ch["offset"] == i, ch
    browser.execute_script("window.sub.close()")
