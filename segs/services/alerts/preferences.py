"""An account's notification preferences: which channels, which kinds of notification, and
from which severity on (segs.domain.alerts.Preferences holds the rule and the defaults)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.models import NotificationPreference
from segs.services.accounts import Actor
from segs.services.accounts import record_audit


def preferences_of(
    session: Session, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, rules.Preferences]:
    """Each account's preferences; the defaults for those who never set theirs."""
    stored = {
        row.user_id: rules.Preferences(
            channels=frozenset(row.channels),
            kinds=frozenset(row.kinds),
            min_severity=row.min_severity,
        )
        for row in session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids))
        )
    }
    return {user_id: stored.get(user_id, rules.Preferences()) for user_id in user_ids}


@dataclass(frozen=True)
class PreferencesView:
    channels: list[str]
    kinds: list[str]
    min_severity: str
    is_default: bool


def get_preferences(session: Session, user_id: uuid.UUID) -> PreferencesView:
    row = session.get(NotificationPreference, user_id)
    if row is None:
        default = rules.Preferences()
        return PreferencesView(
            sorted(default.channels), _in_order(default.kinds), default.min_severity, True
        )
    return PreferencesView(sorted(row.channels), _in_order(row.kinds), row.min_severity, False)


def _in_order(kinds: Iterable[str]) -> list[str]:
    return [kind for kind in rules.NOTIFICATION_KINDS if kind in set(kinds)]


def set_preferences(
    session: Session, actor: Actor, channels: list[str], kinds: list[str], min_severity: str
) -> PreferencesView:
    """Replace the caller's preferences (an empty list of channels turns email and webhooks off)."""
    assert actor.id is not None
    values = {
        "user_id": actor.id,
        "channels": sorted(set(channels)),
        "kinds": _in_order(kinds),
        "min_severity": min_severity,
    }
    session.execute(
        insert(NotificationPreference)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[NotificationPreference.user_id],
            set_={
                "channels": values["channels"],
                "kinds": values["kinds"],
                "min_severity": min_severity,
                "updated_at": func.now(),
            },
        )
    )
    record_audit(
        session,
        actor,
        "notifications.preferences",
        "user",
        actor.id,
        {key: value for key, value in values.items() if key != "user_id"},
    )
    session.flush()
    session.expire_all()
    return get_preferences(session, actor.id)
