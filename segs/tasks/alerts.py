"""Alert detection outside the HTTP path: per reading batch, per flush, and the silent sweep."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from functools import lru_cache

from segs import metrics
from segs.celery_app import app
from segs.db import session_scope
from segs.redis_client import get_redis
from segs.services.alerts import rules as alerting
from segs.services.spine.detection import DetectionStore
from segs.services.spine.detection import MeterFinding
from segs.tasks.notifications import enqueue_transitions
from segs.tasks.retries import RETRY_SHORT_OUTAGES


@lru_cache(maxsize=1)
def get_detection_store() -> DetectionStore:
    settings = app.segs_settings
    # Sweeps further apart than this mean beat or the workers were down (see DetectionStore).
    return DetectionStore(
        get_redis(), settings.shards, sweep_gap_s=max(30.0, 3 * settings.silent_sweep_interval_s)
    )


def store_findings(shard: int, batch_id: str, findings: list[MeterFinding]) -> None:
    """Store and announce what detection found in a batch, then let Redis forget it.

    A crash between the commit and the announcement delays the notifications of these
    transitions until beat's outbox sweep dispatches them; one between the announcement and
    forgetting counts the batch's repeats twice.
    """
    with session_scope() as session:
        transitions = alerting.record_findings(
            session, findings, datetime.now(UTC), app.segs_settings.incident_rule
        )
    enqueue_transitions(transitions)
    get_detection_store().forget_findings(shard, batch_id)


@app.task(
    name="segs.tasks.alerts.evaluate_overloads",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def evaluate_overloads(windows: dict[str, int]) -> int:
    """Judge regional overload on the 1m windows a flush just stored ({region: start µs}).

    Twice for the same windows opens no second alert (a condition has one open alert at a
    time): the open one counts one more occurrence, and a cleared one stays resolved.
    """
    started = time.perf_counter()
    with session_scope() as session:
        transitions = alerting.evaluate_overloads(
            session, app.segs_settings, windows, datetime.now(UTC)
        )
    enqueue_transitions(transitions)
    metrics.TASK_DURATION.labels("evaluate_overloads").observe(time.perf_counter() - started)
    return len(transitions)


@app.task(
    name="segs.tasks.alerts.sweep_silent_meters",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def sweep_silent_meters() -> int:
    """Raise METER_OUTAGE for meters that missed SEGS_SILENT_AFTER_INTERVALS readings; then
    settle regional incidents: tell the alerts held past SEGS_INCIDENT_WINDOW_S one by one, and
    resolve the incidents that cleared. Each in its own transaction.

    Safe twice: a silent meter's deadline is popped from Redis as it is reported (and put back
    if the transaction fails), and a second settling finds the alerts released and the
    incidents resolved under the same group locks."""
    rule = app.segs_settings.incident_rule
    store = get_detection_store()
    with session_scope() as session:
        transitions = alerting.sweep_silent_meters(session, store, datetime.now(UTC), rule)
    enqueue_transitions(transitions)
    with session_scope() as session:
        settled = alerting.settle_incidents(session, store, rule, datetime.now(UTC))
    enqueue_transitions(settled)
    return len(transitions) + len(settled)


@app.task(
    name="segs.tasks.alerts.expire_detection_states",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def expire_detection_states() -> int:
    """Forget the detection state of meters silent for SEGS_DETECTION_STATE_TTL_DAYS.

    Safe twice: a second run finds those states forgotten already.
    """
    with session_scope() as session:
        return alerting.expire_detection_states(
            session,
            get_detection_store(),
            datetime.now(UTC),
            app.segs_settings.detection_state_ttl_days,
        )
