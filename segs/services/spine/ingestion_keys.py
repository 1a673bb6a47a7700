"""Ingestion keys as admins manage them, and the lookup the API verifies them with.

Rules kept here:
- A key is a device key (one registered meter) or a head-end key (some regions, or every region
  when none is named). The plain key is returned once, at creation; only its digest is stored.
- Revoking stops a key at once. Rotating creates a successor with the same name and scope and
  lets the old key work beside it until the overlap ends, so a head-end can be reconfigured
  without losing a reading.
- Every change is audited with the change, and announced to the API processes' caches once it
  has committed (segs.services.spine.registry_cache).

An error names a value by what it means (``meter_id``, ``register_in``, ``rate_limit``); each
caller answers with its own names for them. A reason that points the client at another field
says it as the API does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.identifiers import ID_RULE
from segs.domain.identifiers import is_valid_id
from segs.domain.ingestion_keys import DEVICE
from segs.domain.ingestion_keys import HEAD_END
from segs.domain.ingestion_keys import KeyScope
from segs.domain.ingestion_keys import key_digest
from segs.domain.ingestion_keys import new_plain_key
from segs.domain.ingestion_keys import rate_limit_problem
from segs.domain.ingestion_keys import shown_prefix
from segs.domain.readings import to_epoch_us
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import IngestionKey
from segs.models import Meter
from segs.models import Region
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page
from segs.services.spine import announce_after_commit

NAME_MAX_LENGTH = 100
STATUSES = ("active", "expiring", "expired", "revoked")


@dataclass(frozen=True)
class KeyView:
    """A key as listings show it: never the key itself, only its first characters."""

    id: uuid.UUID
    name: str
    key_prefix: str
    kind: str
    meter_id: str | None
    regions: list[str] | None
    rate_limit: str | None
    status: str
    created_at: datetime
    created_by: uuid.UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    replaces_id: uuid.UUID | None


@dataclass(frozen=True)
class NewKey:
    """A key just created: the plain key is here and nowhere else, ever."""

    key: KeyView
    plain: str


@dataclass(frozen=True)
class KeyRequest:
    """What a new key may send: *meter_id* (a device key) or *regions* (a head-end key; empty
    for every region). *register_in* registers the device key's meter first if it is new."""

    name: str
    meter_id: str | None = None
    regions: tuple[str, ...] = ()
    register_in: str | None = None
    rate_limit: str | None = None


def status_of(key: IngestionKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None:
        return "expired" if key.expires_at <= now else "expiring"
    return "active"


def create_key(session: Session, actor: Actor, request: KeyRequest, now: datetime) -> NewKey:
    """Create a key and return it with its plain text, shown this once.

    :raises InvalidInputError: a bad name, scope or rate limit; an unknown region; a device
        key's meter that is not registered (and no region to register it in).
    """
    _check_request(session, actor, request)
    key, plain = _new_key(
        session,
        actor,
        name=request.name.strip(),
        meter_id=request.meter_id,
        regions=sorted(set(request.regions))
        if request.meter_id is None and request.regions
        else None,
        rate_limit=request.rate_limit,
    )
    record_audit(session, actor, "ingestion_key.create", "ingestion_key", key.id, _details(key))
    # Not announced: no process can hold a key that did not exist in its caches.
    session.refresh(key)
    return NewKey(_view(key, now), plain)


def list_keys(session: Session, now: datetime, *, page: int, page_size: int) -> Page[KeyView]:
    """Every key, newest first."""
    statement = select(IngestionKey).order_by(IngestionKey.created_at.desc(), IngestionKey.id)
    keys, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page([_view(key, now) for key in keys], total)


def get_key(session: Session, key_id: uuid.UUID, now: datetime) -> KeyView:
    return _view(_key(session, key_id), now)


def revoke_key(
    session: Session, client: redis.Redis, actor: Actor, key_id: uuid.UUID, now: datetime
) -> KeyView:
    """Stop a key at once, in every API process.

    :raises ConflictError: the key is revoked already.
    """
    key = _key(session, key_id, lock=True)
    if key.revoked_at is not None:
        raise ConflictError("the key is revoked already", code="KEY_REVOKED")
    key.revoked_at = now
    record_audit(session, actor, "ingestion_key.revoke", "ingestion_key", key.id, _details(key))
    announce_after_commit(session, client)
    return _view(key, now)


def rotate_key(
    session: Session,
    client: redis.Redis,
    actor: Actor,
    key_id: uuid.UUID,
    overlap: timedelta,
    now: datetime,
) -> NewKey:
    """Create a successor with the same name and scope; the old key works until now + overlap.

    :raises ConflictError: the key is revoked, expired, or rotated already.
    """
    old = _key(session, key_id, lock=True)
    status = status_of(old, now)
    if status != "active":
        raise ConflictError(
            f"only an active key can be rotated; this one is {status}"
            + (" (rotate its successor instead)" if status == "expiring" else ""),
            code="KEY_NOT_ACTIVE",
        )
    new, plain = _new_key(
        session,
        actor,
        name=old.name,
        meter_id=old.meter_id,
        regions=old.regions,
        rate_limit=old.rate_limit,
        replaces_id=old.id,
    )
    old.expires_at = now + overlap
    session.flush()
    record_audit(
        session,
        actor,
        "ingestion_key.rotate",
        "ingestion_key",
        old.id,
        {
            **_details(old),
            "successorId": str(new.id),
            "oldKeyExpiresAt": old.expires_at.isoformat(),
        },
    )
    announce_after_commit(session, client)
    session.refresh(new)
    return NewKey(_view(new, now), plain)


def scope_by_digest(session: Session, digest: str, now: datetime) -> KeyScope | None:
    """The scope of the usable key with this digest; None if there is none (unknown, revoked
    or past its rotation overlap)."""
    key = session.scalar(select(IngestionKey).where(IngestionKey.key_digest == digest))
    if key is None or status_of(key, now) not in ("active", "expiring"):
        return None
    return KeyScope(
        key_id=str(key.id),
        name=key.name,
        meter_id=key.meter_id,
        regions=frozenset(key.regions) if key.regions is not None else None,
        rate_limit=key.rate_limit,
        expires_at_us=to_epoch_us(key.expires_at) if key.expires_at is not None else None,
    )


def _check_request(session: Session, actor: Actor, request: KeyRequest) -> None:
    name = request.name.strip()
    if not name or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise InvalidInputError(
            "the key needs a name",
            {"name": [f"1 to {NAME_MAX_LENGTH} printable characters"]},
        )
    if request.meter_id is not None and request.regions:
        raise InvalidInputError(
            "a key is for one meter or for regions, not both",
            {"regions": ["leave out with meterId: a device key's region is its meter's"]},
        )
    if request.register_in is not None and request.meter_id is None:
        raise InvalidInputError(
            "only a device key registers its meter",
            {"register_in": ["needs meterId"]},
        )
    if request.rate_limit is not None:
        problem = rate_limit_problem(request.rate_limit)
        if problem is not None:
            raise InvalidInputError("not a usable rate limit", {"rate_limit": [problem]})
    known = set(session.scalars(select(Region.name)))
    unknown = sorted(
        {*request.regions, *([request.register_in] if request.register_in else [])} - known
    )
    if unknown:
        raise InvalidInputError(
            f"unknown regions: {', '.join(unknown)}",
            {"regions" if request.regions else "register_in": ["unknown region"]},
        )
    if request.meter_id is not None:
        _check_device_meter(session, actor, request.meter_id, request.register_in)


def _check_device_meter(
    session: Session, actor: Actor, meter_id: str, register_in: str | None
) -> None:
    if not is_valid_id(meter_id):
        raise InvalidInputError("not a meter id", {"meter_id": [ID_RULE]})
    meter = session.get(Meter, meter_id)
    if meter is None:
        if register_in is None:
            raise InvalidInputError(
                f"meter {meter_id} is not registered",
                {"meter_id": ["register the meter first, or name its region (registerIn)"]},
            )
        session.add(Meter(meter_id=meter_id, region=register_in))
        session.flush()
        record_audit(session, actor, "meter.create", "meter", meter_id, {"region": register_in})
    elif meter.retired_at is not None:
        raise InvalidInputError(
            f"meter {meter_id} is retired", {"meter_id": ["a retired meter sends no readings"]}
        )
    elif register_in is not None and meter.region != register_in:
        raise InvalidInputError(
            f"meter {meter_id} is registered in region {meter.region}",
            {"register_in": [f"the meter is in {meter.region}"]},
        )


def _new_key(
    session: Session,
    actor: Actor,
    *,
    name: str,
    meter_id: str | None,
    regions: list[str] | None,
    rate_limit: str | None,
    replaces_id: uuid.UUID | None = None,
) -> tuple[IngestionKey, str]:
    """A new key row with a fresh plain key, added and flushed; the plain key is returned
    beside it and stored nowhere."""
    plain = new_plain_key()
    key = IngestionKey(
        id=uuid.uuid4(),
        name=name,
        key_prefix=shown_prefix(plain),
        key_digest=key_digest(plain),
        meter_id=meter_id,
        regions=regions,
        rate_limit=rate_limit,
        created_by=actor.id,
        replaces_id=replaces_id,
    )
    session.add(key)
    session.flush()
    return key, plain


def _key(session: Session, key_id: uuid.UUID, *, lock: bool = False) -> IngestionKey:
    key = session.get(IngestionKey, key_id, with_for_update=True if lock else None)
    if key is None:
        raise NotFoundError(f"ingestion key {key_id} not found")
    return key


def _details(key: IngestionKey) -> dict[str, object]:
    return {
        "name": key.name,
        "keyPrefix": key.key_prefix,
        "kind": DEVICE if key.meter_id is not None else HEAD_END,
        "meterId": key.meter_id,
        "regions": key.regions,
    }


def _view(key: IngestionKey, now: datetime) -> KeyView:
    return KeyView(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        kind=DEVICE if key.meter_id is not None else HEAD_END,
        meter_id=key.meter_id,
        regions=key.regions,
        rate_limit=key.rate_limit,
        status=status_of(key, now),
        created_at=key.created_at,
        created_by=key.created_by,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        replaces_id=key.replaces_id,
    )
