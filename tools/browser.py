"""Headless Chromium on loopback, for the browser tests and ``python -m tools.screenshots``.

Debian's chromium and chromium-driver (``make browser`` installs them), driven by selenium. The
browser may reach loopback only: every other host resolves to nothing, and the DevTools
network log tells every URL a page asked for, so a test can say that none left the machine.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Without the background-networking flags Chromium reaches for Google's hosts by itself
# (component updates, sync, field trials...), and this machine refuses every network but
# loopback. --host-resolver-rules leaves every other host, a name or an address, unresolvable:
# a page that still asked for a CDN would fail at once, and the network log would show it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)
# URLs that load nothing over a network: inline data, and the browser's own built-in pages and
# resources (its new-tab page loads some of those at start).
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-untrusted"}


def browser_missing() -> str | None:
    """Why the browser cannot start here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            return (
                f"{path} is missing; `make browser` installs Debian's chromium and chromium-driver"
            )
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 1024) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile directory), quit on exit."""
    with tempfile.TemporaryDirectory(prefix="segs-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        # An explicit driver and browser: selenium then looks nothing up on the network.
        driver = webdriver.Chrome(
            options=options, service=Service(executable_path=str(CHROMEDRIVER))
        )
        try:
            yield driver
        finally:
            driver.quit()


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page asked for since the last call, from the DevTools network log
    (also the ones that failed, which the page's own resource timing leaves out)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def is_loopback(url: str) -> bool:
    """Whether fetching *url* stays on this machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def serving(app: Flask, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve *app* on a free loopback port from a thread; yields its base URL."""
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="segs-docs-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def documented_operations(base_url: str) -> set[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document the app serves."""
    url = f"{base_url}/api/v1/openapi.json"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        paths = json.load(answer)["paths"]
    return {
        (method, path) for path, item in paths.items() for method in item if method in HTTP_METHODS
    }


# Swagger UI renders one .opblock per operation once it has read the document.
_OPERATIONS_SHOWN = """
return Array.from(document.querySelectorAll('.opblock')).map(block => [
    block.querySelector('.opblock-summary-method').textContent.trim().toLowerCase(),
    block.querySelector('.opblock-summary-path').getAttribute('data-path'),
]);
"""


def open_swagger_ui(
    driver: WebDriver, base_url: str, expected: int, timeout: float = 20.0
) -> list[tuple[str, str]]:
    """Open /api-docs and wait until it shows *expected* operations; returns (method, path)
    of each operation shown."""
    driver.get(f"{base_url}/api-docs")

    def shown(_: WebDriver) -> list[tuple[str, str]] | Literal[False]:
        operations = [(method, path) for method, path in driver.execute_script(_OPERATIONS_SHOWN)]
        return operations if len(operations) >= expected else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(shown)
    except Exception as exc:
        count = len(driver.execute_script(_OPERATIONS_SHOWN))
        outside = [url for url in requested_urls(driver) if not is_loopback(url)]
        raise AssertionError(
            f"Swagger UI showed {count} of {expected} operations within {timeout} s; "
            f"it asked other hosts for {outside}"
        ) from exc
