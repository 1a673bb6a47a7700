"""Per-recipient rate limits and digests: nobody gets hundreds of mails or webhooks in minutes.

A recipient is one channel of one account: its email address, or one of its webhooks. Regional
incidents already turn one outage into one notification; this bounds everything else (spikes on
many meters at once, a flapping alert, a customer with many meters).

- A recipient gets at most ``max_per_hour`` notifications one by one in any rolling hour
  (:func:`should_hold`). Beyond that, each further notification is held, not dropped.
- Once one is held, the ones after it are held too until the digest goes out, so the recipient
  never hears of a later event before an earlier one.
- The held notifications go out together as one digest ``digest_s`` after the first of them was
  held (:func:`digest_due`), and the recipient's allowance is judged afresh after it.
- A digest lists each alert once, in its latest state, with every transition it went through
  while held (:func:`digest_entries`): an alert raised and resolved within the period is one
  line saying so. Other notifications (tariff changes) are listed one by one.

Digests themselves are not limited: one per recipient per ``digest_s`` at most.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The rolling period the allowance is counted over.
LIMIT_PERIOD_S = 3600
# Subjects of digest deliveries (the delivery log, dead letters, the webhook delivery header).
DIGEST_PREFIX = "digest:"
DIGEST_EVENT = "notifications.digest"


@dataclass(frozen=True)
class DigestRule:
    max_per_hour: int = 20
    digest_s: float = 900.0


def should_hold(rule: DigestRule, sent_in_last_hour: int, digest_open: bool) -> bool:
    """Whether a notification is held for the recipient's digest rather than sent now.

    *sent_in_last_hour* counts what went out one by one (digests excluded) over the last
    LIMIT_PERIOD_S; *digest_open* says the recipient has notifications held already.
    """
    return digest_open or sent_in_last_hour >= rule.max_per_hour


def digest_due(rule: DigestRule, oldest_held_age_s: float) -> bool:
    """Whether a recipient's digest goes out, its first notification held this long ago."""
    return oldest_held_age_s >= rule.digest_s


def digest_subject(first_item_id: int) -> str:
    """A digest is named by its first held notification, so every attempt at it (and the
    delivery log) names it the same."""
    return f"{DIGEST_PREFIX}{first_item_id}"


@dataclass(frozen=True, slots=True)
class HeldNotification:
    """One notification held for a digest."""

    title: str
    event: str  # alert.created, alert.resolved..., tariff.changed
    at: str  # ISO-8601: when its transition happened (when it was held, for a tariff change)
    payload: Mapping[str, Any]  # what it would have carried on its own
    alert_id: int | None = None
    transition_id: int | None = None


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One line of a digest: an alert in its latest state, or a notification of its own."""

    latest: HeldNotification
    events: tuple[str, ...]  # every event folded into it, oldest first


def digest_entries(held: Iterable[HeldNotification]) -> list[DigestEntry]:
    """Fold the held notifications, in the order they were held, into the digest's lines.

    An alert's transitions fold into one line showing the latest (by transition id: a retried
    delivery may be held after a later transition of the same alert); the line keeps the place
    of the alert's first held notification.
    """
    by_alert: dict[int, list[HeldNotification]] = {}
    lines: list[list[HeldNotification]] = []
    for item in held:
        if item.alert_id is None:
            lines.append([item])
        elif item.alert_id in by_alert:
            by_alert[item.alert_id].append(item)
        else:
            by_alert[item.alert_id] = [item]
            lines.append(by_alert[item.alert_id])
    entries = []
    for line in lines:
        ordered = sorted(line, key=lambda item: item.transition_id or 0)
        entries.append(DigestEntry(ordered[-1], tuple(item.event for item in ordered)))
    return entries


def digest_title(entries: list[DigestEntry]) -> str:
    count = sum(len(entry.events) for entry in entries)
    return f"[SEGS] Digest of {count} held notifications"


def digest_payload(entries: list[DigestEntry]) -> dict[str, Any]:
    """The digest's body (a webhook POSTs it as it is): each line's latest notification as it
    would have been sent on its own, with its title, time and the events folded into it."""
    return {
        "event": DIGEST_EVENT,
        "notifications": [
            {
                "title": entry.latest.title,
                "at": entry.latest.at,
                "events": list(entry.events),
                **entry.latest.payload,
            }
            for entry in entries
        ],
    }


def digest_text(rule: DigestRule, payload: Mapping[str, Any]) -> str:
    """The digest email: why it came, then one line per alert or notification."""
    lines = [
        f"You were sent {rule.max_per_hour} notifications within an hour, so the ones after "
        "them were held and come together here.",
        "",
    ]
    for notification in payload["notifications"]:
        about = []
        alert = notification.get("alert")
        if alert is not None:
            about.append(f"alert {alert['id']}, {alert['severity']}, now {alert['status']}")
        about.append(f"at {notification['at']}")
        if len(notification["events"]) > 1:
            about.append("events: " + ", ".join(notification["events"]))
        lines.append(f"- {notification['title']} ({'; '.join(about)})")
    return "\n".join(lines) + "\n"
