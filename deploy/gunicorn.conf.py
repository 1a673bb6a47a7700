"""Gunicorn settings for the SEGS API, including prometheus-client multiprocess support.

Used as ``gunicorn "segs.web:create_app()" --config deploy/gunicorn.conf.py``. Flags given on the
command line win over the values here, so these env-driven defaults only matter for launches that
leave ``--bind``/``--workers`` out.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import multiprocess

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


# Without a shared directory each worker would count alone and /metrics would show one of them.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="segs-api-metrics-")

# All interfaces by default: inside a container the API is reached through the published port.
bind = [os.environ.get("SEGS_API_BIND") or "0.0.0.0:8000"]  # noqa: S104
workers = _env_int("SEGS_API_WORKERS", 2)
# Sync workers: request handling is short and CPU/IO-bound on Redis and the broker, and
# prometheus-client's multiprocess mode assumes one process per worker.
worker_class = "sync"
timeout = 30
keepalive = 5
# Workers must import the app themselves, after on_starting has cleaned the metrics directory.
# Preloading would create metric files in the master before the wipe and then delete them.
preload_app = False


def _metrics_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def on_starting(server: Arbiter) -> None:
    """Start every run with an empty metrics directory.

    Files left by a previous run would be merged into /metrics as if their processes were alive.
    The directory is emptied in place rather than removed, so a mount point (tmpfs) works too.
    """
    directory = _metrics_dir()
    if directory is None:
        return
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    server.log.info("Prometheus multiprocess directory reset: %s", directory)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges so /metrics stops reporting them."""
    if _metrics_dir() is None:
        return
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Worker) -> None:
    """Leave the loaded application out of the garbage collector's full collections.

    Its modules, classes and caches are some 200,000 objects that live as long as the process;
    a full collection walked them all, about 100 ms in the middle of a request (BENCHMARKS.md,
    "Issue 16").

    The first worker also says in the log what a Redis restart would lose of the accepted
    readings, if anything (segs.services.durability).
    """
    gc.freeze()
    if worker.age == 1:
        from segs.config import get_settings
        from segs.services.durability import redis_broker_risk

        settings = get_settings()
        risk = redis_broker_risk(settings.broker_url, settings.redis_url)
        if risk:
            worker.log.warning("%s", risk)
