"""Worker process hooks: fresh DB pools after fork, and a /metrics endpoint for the workers."""

from __future__ import annotations

import gc
import logging
import os
import shutil
from typing import Any

from celery.signals import after_setup_logger
from celery.signals import worker_init
from celery.signals import worker_process_init
from celery.signals import worker_process_shutdown
from celery.signals import worker_ready
from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from segs import metrics
from segs.celery_app import app
from segs.db import configure_database
from segs.db import reset_engine
from segs.redis_client import configure_redis
from segs.services.spine.durability import redis_broker_risk
from segs.tasks.windows import heal_after_redis_loss

logger = logging.getLogger(__name__)


@worker_init.connect
def connect_to_stores(**_: Any) -> None:
    """Build the worker's engine and Redis client from the settings its Celery app has; its
    pool processes inherit them."""
    configure_database(app.segs_settings)
    configure_redis(app.segs_settings)


@worker_init.connect
def expose_metrics(**_: Any) -> None:
    """Serve every worker process's samples from the main process."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # Samples of a previous run would otherwise be added to this one's.
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    settings = app.segs_settings
    first = settings.worker_metrics_port
    if not first:
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for port in range(first, first + settings.worker_metrics_ports):
        try:
            start_http_server(port, registry=registry)
        except OSError:
            continue  # another worker on this host holds it
        _metrics_port.append(port)
        return
    # Every port is taken; this worker still works, unscraped.
    last = first + settings.worker_metrics_ports - 1
    logger.warning("worker metrics not served: ports %d-%d are all taken", first, last)


# The port expose_metrics took, said once logging is set up (it is not yet at worker_init).
_metrics_port: list[int] = []


@worker_ready.connect
def say_metrics_port(**_: Any) -> None:
    if _metrics_port:
        logger.info("worker metrics on port %d", _metrics_port[0])


@worker_ready.connect
def warn_about_durability(**_: Any) -> None:
    settings = app.segs_settings
    risk = redis_broker_risk(settings.broker_url, settings.redis_url)
    if risk:
        logger.warning("%s", risk)


@worker_ready.connect
def look_for_redis_loss(**_: Any) -> None:
    """Check Redis for a loss as the worker starts, not at beat's first tick 15 s later.

    A new or emptied Redis found before any batch is folded has nothing to rebuild. Found after
    the first readings are archived, it counts as a loss: their deadlines are put back and
    their quarter-hour is rebuilt from raw_readings, work a fresh start does not need.
    """
    heal_after_redis_loss.apply_async()


@after_setup_logger.connect
def quiet_task_success_lines(**_: Any) -> None:
    """Hide Celery's line per successful task: hundreds a minute would bury everything else."""
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


@worker_process_init.connect
def fresh_pools(**_: Any) -> None:
    reset_engine()
    # The loaded modules live as long as the process: keep them out of full collections, which
    # walked them all (about 100 ms each, BENCHMARKS.md "Issue 16").
    gc.freeze()


@worker_process_shutdown.connect
def forget_process(pid: int | None = None, **_: Any) -> None:
    metrics.mark_process_dead(pid or os.getpid())
