"""The dashboard (worker/http/route_dashboard.c, worker/http/dashboard/) in
a real headless Chromium driven by chromedriver: it loads with no console
error and fetches nothing from outside the server, its connection figure
follows the test's clients as they open and close, and its charts start
from the history the worker kept before the page was opened."""
import time

import pytest

import chromium

from rawws import open_ws, wait_until

pytest.importorskip("selenium.webdriver")



@pytest.fixture
def browser(tmp_path):
    log = open(tmp_path / "chromedriver.log", "w")
    d = chromium.start(["--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                        f"--user-data-dir={tmp_path / 'profile'}"], log_output=log,
                       capabilities={"goog:loggingPrefs": {"browser": "ALL"}})
    d.set_page_load_timeout(30)
    yield d
    d.quit()
    log.close()


def page_url(srv, query=""):
    return f"http://127.0.0.1:{srv.settings['publish_listen'].rsplit(':', 1)[1]}/dashboard{query}"


def text(d, element_id):
    return d.find_element("id", element_id).text


def errors(d):
    return [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_connection_figure_follows_the_clients(server_factory, clients, browser):
    srv = server_factory(workers=2)
    browser.get(page_url(srv))
    wait_until(lambda: text(browser, "link") == "live", timeout=15, what="the event stream open")
    wait_until(lambda: text(browser, "connections") == "0", timeout=10, what="0 connections shown")
    opened = [open_ws(srv.port, path="/ch/dash") for _ in range(5)]
    clients.extend(opened)
    wait_until(lambda: text(browser, "connections") == "5", timeout=10, what="5 connections shown")
    for ws in opened[:3]:
        ws.close()
    wait_until(lambda: text(browser, "connections") == "2", timeout=10, what="2 connections shown")
    rows = browser.find_elements("css selector", "#worker-table tbody tr")
    assert len(rows) == 2, [r.text for r in rows]
    assert text(browser, "workers") == "2/2"
    base = page_url(srv).rsplit("/dashboard", 1)[0] + "/"
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and all(u.startswith(base) for u in fetched), fetched
    assert not errors(browser), errors(browser)


def test_charts_start_from_the_history_and_the_token_opens_the_stream(server_factory, clients, browser):
    srv = server_factory(workers=1, metrics_token="tok")
    clients.extend(open_ws(srv.port, path="/echo") for _ in range(3))
    time.sleep(2.5)  # a few history samples with 3 connections, before the page exists
    browser.get(page_url(srv, "?token=tok"))
    wait_until(lambda: text(browser, "connections") == "3", timeout=15, what="3 connections shown")
    # the history came first: samples with 3 connections from before the page
    values = browser.execute_script("return hist.connections.map(p => p[1])")
    assert len(values) >= 3 and values.count(3) >= 2, values
    assert not errors(browser), errors(browser)
