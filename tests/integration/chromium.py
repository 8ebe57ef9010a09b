"""One way to start headless Chromium for the browser tests: Debian's
chromium and chromium-driver, driven through python3-selenium (both
installed by scripts/test.sh)."""
import shutil

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
    service = Service(DRIVER, log_output=log_output) if log_output else Service(DRIVER)
    return webdriver.Chrome(service=service, options=opts)
