"""The alert rules with the earlier system's exact numbers (inventory §4.3-4.4)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from segs.domain import alerts
from segs.domain.alerts import Clear
from segs.domain.alerts import MeterState
from segs.domain.alerts import OverloadRule
from segs.domain.alerts import Preferences
from segs.domain.alerts import Raise

KW = 1_000_000


def settled(baseline_kw: float = 4.0, samples: int = 5, anomaly: str | None = None) -> MeterState:
    return MeterState(samples, int(baseline_kw * KW), 100, 10, anomaly)


def test_the_ema_weighs_the_old_baseline_four_times_the_new_reading():
    assert alerts.ema(4 * KW, 9 * KW) == 5 * KW
    # half a micro-kW rounds up
    assert alerts.ema(0, 3) == 1


def test_five_samples_before_judging():
    state = None
    powers = [4 * KW, 4 * KW, 4 * KW, 4 * KW, 4 * KW, 40 * KW]
    found = []
    for index, power in enumerate(powers):
        state, findings = alerts.observe(state, 1000 + index, power)
        found.append(findings)
    assert found[:5] == [[]] * 5
    assert [finding.type for finding in found[5]] == [alerts.POWER_SPIKE]


def test_the_baseline_follows_the_ema_until_judging():
    state, _ = alerts.observe(None, 1, 10 * KW)
    state, _ = alerts.observe(state, 2, 5 * KW)
    assert state.baseline == 9 * KW and state.samples == 2 and state.interval_us == 1


@pytest.mark.parametrize(
    ("power_kw", "expected"),
    [
        (8.0, None),  # +100% exactly is not a spike
        (8.000001, (alerts.POWER_SPIKE, "medium")),
        (12.0, (alerts.POWER_SPIKE, "medium")),  # +200% exactly is still medium
        (12.000001, (alerts.POWER_SPIKE, "high")),
        (2.0, None),  # -50% exactly is not a drop
        (1.999999, (alerts.POWER_DROP, "low")),
        (0.8, (alerts.POWER_DROP, "low")),  # -80% exactly is still low
        (0.799999, (alerts.POWER_DROP, "medium")),
        (0.1, (alerts.POWER_DROP, "medium")),
        (0.099999, (alerts.POWER_OUTAGE, "high")),  # outage is checked before the drop
        (0.0, (alerts.POWER_OUTAGE, "high")),
    ],
)
def test_thresholds_against_a_4_kw_baseline(power_kw, expected):
    finding = alerts.judge(4 * KW, round(power_kw * KW))
    assert (None if finding is None else (finding.type, finding.severity)) == expected


def test_no_outage_when_the_baseline_is_not_above_1_kw():
    finding = alerts.judge(1 * KW, 0)
    assert finding is not None and (finding.type, finding.severity) == (alerts.POWER_DROP, "medium")


def test_a_zero_baseline_is_judged_as_a_tenth_of_a_kw():
    assert alerts.judge(0, 200_000) is None
    finding = alerts.judge(0, 200_001)
    assert finding is not None and finding.type == alerts.POWER_SPIKE


def test_the_spike_message_keeps_the_earlier_wording():
    finding = alerts.judge(4 * KW, 13 * KW)
    assert finding == Raise(
        alerts.POWER_SPIKE,
        "high",
        "Sudden power consumption spike: 225.0% increase (baseline: 4.00 kW, current: 13.00 kW)",
    )


def test_an_anomaly_does_not_move_the_baseline_and_a_normal_reading_clears_it():
    state, findings = alerts.observe(settled(), 200, 20 * KW)
    assert state.baseline == 4 * KW and state.anomaly == alerts.POWER_SPIKE
    assert [type(finding) for finding in findings] == [Raise]
    state, findings = alerts.observe(state, 300, 20 * KW)
    assert state.baseline == 4 * KW and [type(f) for f in findings] == [Raise]
    state, findings = alerts.observe(state, 400, 5 * KW)
    assert findings == [Clear(alerts.POWER_SPIKE)]
    assert state.anomaly is None and state.baseline == alerts.ema(4 * KW, 5 * KW)


def test_a_spike_turning_into_a_drop_clears_the_spike_first():
    state, _ = alerts.observe(settled(), 200, 20 * KW)
    state, findings = alerts.observe(state, 300, 1 * KW)
    assert findings[0] == Clear(alerts.POWER_SPIKE)
    assert isinstance(findings[1], Raise) and findings[1].type == alerts.POWER_DROP


def test_a_reading_not_newer_than_the_last_changes_nothing():
    state = settled()
    assert alerts.observe(state, 100, 40 * KW) == (state, [])
    assert alerts.observe(state, 50, 40 * KW) == (state, [])


def test_a_level_held_for_relearn_after_readings_becomes_the_baseline():
    state = settled()
    for ts in range(200, 202):
        state, findings = alerts.observe(state, ts, 20 * KW, relearn_after=3)
        assert [type(finding) for finding in findings] == [Raise]
    assert state.streak == 2 and state.baseline == 4 * KW
    state, findings = alerts.observe(state, 202, 20 * KW, relearn_after=3)
    assert findings == [Clear(alerts.POWER_SPIKE)]
    assert (state.baseline, state.anomaly, state.streak) == (20 * KW, None, 0)
    # The new level is normal now; going back to the old one is a drop.
    assert alerts.observe(state, 203, 21 * KW, relearn_after=3)[1] == []
    assert alerts.observe(state, 203, 4 * KW, relearn_after=3)[1][0].type == alerts.POWER_DROP


def test_a_change_of_kind_restarts_the_streak():
    state, _ = alerts.observe(settled(), 200, 20 * KW, relearn_after=3)
    state, _ = alerts.observe(state, 201, 20 * KW, relearn_after=3)
    state, findings = alerts.observe(state, 202, 1 * KW, relearn_after=3)
    assert [type(finding) for finding in findings] == [Clear, Raise]
    assert (state.anomaly, state.streak, state.baseline) == (alerts.POWER_DROP, 1, 4 * KW)


def test_an_outage_is_never_learned():
    state = settled()
    for ts in range(200, 210):
        state, findings = alerts.observe(state, ts, 0, relearn_after=3)
        assert [finding.type for finding in findings] == [alerts.POWER_OUTAGE]
    assert state.baseline == 4 * KW


def test_relearn_after_zero_never_learns():
    state = settled()
    for ts in range(200, 300):
        state, findings = alerts.observe(state, ts, 20 * KW, relearn_after=0)
    assert state.baseline == 4 * KW and [type(finding) for finding in findings] == [Raise]


def test_silent_after_n_observed_intervals_from_its_acceptance():
    state = MeterState(3, KW, 10_000_000, 2_000_000, None)
    assert alerts.silent_deadline_us(state, 3, 11_000_000) == 17_000_000
    assert alerts.silent_deadline_us(MeterState(1, KW, 10, 0, None), 3, 11) is None


RULE = OverloadRule()


def loads(*values: str) -> list[Decimal]:
    return [Decimal(value) for value in values]


def test_overload_needs_two_consecutive_windows_above_90():
    assert alerts.judge_overload(loads("95"), False, RULE) is None
    assert alerts.judge_overload(loads("90", "95"), False, RULE) is None
    finding = alerts.judge_overload(loads("90.0001", "95"), False, RULE)
    assert isinstance(finding, Raise) and finding.severity == "high"
    assert finding.message == (
        "Regional overload detected: 95.0% load for 2 consecutive 1-minute windows"
    )


def test_overload_above_100_is_critical():
    finding = alerts.judge_overload(loads("95", "100.0001"), False, RULE)
    assert isinstance(finding, Raise) and finding.severity == "critical"
    finding = alerts.judge_overload(loads("95", "100"), False, RULE)
    assert isinstance(finding, Raise) and finding.severity == "high"


def test_overload_clears_only_below_85_for_two_windows():
    assert alerts.judge_overload(loads("84", "88"), True, RULE) is None
    assert alerts.judge_overload(loads("85", "84"), True, RULE) is None
    assert alerts.judge_overload(loads("84.9", "10"), True, RULE) == Clear(alerts.REGIONAL_OVERLOAD)
    # nothing to clear when no alert is open
    assert alerts.judge_overload(loads("10", "10"), False, RULE) is None


def test_thresholds_are_configurable():
    rule = OverloadRule(Decimal(50), Decimal(40), Decimal(60), 3)
    assert alerts.judge_overload(loads("55", "55"), False, rule) is None
    finding = alerts.judge_overload(loads("55", "55", "61"), False, rule)
    assert isinstance(finding, Raise) and finding.severity == "critical"


def test_preferences_filter_by_channel_kind_and_severity():
    prefs = Preferences(frozenset({"email"}), frozenset({alerts.POWER_SPIKE}), "medium")
    assert prefs.wants("email", alerts.POWER_SPIKE, "medium")
    assert not prefs.wants("email", alerts.POWER_SPIKE, "low")
    assert not prefs.wants("webhook", alerts.POWER_SPIKE, "high")
    assert not prefs.wants("email", alerts.POWER_DROP, "high")
    assert Preferences().wants("webhook", alerts.TARIFF_CHANGE, None)


def test_backoff_doubles():
    assert [alerts.backoff_s(attempt, 2.0) for attempt in (1, 2, 3)] == [2.0, 4.0, 8.0]


def test_overload_is_judged_on_each_regions_newest_flushed_1m_window():
    from segs.domain.windows import WindowKey
    from segs.services.alerts.rules import newest_regional_windows

    flushed = [
        WindowKey("1m", "Pune-West", 60_000_000),
        WindowKey("1m", "Pune-West", 120_000_000),
        WindowKey("15m", "Pune-West", 900_000_000),
        WindowKey("1m", "Pune-East", 60_000_000),
    ]
    assert newest_regional_windows(flushed) == {"Pune-West": 120_000_000, "Pune-East": 60_000_000}
