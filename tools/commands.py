"""The command lines that start SEGS's processes, written once for ``make run``
(tools.run_stack), the benchmarks (bench) and the tests: the API and the feed under gunicorn,
Celery's worker, beat and Flower, and the simulator.

Each takes what every use passes and adds the options of one use. Paths such as
deploy/gunicorn.conf.py are relative: run the commands from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The scripts of the environment this Python runs in (a virtualenv's bin/).
BIN = Path(sys.executable).parent


def api(bind: str, *options: str) -> list[str]:
    """gunicorn serving the API on *bind* (host:port) with the deployed settings."""
    return [
        str(BIN / "gunicorn"),
        "segs.web:create_app()",
        *("--config", "deploy/gunicorn.conf.py"),
        *("--bind", bind),
        *options,
    ]


def feed(bind: str, *options: str) -> list[str]:
    """gunicorn serving the live feed on *bind* (host:port) with the deployed settings."""
    return [
        str(BIN / "gunicorn"),
        "segs.web.feed_app:create_feed_app()",
        *("--config", "deploy/gunicorn_feed.conf.py"),
        *("--bind", bind),
        *options,
    ]


def celery(program: str, *options: str) -> list[str]:
    """``celery -A segs`` running *program*: worker, beat or flower."""
    return [str(BIN / "celery"), "-A", "segs", program, *options]


def simulator(url: str, *options: str) -> list[str]:
    """The simulator sending its batches to *url* (the API's /telemetry/batch)."""
    return [sys.executable, "-m", "simulator", "--url", url, *options]
