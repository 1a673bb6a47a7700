"""Ingestion key views (admins only). A new key is shown in full once, in the answer that
creates it; listings show its first characters."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import current_app
from flask import url_for

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.redis_client import get_redis
from segs.services.spine import ingestion_keys
from segs.web.actor import current_actor
from segs.web.field_names import answering_with
from segs.web.ingestion_keys.schemas import KEY_REQUEST_FIELDS
from segs.web.ingestion_keys.schemas import IngestionKeyCreateSchema
from segs.web.ingestion_keys.schemas import IngestionKeyPageSchema
from segs.web.ingestion_keys.schemas import IngestionKeyRotateSchema
from segs.web.ingestion_keys.schemas import IngestionKeySchema
from segs.web.ingestion_keys.schemas import NewIngestionKeySchema
from segs.web.parsing import Blueprint
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_body
from segs.web.security import roles_required

bp = Blueprint(
    "ingestion_keys",
    __name__,
    url_prefix="/ingestion-keys",
    description="Keys that meters (device keys) and head-ends (head-end keys, for regions) "
    "send readings with. Admins only; every change is audited.",
)

_LOCATION = {"Location": {"schema": {"type": "string"}}}


def _shown_once(created: ingestion_keys.NewKey) -> tuple[dict[str, Any], int, dict[str, str]]:
    body = {**asdict(created.key), "key": created.plain}
    location = url_for("ingestion_keys.get_key", key_id=created.key.id)
    return body, 201, {"Location": location}


@bp.get("")
@roles_required(ADMIN)
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, IngestionKeyPageSchema)
def list_keys(args: dict[str, Any]) -> dict[str, Any]:
    """List every key, newest first."""
    with session_scope() as session:
        page = ingestion_keys.list_keys(
            session, datetime.now(UTC), page=args["page"], page_size=args["page_size"]
        )
    return page_body(page.items, page.total, args)


@bp.post("")
@roles_required(ADMIN)
@bp.arguments(IngestionKeyCreateSchema)
@bp.response(201, NewIngestionKeySchema, headers=_LOCATION)
def create_key(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create a device key (meterId) or a head-end key (regions, or every region)."""
    request = ingestion_keys.KeyRequest(
        name=body["name"],
        meter_id=body.get("meter_id"),
        regions=tuple(body["regions"]),
        register_in=body.get("register_in"),
        rate_limit=body.get("rate_limit"),
    )
    with answering_with(KEY_REQUEST_FIELDS), session_scope() as session:
        created = ingestion_keys.create_key(session, current_actor(), request, datetime.now(UTC))
    return _shown_once(created)


@bp.get("/<uuid:key_id>")
@roles_required(ADMIN)
@bp.response(200, IngestionKeySchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_key(key_id: uuid.UUID) -> ingestion_keys.KeyView:
    """Show one key."""
    with session_scope() as session:
        return ingestion_keys.get_key(session, key_id, datetime.now(UTC))


@bp.post("/<uuid:key_id>/revoke")
@roles_required(ADMIN)
@bp.response(200, IngestionKeySchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def revoke_key(key_id: uuid.UUID) -> ingestion_keys.KeyView:
    """Revoke a key: it stops working at once, in every API process."""
    with session_scope() as session:
        return ingestion_keys.revoke_key(
            session, get_redis(), current_actor(), key_id, datetime.now(UTC)
        )


@bp.post("/<uuid:key_id>/rotate")
@roles_required(ADMIN)
@bp.arguments(IngestionKeyRotateSchema)
@bp.response(201, NewIngestionKeySchema, headers=_LOCATION)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def rotate_key(
    body: dict[str, Any], key_id: uuid.UUID
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create a successor with the same name and scope; the old key keeps working beside it
    for overlapSeconds."""
    overlap = body.get(
        "overlap_seconds", current_app.config["SEGS_SETTINGS"].key_rotation_overlap_s
    )
    with session_scope() as session:
        created = ingestion_keys.rotate_key(
            session,
            get_redis(),
            current_actor(),
            key_id,
            timedelta(seconds=overlap),
            datetime.now(UTC),
        )
    return _shown_once(created)
