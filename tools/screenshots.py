"""Screenshots of the pages the README shows: ``python -m tools.screenshots``.

``make screenshots`` runs it. It serves the real app on a loopback port, opens its pages in
headless Chromium (tools.browser) and writes PNGs under docs/images/: Swagger UI, and Flower
watching a worker it starts (``celery -A segs worker -E`` and ``celery -A segs flower`` from
tools.commands, on the configured broker and database, as ``make run`` uses them). Nothing
leaves the machine: the run fails if a page asked any other host for anything.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from segs.config import get_settings
from segs.web import create_app
from tools import commands
from tools.browser import browser_missing
from tools.browser import chromium
from tools.browser import documented_operations
from tools.browser import is_loopback
from tools.browser import open_swagger_ui
from tools.browser import requested_urls
from tools.browser import serving

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
FLOWER_PORT = 5599


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


@contextmanager
def _flower_watching_a_worker(port: int) -> Iterator[str]:
    """A worker sending task events and a Flower on *port*; Flower's URL once it sees the
    worker. Both are stopped on leaving."""
    # Flower's API answers the readiness poll without a login; it listens on loopback only.
    env = {**os.environ, "SEGS_WORKER_METRICS_PORT": "0", "FLOWER_UNAUTHENTICATED_API": "1"}
    command_lines = [
        commands.celery("worker", "-E", "--loglevel", "warning"),
        commands.celery("flower", f"--port={port}", "--address=127.0.0.1"),
    ]
    processes = [
        subprocess.Popen(  # noqa: S603 (fixed commands)
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in command_lines
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/api/workers?refresh=1", timeout=5) as answer:  # noqa: S310
                    if answer.read() not in (b"{}", b""):
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        else:
            raise SystemExit("Flower did not see the worker within 60 s")
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def flower(output: Path, width: int, height: int) -> None:
    """Flower's dashboard, with a worker that ran a few of beat's tasks."""
    from segs.celery_app import app

    with _flower_watching_a_worker(FLOWER_PORT) as url:
        # No result backend: Flower's own counts say when the worker has run them.
        for name in ("flush_closed_windows", "heal_after_redis_loss"):
            app.send_task(f"segs.tasks.windows.{name}", queue="default")
        time.sleep(5)
        with chromium(width, height) as driver:
            driver.get(f"{url}/workers")
            WebDriverWait(driver, 30).until(
                lambda page: page.find_elements(By.CSS_SELECTOR, "table tbody tr")
            )
            time.sleep(1)
            outside = [found for found in requested_urls(driver) if not is_loopback(found)]
            if outside:
                raise SystemExit(f"Flower asked other hosts for: {outside}")
            driver.save_screenshot(str(output))
    print(f"wrote {output.relative_to(REPO) if output.is_relative_to(REPO) else output}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=IMAGES / "swagger-ui.png")
    parser.add_argument("--flower-output", type=Path, default=IMAGES / "flower.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    swagger_ui(args.output.resolve(), args.width, args.height)
    flower(args.flower_output.resolve(), args.width, 700)
    return 0


if __name__ == "__main__":
    sys.exit(main())
