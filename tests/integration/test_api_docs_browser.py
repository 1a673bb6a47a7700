"""/api-docs works with no network: headless Chromium opens Swagger UI, served by the real app on
a loopback port, and finds every documented operation on it, ingestion's included, while the
browser asks no host but this one for anything.

Chromium and ChromeDriver are Debian's (``make browser``); see tools/browser.py for the flags.
"""

from __future__ import annotations

import re
import urllib.request
from importlib.resources import files

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tools.browser import browser_missing
from tools.browser import chromium
from tools.browser import documented_operations
from tools.browser import is_loopback
from tools.browser import open_swagger_ui
from tools.browser import requested_urls
from tools.browser import serving

pytestmark = [pytest.mark.integration, pytest.mark.api]

INGESTION = {
    ("post", "/telemetry/batch"),
    ("post", "/telemetry"),
    ("post", "/api/v1/{key}/telemetry/batch"),
    ("post", "/api/v1/{key}/telemetry"),
}
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")


@pytest.fixture(scope="module")
def base_url():
    from segs.web import create_app

    with serving(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    missing = browser_missing()
    if missing:
        pytest.fail(missing)
    with chromium() as driver:
        yield driver


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read()


def test_the_page_names_no_other_host_and_serves_the_pinned_files(base_url):
    status, page = fetch(f"{base_url}/api-docs")
    assert status == 200
    html = page.decode()
    references = re.findall(r"""(?:src|href)="([^"]*)\"""", html)
    assert sorted(references) == sorted(f"/api-docs/assets/{name}" for name in ASSETS)
    assert "//" not in html.replace("http://www.w3.org", "")
    dist = files("flask_swagger_ui") / "dist"
    for name in ASSETS:
        status, body = fetch(f"{base_url}/api-docs/assets/{name}")
        assert status == 200
        assert body == (dist / name).read_bytes()
    # The stylesheet pulls no font or image from anywhere: its only url()s are inline data.
    _, css = fetch(f"{base_url}/api-docs/assets/swagger-ui.css")
    assert b"@import" not in css
    assert set(re.findall(rb"url\(\s*['\"]?([a-z]+):", css)) <= {b"data"}


def test_swagger_ui_shows_every_operation_and_asks_only_this_machine(base_url, browser):
    documented = documented_operations(base_url)
    assert INGESTION <= documented
    requested_urls(browser)  # forget whatever came before this page

    shown = open_swagger_ui(browser, base_url, expected=len(documented))

    assert len(shown) == len(documented)
    assert set(shown) == documented
    urls = requested_urls(browser)
    assert f"{base_url}/api-docs/assets/swagger-ui-bundle.js" in urls
    assert f"{base_url}/api/v1/openapi.json" in urls
    assert [url for url in urls if not is_loopback(url)] == []
    # Swagger UI says so on the page when it cannot fetch or read the document.
    assert browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .errors-wrapper") == []
    title = browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert title.startswith("SEGS API")


def test_the_batch_operation_shows_its_body_responses_and_key(base_url, browser):
    open_swagger_ui(browser, base_url, expected=len(documented_operations(base_url)))
    browser.find_element(
        By.CSS_SELECTOR, '.opblock-post .opblock-summary-path[data-path="/telemetry/batch"]'
    ).click()
    block = browser.find_element(By.CSS_SELECTOR, ".opblock.is-open")
    WebDriverWait(browser, 10).until(
        lambda _: block.find_elements(By.CSS_SELECTOR, ".responses-table")
    )
    codes = {
        cell.text.strip()
        for cell in block.find_elements(By.CSS_SELECTOR, ".responses-table .response-col_status")
    }
    assert {"202", "400", "401", "413", "422", "429", "503"} <= codes
    assert "powerKw" in block.find_element(By.CSS_SELECTOR, ".opblock-section-request-body").text
    # Its lock asks for an ingestion key, not for the API's JWT.
    block.find_element(By.CSS_SELECTOR, ".authorization__btn").click()
    dialog = WebDriverWait(browser, 10).until(
        lambda _: browser.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container")
    )
    schemes = " ".join(container.text for container in dialog)
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .close-modal").click()
    assert "ingestionKey" in schemes
    assert "bearerAuth" not in schemes
    assert [url for url in requested_urls(browser) if not is_loopback(url)] == []
