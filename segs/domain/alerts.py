"""Alert rules, free of any framework: per-reading anomalies, silent meters, regional overload.

Powers are integer micro-kW (as readings travel, see segs.domain.readings), so every comparison
below is exact and a test can state the baseline a sequence of readings leaves behind.

The anomaly numbers are the earlier system's (inventory §4.3): judge only after 5 samples; the
baseline is an EMA weighted 0.8 (old) / 0.2 (new) that an anomalous reading does not move; a
spike is above +100% (high above +200%), a drop below -50% (medium below -80%). The outage rule
(power < 0.1 kW while the baseline is > 1 kW) is checked first, so that it can fire at all.

Unlike the earlier system, a lasting change of level is learned: after ``relearn_after`` spikes
(or drops) in a row, the reading becomes the new baseline and the alert resolves, so a meter
with a new appliance is not flagged for ever. An outage is never learned: it stays an alert
until the power comes back.

The worker runs this rule inside a Redis script (segs.services.spine.detection); the functions here
are its specification, and a test holds the two to the same states and findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from segs.domain.readings import MICRO

# Alert types
POWER_SPIKE = "POWER_SPIKE"
POWER_DROP = "POWER_DROP"
POWER_OUTAGE = "POWER_OUTAGE"
METER_OUTAGE = "METER_OUTAGE"
REGIONAL_OVERLOAD = "REGIONAL_OVERLOAD"
# Regional incidents: many meters of one region in one condition at once (segs.domain.incidents)
REGIONAL_OUTAGE = "REGIONAL_OUTAGE"
REGIONAL_DROP = "REGIONAL_DROP"
ALERT_TYPES = (
    POWER_SPIKE,
    POWER_DROP,
    POWER_OUTAGE,
    METER_OUTAGE,
    REGIONAL_OVERLOAD,
    REGIONAL_OUTAGE,
    REGIONAL_DROP,
)
# What a notification may be about: an alert type, or a tariff change (issue 5).
TARIFF_CHANGE = "TARIFF_CHANGE"
NOTIFICATION_KINDS = (*ALERT_TYPES, TARIFF_CHANGE)

SEVERITIES = ("low", "medium", "high", "critical")

# Lifecycle
ACTIVE = "active"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
STATUSES = (ACTIVE, ACKNOWLEDGED, RESOLVED)
OPEN_STATUSES = (ACTIVE, ACKNOWLEDGED)

# Transitions (each is a row of alert_transitions and a notification)
CREATED = "created"
ESCALATED = "escalated"
TRANSITIONS = (CREATED, ESCALATED, ACKNOWLEDGED, RESOLVED)

# Anomaly numbers (inventory §4.3)
MIN_SAMPLES = 5
FLOOR_BASELINE = MICRO // 10  # a zero baseline is judged as 0.1 kW
OUTAGE_POWER_BELOW = MICRO // 10  # 0.1 kW
OUTAGE_BASELINE_ABOVE = MICRO  # 1 kW
RELEARN_AFTER = 30  # anomalous readings in a row before their level becomes the baseline


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def kw(micro_kw: int) -> str:
    """Micro-kW as kW text with two decimals, for messages."""
    return f"{Decimal(micro_kw) / MICRO:.2f}"


@dataclass(frozen=True, slots=True)
class Raise:
    """A condition holds: open an alert, or count a repeat (and escalate if more severe)."""

    type: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class Clear:
    """A condition ended: resolve the open alert of this type, if any."""

    type: str


Finding = Raise | Clear


@dataclass(frozen=True, slots=True)
class MeterState:
    """What detection remembers about one meter between readings."""

    samples: int
    baseline: int  # micro-kW
    last_ts_us: int
    interval_us: int  # gap between its last two readings; 0 until it has two
    anomaly: str | None  # the anomaly type open for it, if any
    streak: int = 0  # readings in a row judged that anomaly


def ema(baseline: int, power: int) -> int:
    """0.8 x baseline + 0.2 x power, rounded half up to a whole micro-kW."""
    return (4 * baseline + power + 2) // 5


def judge(baseline: int, power: int) -> Raise | None:
    """The anomaly a reading of *power* is against *baseline*, if any (both micro-kW)."""
    if power < OUTAGE_POWER_BELOW and baseline > OUTAGE_BASELINE_ABOVE:
        return Raise(
            POWER_OUTAGE,
            "high",
            f"Possible outage: {kw(power)} kW against a baseline of {kw(baseline)} kW",
        )
    base = baseline or FLOOR_BASELINE
    if power > 2 * base:  # change > +100%
        severity = "high" if power > 3 * base else "medium"
        return Raise(
            POWER_SPIKE,
            severity,
            f"Sudden power consumption spike: {_percent(power - base, base)}% increase "
            f"(baseline: {kw(base)} kW, current: {kw(power)} kW)",
        )
    if 2 * power < base:  # change < -50%
        severity = "medium" if 5 * power < base else "low"
        return Raise(
            POWER_DROP,
            severity,
            f"Sudden power consumption drop: {_percent(base - power, base)}% decrease "
            f"(baseline: {kw(base)} kW, current: {kw(power)} kW)",
        )
    return None


def _percent(part: int, whole: int) -> str:
    return f"{Decimal(100 * part) / whole:.1f}"


def observe(
    state: MeterState | None, ts_us: int, power: int, relearn_after: int = RELEARN_AFTER
) -> tuple[MeterState, list[Finding]]:
    """Fold one reading into a meter's state; return the new state and what it found.

    A reading not newer than the last one seen (a redelivery, or out of order) changes nothing.
    *relearn_after* 0 never learns a new level.
    """
    if state is None:
        return MeterState(1, power, ts_us, 0, None), []
    last_ts_us = state.last_ts_us
    if ts_us <= last_ts_us:
        return state, []
    samples, baseline, anomaly = state.samples, state.baseline, state.anomaly
    interval_us = ts_us - last_ts_us
    if samples < MIN_SAMPLES:
        learning = MeterState(samples + 1, ema(baseline, power), ts_us, interval_us, anomaly)
        return learning, []
    finding = judge(baseline, power)
    if finding is None:
        moved = MeterState(samples + 1, ema(baseline, power), ts_us, interval_us, None)
        return moved, [Clear(anomaly)] if anomaly else []
    findings: list[Finding] = []
    if anomaly and anomaly != finding.type:
        findings.append(Clear(anomaly))
    streak = state.streak + 1 if anomaly == finding.type else 1
    if finding.type != POWER_OUTAGE and 0 < relearn_after <= streak:
        # A level held this long is the meter's new normal.
        if anomaly == finding.type:
            findings.append(Clear(anomaly))
        return MeterState(samples + 1, power, ts_us, interval_us, None), findings
    # Otherwise the baseline stays where it was, so a lasting change keeps being one (a repeat).
    findings.append(finding)
    return MeterState(samples + 1, baseline, ts_us, interval_us, finding.type, streak), findings


def silent_deadline_us(state: MeterState, missed_intervals: int, received_at_us: int) -> int | None:
    """When a meter that keeps its observed pace has missed *missed_intervals* readings.

    Counted from when the API accepted its last reading, not from the reading's own time, so
    that it compares with the ingestion watermark (see segs.services.spine.detection).
    """
    if state.interval_us <= 0:
        return None
    return received_at_us + missed_intervals * state.interval_us


def silent_message(silent_for_s: float) -> str:
    return f"Meter outage detected: no data received for {round(silent_for_s)} seconds"


@dataclass(frozen=True, slots=True)
class OverloadRule:
    """Raise above raise_above % for *windows* consecutive windows; clear below clear_below %."""

    raise_above: Decimal = Decimal(90)
    clear_below: Decimal = Decimal(85)
    critical_above: Decimal = Decimal(100)
    windows: int = 2


def judge_overload(loads: list[Decimal], is_open: bool, rule: OverloadRule) -> Finding | None:
    """Decide from a region's newest consecutive 1m loads (oldest first, percent)."""
    if len(loads) < rule.windows:
        return None
    recent = loads[-rule.windows :]
    if all(load > rule.raise_above for load in recent):
        newest = recent[-1]
        return Raise(
            REGIONAL_OVERLOAD,
            "critical" if newest > rule.critical_above else "high",
            f"Regional overload detected: {newest:.1f}% load for {rule.windows} "
            f"consecutive 1-minute windows",
        )
    if is_open and all(load < rule.clear_below for load in recent):
        return Clear(REGIONAL_OVERLOAD)
    return None


@dataclass(frozen=True, slots=True)
class Preferences:
    """Which notifications an account wants: by channel, by kind, and from which severity."""

    channels: frozenset[str] = frozenset({"email", "webhook"})
    kinds: frozenset[str] = frozenset(NOTIFICATION_KINDS)
    min_severity: str = "low"

    def wants(self, channel: str, kind: str, severity: str | None) -> bool:
        """Tariff changes carry no severity: they pass any threshold."""
        if channel not in self.channels or kind not in self.kinds:
            return False
        return severity is None or severity_rank(severity) >= severity_rank(self.min_severity)


CHANNELS = ("email", "webhook")


def backoff_s(attempt: int, base_s: float) -> float:
    """Delay before retry number *attempt* (1-based): base, 2 x base, 4 x base..."""
    return base_s * 2 ** (attempt - 1)
