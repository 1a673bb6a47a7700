"""Regional incidents: when many meters of one region show the same condition at once, they are
one event, raised and told once, instead of one alert notification per meter.

An outage of a feeder or a substation takes thousands of meters down together. Told meter by
meter, it buried the notification queue (the seed's outage scenario left 39,968 notifications
undispatched); grouped, it is one ``REGIONAL_OUTAGE`` naming how many meters and which.

Which conditions group, and into what:

- ``POWER_OUTAGE`` (a meter reads no power) and ``METER_OUTAGE`` (a meter stopped reporting) are
  the same event seen two ways: a meter without power either reports 0 kW or nothing at all.
  Both group into ``REGIONAL_OUTAGE``.
- ``POWER_DROP`` groups into ``REGIONAL_DROP`` (a brownout, a region-wide demand cut).
- ``POWER_SPIKE`` does not group: a region-wide rise in load is what ``REGIONAL_OVERLOAD``
  judges, against the region's capacity.

When (:func:`decide`), for one incident type and one region, each time alerts of its conditions
are opened:

- an open incident takes every new alert (its meter joins; no notification of its own);
- otherwise, once the meters with an open alert of these conditions raised within the last
  ``window_s`` reach the threshold, an incident forms and takes every alert raised in that
  window (:meth:`IncidentRule.threshold`: at least ``min_meters``, and at least ``min_fraction``
  of the region's registered meters);
- otherwise an alert that has company (another meter raised within the window) is held, not
  told, for ``window_s`` from its creation: if the incident forms meanwhile it joins it, else it
  is told on its own then. An alert alone is told at once, so an isolated outage is not delayed;
  a burst that arrives meter by meter tells its first meter on its own, and then the incident.

An incident resolves itself once fewer of its meters than the threshold are still in the
condition (:meth:`IncidentRule.has_cleared`); it is no longer what would make one. Resolving
it, by hand or so, resolves the alerts still open under it.

A window of 0 turns grouping off: every alert is told on its own at once.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from segs.domain.alerts import METER_OUTAGE
from segs.domain.alerts import POWER_DROP
from segs.domain.alerts import POWER_OUTAGE
from segs.domain.alerts import REGIONAL_DROP
from segs.domain.alerts import REGIONAL_OUTAGE
from segs.domain.alerts import severity_rank

# The incident type each meter condition groups into.
GROUPED_INTO: dict[str, str] = {
    POWER_OUTAGE: REGIONAL_OUTAGE,
    METER_OUTAGE: REGIONAL_OUTAGE,
    POWER_DROP: REGIONAL_DROP,
}
INCIDENT_TYPES = (REGIONAL_OUTAGE, REGIONAL_DROP)
GROUPED_TYPES = tuple(GROUPED_INTO)

_MESSAGES = {
    REGIONAL_OUTAGE: "Regional outage in {region}: {meters} meters lost power or stopped reporting",
    REGIONAL_DROP: "Regional drop in {region}: {meters} meters draw under half their baseline",
}


def incident_type_of(condition_type: str) -> str | None:
    """The incident a meter condition groups into, or None if it never groups."""
    return GROUPED_INTO.get(condition_type)


def is_incident(alert_type: str) -> bool:
    return alert_type in INCIDENT_TYPES


def conditions_of(incident_type: str) -> tuple[str, ...]:
    """The meter conditions an incident type groups, in GROUPED_INTO's order."""
    return tuple(kind for kind, grouped in GROUPED_INTO.items() if grouped == incident_type)


def kinds_that_want(alert_type: str) -> tuple[str, ...]:
    """The notification kinds whose subscribers hear of *alert_type*: an incident stands for
    its conditions, so who asked for power outages hears of a regional outage."""
    if is_incident(alert_type):
        return (alert_type, *conditions_of(alert_type))
    return (alert_type,)


@dataclass(frozen=True)
class IncidentRule:
    """How many meters at once make an incident, and how long an alert waits for company."""

    min_meters: int = 10
    min_fraction: Decimal = Decimal("0.01")
    window_s: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.window_s > 0

    def threshold(self, region_meters: int) -> int:
        """Meters in one condition at once that make an incident in a region of
        *region_meters* registered meters: min_meters, or min_fraction of them rounded up."""
        return max(self.min_meters, math.ceil(self.min_fraction * region_meters))

    def has_cleared(self, meters_in_condition: int, region_meters: int) -> bool:
        return meters_in_condition < self.threshold(region_meters)


class Grouping(enum.Enum):
    """What becomes of the alerts a transaction just opened for one incident type and region."""

    JOIN = "join"  # an incident is open: they join it
    FORM = "form"  # enough meters at once: an incident forms and takes the window's alerts
    HOLD = "hold"  # company but not enough yet: wait for the window
    NOTIFY = "notify"  # alone: told at once


def decide(
    rule: IncidentRule,
    *,
    incident_open: bool,
    recent_meters: int,
    recent_open_meters: int,
    region_meters: int,
) -> Grouping:
    """Decide for alerts just opened. *recent_meters* counts the meters with an alert of these
    conditions raised within the window and in no incident (the new ones included), open or
    resolved since; *recent_open_meters* those of them still open."""
    if incident_open:
        return Grouping.JOIN
    if recent_open_meters >= rule.threshold(region_meters):
        return Grouping.FORM
    if recent_meters > 1:
        return Grouping.HOLD
    return Grouping.NOTIFY


def incident_severity(severities: Iterable[str]) -> str:
    """An incident is as severe as the most severe alert it groups."""
    return max(severities, key=severity_rank)


def incident_message(incident_type: str, region: str, meters: int) -> str:
    return _MESSAGES[incident_type].format(region=region, meters=meters)
