"""The regional incident rule (segs.domain.incidents): which conditions group, when an incident
forms, when an alert waits for one, when it clears, and what it says."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from segs.config import SettingsError
from segs.config import load_settings
from segs.domain import alerts
from segs.domain.alerts import Preferences
from segs.domain.incidents import Grouping
from segs.domain.incidents import IncidentRule
from segs.domain.incidents import conditions_of
from segs.domain.incidents import decide
from segs.domain.incidents import incident_message
from segs.domain.incidents import incident_severity
from segs.domain.incidents import incident_type_of
from segs.domain.incidents import is_incident
from segs.domain.incidents import kinds_that_want

RULE = IncidentRule(min_meters=10, min_fraction=Decimal("0.01"), window_s=30)


def test_outages_of_both_kinds_group_into_one_incident_and_drops_into_another():
    assert incident_type_of(alerts.POWER_OUTAGE) == alerts.REGIONAL_OUTAGE
    assert incident_type_of(alerts.METER_OUTAGE) == alerts.REGIONAL_OUTAGE
    assert incident_type_of(alerts.POWER_DROP) == alerts.REGIONAL_DROP
    assert conditions_of(alerts.REGIONAL_OUTAGE) == (alerts.POWER_OUTAGE, alerts.METER_OUTAGE)
    assert conditions_of(alerts.REGIONAL_DROP) == (alerts.POWER_DROP,)


@pytest.mark.parametrize(
    "kind", [alerts.POWER_SPIKE, alerts.REGIONAL_OVERLOAD, alerts.REGIONAL_OUTAGE]
)
def test_spikes_overloads_and_incidents_never_group(kind):
    assert incident_type_of(kind) is None


def test_incidents_are_alert_types_and_notification_kinds():
    assert is_incident(alerts.REGIONAL_OUTAGE) and is_incident(alerts.REGIONAL_DROP)
    assert not is_incident(alerts.REGIONAL_OVERLOAD)
    assert {alerts.REGIONAL_OUTAGE, alerts.REGIONAL_DROP} <= set(alerts.ALERT_TYPES)
    assert {alerts.REGIONAL_OUTAGE, alerts.REGIONAL_DROP} <= set(alerts.NOTIFICATION_KINDS)


@pytest.mark.parametrize(
    ("region_meters", "threshold"),
    [(0, 10), (999, 10), (1000, 10), (1001, 11), (10_000, 100), (10_050, 101)],
)
def test_the_threshold_is_min_meters_or_the_fraction_of_the_region_rounded_up(
    region_meters, threshold
):
    assert RULE.threshold(region_meters) == threshold


def test_a_fraction_of_zero_leaves_the_count_alone():
    assert IncidentRule(min_meters=3, min_fraction=Decimal(0)).threshold(1_000_000) == 3


def decision(**counts: int) -> Grouping:
    return decide(RULE, **{"incident_open": False, "region_meters": 500, **counts})


def test_an_open_incident_takes_every_new_alert():
    assert decision(incident_open=True, recent_meters=1, recent_open_meters=1) is Grouping.JOIN


def test_an_incident_forms_at_the_threshold_of_open_meters_and_not_one_below():
    assert decision(recent_meters=10, recent_open_meters=10) is Grouping.FORM
    assert decision(recent_meters=9, recent_open_meters=9) is Grouping.HOLD
    # Meters that recovered within the window do not make the count.
    assert decision(recent_meters=14, recent_open_meters=9) is Grouping.HOLD
    # The fraction raises the bar in a large region.
    assert decision(recent_meters=99, recent_open_meters=99, region_meters=10_000) is (
        Grouping.HOLD
    )
    assert decision(recent_meters=100, recent_open_meters=100, region_meters=10_000) is (
        Grouping.FORM
    )


def test_an_alert_alone_is_told_at_once_and_one_with_company_waits():
    assert decision(recent_meters=1, recent_open_meters=1) is Grouping.NOTIFY
    assert decision(recent_meters=1, recent_open_meters=0) is Grouping.NOTIFY
    assert decision(recent_meters=2, recent_open_meters=1) is Grouping.HOLD


def test_grouping_is_off_with_a_window_of_zero():
    assert not IncidentRule(window_s=0).enabled
    assert RULE.enabled


def test_an_incident_clears_below_its_threshold():
    assert not RULE.has_cleared(10, 500)
    assert RULE.has_cleared(9, 500)
    assert not RULE.has_cleared(100, 10_000)
    assert RULE.has_cleared(99, 10_000)


def test_an_incident_is_as_severe_as_its_most_severe_alert():
    assert incident_severity(["medium", "high", "medium"]) == "high"
    assert incident_severity(["low"]) == "low"


def test_messages_name_the_region_and_the_count():
    assert incident_message(alerts.REGIONAL_OUTAGE, "Pune-West", 12) == (
        "Regional outage in Pune-West: 12 meters lost power or stopped reporting"
    )
    assert incident_message(alerts.REGIONAL_DROP, "Pune-West", 30) == (
        "Regional drop in Pune-West: 30 meters draw under half their baseline"
    )


def test_who_asked_for_an_outage_hears_of_a_regional_outage():
    assert kinds_that_want(alerts.REGIONAL_OUTAGE) == (
        alerts.REGIONAL_OUTAGE,
        alerts.POWER_OUTAGE,
        alerts.METER_OUTAGE,
    )
    assert kinds_that_want(alerts.POWER_SPIKE) == (alerts.POWER_SPIKE,)
    outages_only = Preferences(kinds=frozenset({alerts.METER_OUTAGE}))
    assert any(
        outages_only.wants("email", kind, "high")
        for kind in kinds_that_want(alerts.REGIONAL_OUTAGE)
    )
    assert not any(
        outages_only.wants("email", kind, "high") for kind in kinds_that_want(alerts.REGIONAL_DROP)
    )


# --------------------------------------------------------------------------- settings


@pytest.fixture
def bare_env(monkeypatch):
    for name in [n for n in os.environ if n.startswith("SEGS_")]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_settings_default_to_the_documented_rule(bare_env):
    assert load_settings().incident_rule == IncidentRule(
        min_meters=10, min_fraction=Decimal("0.01"), window_s=30.0
    )


def test_the_settings_make_the_rule(bare_env):
    bare_env.setenv("SEGS_INCIDENT_MIN_METERS", "25")
    bare_env.setenv("SEGS_INCIDENT_MIN_FRACTION", "0.005")
    bare_env.setenv("SEGS_INCIDENT_WINDOW_S", "0")
    rule = load_settings().incident_rule
    assert rule == IncidentRule(min_meters=25, min_fraction=Decimal("0.005"), window_s=0.0)
    assert not rule.enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEGS_INCIDENT_MIN_METERS", "1"),
        ("SEGS_INCIDENT_MIN_METERS", "ten"),
        ("SEGS_INCIDENT_MIN_FRACTION", "1.5"),
        ("SEGS_INCIDENT_MIN_FRACTION", "NaN"),
        ("SEGS_INCIDENT_WINDOW_S", "-1"),
    ],
)
def test_bad_settings_name_the_variable(bare_env, name, value):
    bare_env.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
