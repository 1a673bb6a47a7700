"""The per-recipient limit and its digests (segs.domain.digests), and their settings."""

from __future__ import annotations

import os

import pytest

from segs.config import SettingsError
from segs.config import load_settings
from segs.domain.digests import DIGEST_EVENT
from segs.domain.digests import DigestRule
from segs.domain.digests import HeldNotification
from segs.domain.digests import digest_due
from segs.domain.digests import digest_entries
from segs.domain.digests import digest_payload
from segs.domain.digests import digest_subject
from segs.domain.digests import digest_text
from segs.domain.digests import digest_title
from segs.domain.digests import should_hold

RULE = DigestRule(max_per_hour=3, digest_s=60.0)


def test_under_the_limit_each_is_sent_and_from_the_limit_on_held():
    assert [should_hold(RULE, sent, digest_open=False) for sent in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_while_a_digest_gathers_everything_joins_it_even_with_allowance_back():
    # The hour rolled on and freed places, but sending now would overtake the held ones.
    assert should_hold(RULE, 0, digest_open=True) is True


def test_a_digest_is_due_once_its_first_notification_waited_the_period():
    assert digest_due(RULE, 59.9) is False
    assert digest_due(RULE, 60.0) is True
    assert digest_subject(42) == "digest:42"


def alert_item(alert_id: int, transition_id: int, kind: str, status: str) -> HeldNotification:
    return HeldNotification(
        title=f"[SEGS] high POWER_OUTAGE {kind}: M-{alert_id}",
        event=f"alert.{kind}",
        at=f"2026-12-08T10:00:{transition_id:02d}+00:00",
        payload={
            "event": f"alert.{kind}",
            "transition": {"id": transition_id, "kind": kind},
            "alert": {"id": alert_id, "severity": "high", "status": status},
        },
        alert_id=alert_id,
        transition_id=transition_id,
    )


TARIFF = HeldNotification(
    title="[SEGS] Tariff change in Pune-East: 6.25 per kWh from 2026-12-08T18:00:00+00:00",
    event="tariff.changed",
    at="2026-12-08T10:00:30+00:00",
    payload={"event": "tariff.changed", "tariff": {"region": "Pune-East", "price": "6.25"}},
)


def test_an_alerts_transitions_fold_into_its_latest_state_in_its_first_place():
    held = [
        alert_item(1, 11, "created", "active"),
        alert_item(2, 12, "created", "active"),
        TARIFF,
        # The resolve of alert 1 was held before its escalation, whose delivery was retried.
        alert_item(1, 15, "resolved", "resolved"),
        alert_item(1, 13, "escalated", "active"),
    ]
    entries = digest_entries(held)
    assert [(entry.latest.alert_id, entry.latest.event, entry.events) for entry in entries] == [
        (1, "alert.resolved", ("alert.created", "alert.escalated", "alert.resolved")),
        (2, "alert.created", ("alert.created",)),
        (None, "tariff.changed", ("tariff.changed",)),
    ]
    assert digest_title(entries) == "[SEGS] Digest of 5 held notifications"


def test_the_payload_carries_each_lines_latest_notification_as_sent_on_its_own():
    entries = digest_entries([alert_item(1, 11, "created", "active"), TARIFF])
    assert digest_payload(entries) == {
        "event": DIGEST_EVENT,
        "notifications": [
            {
                "title": "[SEGS] high POWER_OUTAGE created: M-1",
                "at": "2026-12-08T10:00:11+00:00",
                "events": ["alert.created"],
                "event": "alert.created",
                "transition": {"id": 11, "kind": "created"},
                "alert": {"id": 1, "severity": "high", "status": "active"},
            },
            {
                "title": TARIFF.title,
                "at": "2026-12-08T10:00:30+00:00",
                "events": ["tariff.changed"],
                "event": "tariff.changed",
                "tariff": {"region": "Pune-East", "price": "6.25"},
            },
        ],
    }


def test_the_email_lists_each_line_with_its_alert_severity_state_and_time():
    entries = digest_entries(
        [
            alert_item(1, 11, "created", "active"),
            alert_item(1, 12, "resolved", "resolved"),
            TARIFF,
        ]
    )
    assert digest_text(RULE, digest_payload(entries)) == (
        "You were sent 3 notifications within an hour, so the ones after them were held and "
        "come together here.\n"
        "\n"
        "- [SEGS] high POWER_OUTAGE resolved: M-1 (alert 1, high, now resolved; "
        "at 2026-12-08T10:00:12+00:00; events: alert.created, alert.resolved)\n"
        f"- {TARIFF.title} (at 2026-12-08T10:00:30+00:00)\n"
    )


@pytest.fixture
def bare_env(monkeypatch):
    for name in [name for name in os.environ if name.startswith("SEGS_")]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_default_to_20_an_hour_and_a_15_minute_digest(bare_env):
    settings = load_settings()
    assert (settings.notify_max_per_hour, settings.notify_digest_s) == (20, 900.0)
    assert settings.digest_rule == DigestRule(max_per_hour=20, digest_s=900.0)
    bare_env.setenv("SEGS_NOTIFY_MAX_PER_HOUR", "5")
    bare_env.setenv("SEGS_NOTIFY_DIGEST_S", "120.5")
    assert load_settings().digest_rule == DigestRule(max_per_hour=5, digest_s=120.5)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SEGS_NOTIFY_MAX_PER_HOUR", "0", "SEGS_NOTIFY_MAX_PER_HOUR must be >= 1, got 0"),
        ("SEGS_NOTIFY_MAX_PER_HOUR", "ten", "SEGS_NOTIFY_MAX_PER_HOUR must be an integer"),
        ("SEGS_NOTIFY_DIGEST_S", "0.5", "SEGS_NOTIFY_DIGEST_S must be >= 1.0, got 0.5"),
        ("SEGS_NOTIFY_DIGEST_S", "soon", "SEGS_NOTIFY_DIGEST_S must be a number"),
    ],
)
def test_settings_refuse_bad_values(bare_env, name, value, problem):
    bare_env.setenv(name, value)
    with pytest.raises(SettingsError, match=problem):
        load_settings()
