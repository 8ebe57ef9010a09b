"""One way to start headless Chromium for the browser tests: Debian's
chromium and chromium-driver, driven through python3-selenium (both
installed by scripts/test.sh)."""
import contextlib
import http.server
import shutil
import threading

from conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage")


def available():
    return bool(shutil.which(CHROMIUM) and shutil.which(DRIVER))


def start(extra_args=(), log_output=None, capabilities=None):
    """A new headless Chromium (a selenium driver; the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in BASE_ARGS + tuple(extra_args):
        opts.add_argument(a)
    for k, v in (capabilities or {}).items():
        opts.set_capability(k, v)
    # chromedriver's port from this pass's own range: selenium's default
    # binds port 0 and closes it, and with the suite's ranges reserved the
    # kernel hands that same few ports above them to both passes at once
    # (one run's two chromedrivers met on 32003).
    port = free_port()
    service = Service(DRIVER, port=port, log_output=log_output) if log_output else Service(DRIVER, port=port)
    return webdriver.Chrome(service=service, options=opts)


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>wsmill</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def blank_page():
    """The URL of an empty page served from 127.0.0.1, as an application's
    would be: Chromium lets only a loopback page open a WebSocket to a
    loopback address (it refuses them from about:blank)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
