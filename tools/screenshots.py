"""Screenshots of the pages the README shows: ``python -m tools.screenshots``.

``make screenshots`` runs it. It serves the real app on a loopback port, opens its pages in
headless Chromium (tools.browser) and writes PNGs under docs/images/. It needs Redis (the API's
rate limiter), as the API does, and no database. Nothing leaves the machine: the run fails if a
page asked any other host for anything.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from selenium.webdriver.common.by import By

from segs.config import get_settings
from segs.web import create_app
from tools.browser import browser_missing
from tools.browser import chromium
from tools.browser import documented_operations
from tools.browser import is_loopback
from tools.browser import open_swagger_ui
from tools.browser import requested_urls
from tools.browser import serving

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"


def swagger_ui(output: Path, width: int, height: int) -> None:
    """/api-docs with the ingestion section's batch operation opened."""
    settings = get_settings()
    # The page signs nothing, but the app will not start without a key outside testing.
    app = create_app(replace(settings, jwt_secret_key=secrets.token_urlsafe(32)))
    with serving(app) as base_url, chromium(width, height) as driver:
        open_swagger_ui(driver, base_url, len(documented_operations(base_url)))
        # Open POST /telemetry/batch: the first thing a meter's integrator looks for.
        batch = driver.find_element(
            By.CSS_SELECTOR, '.opblock-post .opblock-summary-path[data-path="/telemetry/batch"]'
        )
        batch.click()
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
        outside = [url for url in requested_urls(driver) if not is_loopback(url)]
        if outside:
            raise SystemExit(f"the page asked other hosts for: {outside}")
        output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(output))
    print(f"wrote {output.relative_to(REPO) if output.is_relative_to(REPO) else output}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=IMAGES / "swagger-ui.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    swagger_ui(args.output.resolve(), args.width, args.height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
