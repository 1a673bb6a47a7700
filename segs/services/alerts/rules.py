"""Where conditions are found and turned into alerts: the reading path, the flush, the sweep.

Each function stores what it finds in one transaction and returns the transition ids, for the
caller to hand to the notification queue once committed. The meter alerts they open are grouped
into regional incidents as they are stored (segs.services.alerts.incidents), so the ids returned are
only those to tell now: not those grouped under an incident, nor those held for one to form.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain import alerts as rules
from segs.domain.incidents import IncidentRule
from segs.domain.readings import MICRO
from segs.domain.readings import from_epoch_us
from segs.domain.readings import to_epoch_us
from segs.domain.windows import WindowKey
from segs.models import Alert
from segs.services.alerts.incidents import group_opened
from segs.services.alerts.incidents import lock_groups
from segs.services.alerts.incidents import release_held
from segs.services.alerts.incidents import resolve_cleared
from segs.services.alerts.lifecycle import Condition
from segs.services.alerts.lifecycle import apply_finding
from segs.services.alerts.lifecycle import raise_alert
from segs.services.alerts.queries import has_open
from segs.services.spine import DetectionStore
from segs.services.spine import MeterFinding

# The documented defaults; the tasks pass the settings' rule.
DEFAULT_INCIDENTS = IncidentRule()


def record_findings(
    session: Session,
    findings: list[MeterFinding],
    now: datetime,
    incident_rule: IncidentRule = DEFAULT_INCIDENTS,
) -> list[int]:
    """Store what per-reading detection found: the grouping locks of their incidents first,
    then each meter's findings in reading order, meters in one global order, so two batches
    touching the same alerts cannot deadlock."""
    lock_groups(session, incident_rule, [(found.finding.type, found.region) for found in findings])
    transitions: list[int] = []
    for found in sorted(findings, key=lambda item: (item.meter_id, item.ts_us)):
        condition = Condition(found.finding.type, found.region, found.meter_id)
        transitions.extend(apply_finding(session, condition, found.finding, now))
    return group_opened(session, incident_rule, transitions, now)


def overload_rule(settings: Settings) -> rules.OverloadRule:
    return rules.OverloadRule(
        raise_above=Decimal(str(settings.overload_raise_percent)),
        clear_below=Decimal(str(settings.overload_clear_percent)),
        critical_above=Decimal(str(settings.overload_critical_percent)),
        windows=settings.overload_windows,
    )


def newest_regional_windows(flushed: Iterable[WindowKey]) -> dict[str, int]:
    """Each region's newest 1-minute window among those just flushed (start, epoch µs)."""
    newest: dict[str, int] = {}
    for window in flushed:
        if window.size == "1m" and window.start_us > newest.get(window.region, -1):
            newest[window.region] = window.start_us
    return newest


def evaluate_overloads(
    session: Session, settings: Settings, windows: dict[str, int], now: datetime
) -> list[int]:
    """Judge each region's load over the consecutive 1m windows ending with the given one."""
    rule = overload_rule(settings)
    transitions: list[int] = []
    for region, start_us in sorted(windows.items()):
        condition = Condition(rules.REGIONAL_OVERLOAD, region, None)
        loads = recent_loads(session, region, from_epoch_us(start_us), rule.windows)
        finding = rules.judge_overload(loads, has_open(session, condition), rule)
        if finding is not None:
            transitions.extend(apply_finding(session, condition, finding, now))
    return transitions


def recent_loads(session: Session, region: str, window_start: datetime, windows: int) -> list[Any]:
    """The region's 1m loads of the *windows* windows ending with *window_start*, oldest first;
    shorter when a window in between has no row (the streak is broken)."""
    starts = [window_start - timedelta(minutes=back) for back in range(windows - 1, -1, -1)]
    rows: dict[datetime, Any] = dict(
        session.execute(
            text(
                "SELECT window_start, load_percentage FROM regional_aggregates_1m "
                "WHERE region = :region AND window_start = ANY(:starts)"
            ),
            {"region": region, "starts": starts},
        ).all()
    )
    loads: list[Any] = []
    for start in starts:
        if start not in rows:
            loads = []  # a gap: only windows after it are consecutive
            continue
        loads.append(rows[start])
    return loads


def sweep_silent_meters(
    session: Session,
    store: DetectionStore,
    now: datetime,
    incident_rule: IncidentRule = DEFAULT_INCIDENTS,
) -> list[int]:
    """Raise METER_OUTAGE for every meter past its deadline by the ingestion watermark; each is
    reported once per silence."""
    now_s = now.timestamp()
    threshold = store.sweep_threshold(now_s)
    silent = store.pop_silent(threshold)
    transitions: list[int] = []
    try:
        groups = [(rules.METER_OUTAGE, meter.region) for meter in silent]
        lock_groups(session, incident_rule, groups)
        for meter in silent:
            quiet_s = now_s - meter.last_ts_us / MICRO if meter.last_ts_us else 0.0
            transitions.extend(
                raise_alert(
                    session,
                    Condition(rules.METER_OUTAGE, meter.region, meter.meter_id),
                    "medium",
                    rules.silent_message(quiet_s),
                    now,
                )
            )
            session.flush()
        return group_opened(session, incident_rule, transitions, now)
    except BaseException:
        store.unpop(silent, threshold)
        raise


def settle_incidents(
    session: Session, store: DetectionStore, incident_rule: IncidentRule, now: datetime
) -> list[int]:
    """Tell one by one the alerts whose window passed without an incident forming, and resolve
    the incidents whose condition cleared."""
    return [
        *release_held(session, now),
        *resolve_cleared(session, store, incident_rule, now),
    ]


def expire_detection_states(
    session: Session, store: DetectionStore, now: datetime, ttl_days: int
) -> int:
    """Forget the detection state of meters silent for *ttl_days* (retired or removed meters),
    so the states hash does not keep every meter ever seen. A meter with an open alert keeps
    its state: its next reading must still resolve that alert. A meter that reports again later
    starts afresh (it learns its baseline from 5 readings). Returns how many were forgotten."""
    last_before_us = to_epoch_us(now) - ttl_days * 86_400 * MICRO
    forgotten = 0
    for shard in range(store.shards):
        cursor = 0
        while True:
            cursor, stale = store.stale_states(shard, last_before_us, cursor)
            if stale:
                alerted = set(
                    session.scalars(
                        select(Alert.meter_id).where(
                            Alert.meter_id.in_(list(stale)), Alert.status.in_(rules.OPEN_STATUSES)
                        )
                    )
                )
                forgotten += store.forget_states(
                    shard,
                    {meter: packed for meter, packed in stale.items() if meter not in alerted},
                )
            if cursor == 0:
                break
    return forgotten
