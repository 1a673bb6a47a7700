"""Prometheus metrics shared by the API and the workers.

gunicorn and Celery prefork run several processes, so prometheus-client runs in multiprocess mode:
every process writes its samples into PROMETHEUS_MULTIPROC_DIR and one collector reads them all.
The directory must be set before prometheus_client is imported; when nobody set it we create a
fresh one here, forked children inherit it through the environment, and it is removed when the
process that made it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator


def _remove_own_directory(directory: str, owner_pid: int) -> None:
    # Forked children run the exit handlers they inherit too; only the maker removes it.
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="segs-metrics-")
    # Ours, so it goes when this process exits (a directory given in the environment stays).
    atexit.register(_remove_own_directory, os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid())
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client import Counter  # noqa: E402
from prometheus_client import Gauge  # noqa: E402
from prometheus_client import Histogram  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client import multiprocess  # noqa: E402
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.core import Metric  # noqa: E402
from psycopg import Error as DatabaseError  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from segs.db import raw_connection  # noqa: E402

logger = logging.getLogger(__name__)

READINGS_ACCEPTED = Counter(
    "segs_readings_accepted", "Readings accepted and durably queued by the API."
)
READINGS_DUPLICATE = Counter(
    "segs_readings_duplicate",
    "Readings dropped as duplicates of an accepted (meterId, timestamp).",
    ["stage"],  # api: recent-duplicate mark; archive: raw_readings key on the worker
)
READINGS_REJECTED = Counter("segs_readings_rejected", "Readings rejected at ingestion.", ["reason"])
INGEST_BATCH_SIZE = Histogram(
    "segs_ingest_batch_size",
    "Readings per ingestion request.",
    buckets=(1, 10, 50, 100, 250, 500, 750, 1000),
)
INGEST_LATENCY = Histogram(
    "segs_ingest_latency_seconds",
    "Time to validate, deduplicate and durably enqueue one ingestion request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TASK_DURATION = Histogram(
    "segs_task_duration_seconds",
    "Task run time.",
    ["task"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

NOTIFICATIONS_QUEUED = Counter(
    "segs_notifications_queued",
    "Notification deliveries put on the notifications queue (a dispatch run again queues its "
    "copies again; the delivery then counts them as duplicate).",
    ["channel"],
)
NOTIFICATIONS = Counter(
    "segs_notifications_total",
    "Notification delivery runs, by channel and outcome: sent, failed, dead (given up), "
    "duplicate (delivered before) and busy (another copy was sending it).",
    ["channel", "status"],
)
READINGS_ARCHIVED = Counter(
    "segs_readings_archived", "Readings written to raw_readings and folded into windows."
)
READINGS_EXPIRED = Counter(
    "segs_readings_expired",
    "Accepted readings that waited in a queue past raw_readings retention and were not stored.",
)
READING_BATCHES_SETTLED = Counter(
    "segs_reading_batches_settled",
    "Reading batch messages a worker settled (folded, folded before, retrying or set aside).",
)
FOLD_GROUP_BATCHES = Histogram(
    "segs_fold_group_batches",
    "Reading batch messages folded together in one go (one COPY, transaction and fold).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCHES_REQUEUED = Counter(
    "segs_batches_requeued",
    "Reading batches re-published from the pending ledger (Redis broker safety net).",
)
DEAD_LETTERS = Counter(
    "segs_dead_letters",
    "Reading batches set aside as dead letters after failing for a reason other than an outage.",
)
WINDOWS_QUARANTINED = Counter(
    "segs_windows_quarantined",
    "Region windows the flush could not write, set aside for an operator.",
    ["size"],
)
PENDING_BATCHES = Gauge(
    "segs_pending_batches",
    "Published reading batches not yet folded (Redis broker only).",
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "segs_queue_depth", "Messages waiting in a queue.", ["queue"], multiprocess_mode="mostrecent"
)
OPEN_WINDOWS = Gauge(
    "segs_open_windows",
    "Windows held in Redis, waiting to close.",
    ["size"],
    multiprocess_mode="mostrecent",
)
FLUSH_LAG = Histogram(
    "segs_flush_lag_seconds",
    "Time from a window's end to its rows being committed in PostgreSQL.",
    ["size", "kind"],  # kind: on_time, or late (a re-opened window merged into stored rows)
    buckets=(1, 5, 10, 15, 20, 30, 45, 60, 120, 300, 900),
)
WINDOWS_FLUSHED = Counter("segs_windows_flushed", "Region windows flushed.", ["size"])
LATE_READINGS_MERGED = Counter(
    "segs_late_readings_merged",
    "Readings merged into an aggregate row that an earlier flush had already written.",
    ["size"],
)
REGIONAL_LOAD = Gauge(
    "segs_regional_load_percent",
    "Load of a region in its latest flushed 1-minute window.",
    ["region"],
    multiprocess_mode="mostrecent",
)
BILLING_RUNS = Counter(
    "segs_billing_runs", "Billing runs finished (beat's monthly runs and POST /billing/runs)."
)
INVOICES_CREATED = Counter("segs_invoices_created", "Invoices created by billing runs.")

# Gauges of what PostgreSQL holds now: name -> (help, labels, query). A query's last column is
# the value and the others are the label values, in order.
DATABASE_GAUGES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "segs_open_alerts": (
        "Open (active or acknowledged) alerts.",
        ("type", "severity", "region"),
        # Through the partial index of open alerts: as cheap as there are open alerts.
        "SELECT type, severity, region, count(*) FROM alerts"
        " WHERE status IN ('active', 'acknowledged') GROUP BY type, severity, region",
    ),
    "segs_region_capacity_kw": (
        "Capacity of a region, the 100 % of its load.",
        ("region",),
        "SELECT name, capacity_kw FROM regions",
    ),
    "segs_tariff_price_per_kwh": (
        "Current price per kWh of a region (its open tariff interval).",
        ("region",),
        "SELECT region, price_per_kwh FROM tariffs WHERE effective_to IS NULL",
    ),
    "segs_dead_letter_batches_waiting": (
        "Reading batches set aside as dead letters, waiting for an operator to replay or discard.",
        (),
        "SELECT count(*) FROM dead_letter_batches WHERE status = 'dead'",
    ),
    "segs_quarantined_windows_waiting": (
        "Quarantined region windows waiting for an operator to flush them again.",
        (),
        "SELECT count(*) FROM quarantined_windows WHERE status = 'quarantined'",
    ),
}


class DatabaseState:
    """DATABASE_GAUGES, read from PostgreSQL when the API's /metrics is scraped.

    Read there rather than kept in a process: they are true whichever process changed the data
    (an admin's price override in the API, an alert resolved by a worker) and after any
    restart, and counters that reset cannot say how many alerts are open now.
    """

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(name, help_text, labels=labels)
            for name, (help_text, labels, _) in DATABASE_GAUGES.items()
        ]

    def collect(self) -> Iterator[Metric]:
        try:
            with raw_connection() as conn:
                # Within Prometheus' scrape timeout however busy the database is.
                conn.execute("SET LOCAL statement_timeout = 500")
                rows = {
                    name: conn.execute(query).fetchall()
                    for name, (_, _, query) in DATABASE_GAUGES.items()
                }
                conn.rollback()
        except (DatabaseError, SQLAlchemyError) as exc:
            # The process metrics are still served; these are missing until it answers again.
            logger.warning("database gauges not read: %s", exc)
            return
        for family in self.describe():
            for *label_values, value in rows[family.name]:
                family.add_metric([str(label) for label in label_values], float(value))
            yield family


DATABASE_STATE = DatabaseState()


def render_latest() -> bytes:
    """Every process's samples and the database gauges, in Prometheus text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DATABASE_STATE)
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Forget a dead process's live gauges."""
    multiprocess.mark_process_dead(pid)
