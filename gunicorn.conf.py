"""What the plain ``gunicorn "segs.web:create_app()"`` needs, read from the repository root.

gunicorn reads ./gunicorn.conf.py when no --config is given. This one makes the API's /metrics
whole: every worker process counts into one prometheus-client multiprocess directory, and
whichever worker answers /metrics reads them all. Without it each worker imported segs.metrics
by itself after the fork, made a directory of its own, and /metrics showed the counts of
whichever worker answered: scrapes alternated between values. It also keeps each worker's
loaded application out of the garbage collector's full collections (post_worker_init).

Bind address, workers and the rest keep gunicorn's defaults and flags. For the deployed API use
``--config deploy/gunicorn.conf.py`` instead (it loads these hooks, and binds 0.0.0.0).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

_OWN_PREFIX = "segs-gunicorn-metrics-"

# Set here, in the master, before any worker forks and before prometheus_client is imported:
# prometheus_client picks multiprocess mode when it is first imported, and the workers inherit
# both the setting and the imported module.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_OWN_PREFIX)


def _metrics_dir() -> Path:
    return Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server: Arbiter) -> None:
    """Start with an empty metrics directory: files of an earlier run would be added to this
    run's counts. Emptied in place, so a directory that is a mount point works too."""
    directory = _metrics_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    server.log.info("Prometheus multiprocess directory: %s", directory)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Forget a dead worker's live gauges; its counts stay in the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    """Remove the directory if this file made it (one given in the environment is left)."""
    directory = _metrics_dir()
    if directory.name.startswith(_OWN_PREFIX) and directory.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(directory, ignore_errors=True)


def post_worker_init(worker: Worker) -> None:
    """Leave the loaded application out of the garbage collector's full collections.

    Its modules, classes and caches are some 200,000 objects that live as long as the process;
    a full collection walked them all, about 100 ms in the middle of a request (BENCHMARKS.md,
    "Issue 16").

    The first worker also says in the log what a Redis restart would lose of the accepted
    readings, if anything (segs.services.spine.durability).
    """
    gc.freeze()
    if worker.age == 1:
        from segs.config import get_settings
        from segs.services.spine.durability import redis_broker_risk

        settings = get_settings()
        risk = redis_broker_risk(settings.broker_url, settings.redis_url)
        if risk:
            worker.log.warning("%s", risk)
