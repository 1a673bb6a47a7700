"""Account views: ``/users/me`` for everyone, reading for staff, changes for admins only."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

from flask import current_app
from flask import url_for

from segs.db import session_scope
from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.services.accounts import users
from segs.services.accounts.passwords import Passwords
from segs.web.actor import current_actor
from segs.web.field_names import answering_with
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import revocation_list
from segs.web.security import roles_required
from segs.web.users.schemas import ProfileUpdateSchema
from segs.web.users.schemas import UserCreateSchema
from segs.web.users.schemas import UserPageSchema
from segs.web.users.schemas import UserQueryArgsSchema
from segs.web.users.schemas import UserSchema
from segs.web.users.schemas import UserSuspendSchema
from segs.web.users.schemas import UserUpdateSchema

bp = Blueprint(
    "users",
    __name__,
    url_prefix="/users",
    description="Accounts. Everyone reads and edits their own profile at /users/me; operators "
    "read accounts; only admins create, change, suspend, activate and delete them.",
)

# The answer's names for the values the account services' errors name by meaning.
API_FIELDS = {"meter_ids": "meterIds"}


@bp.get("/me")
@roles_required()
@bp.response(200, UserSchema)
def get_my_profile() -> users.AccountView:
    """Show the caller's own account."""
    with session_scope() as session:
        return users.get_user(session, current_account().id)


@bp.patch("/me")
@roles_required()
@bp.arguments(ProfileUpdateSchema)
@bp.response(200, UserSchema)
def update_my_profile(changes: dict[str, Any]) -> users.AccountView:
    """Change the caller's own name, phone or time zone."""
    with session_scope() as session:
        return users.update_profile(session, current_actor(), changes)


@bp.get("")
@roles_required(OPERATOR, ADMIN)
@bp.arguments(UserQueryArgsSchema, location="query")
@bp.response(200, UserPageSchema)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """List accounts that are not deleted, by email, with the total over all pages."""
    filters = users.UserFilters(
        role=args.get("role"), region=args.get("region"), status=args.get("status"), q=args.get("q")
    )
    with session_scope() as session:
        page = users.list_users(session, filters, page=args["page"], page_size=args["page_size"])
    return page_body(page.items, page.total, args)


@bp.post("")
@roles_required(ADMIN)
@bp.arguments(UserCreateSchema)
@bp.response(201, UserSchema, headers={"Location": {"schema": {"type": "string"}}})
@bp.alt_response(409, response="CONFLICT")
def create_user(body: dict[str, Any]) -> tuple[users.AccountView, dict[str, str]]:
    """Create an account with a password; its email address counts as verified."""
    passwords = Passwords(current_app.config["SEGS_SETTINGS"])
    with session_scope() as session:
        created = users.create_user(session, passwords, current_actor(), users.NewAccount(**body))
    return created, {"Location": url_for("users.get_user", user_id=created.id)}


@bp.get("/<uuid:user_id>")
@roles_required(OPERATOR, ADMIN)
@bp.response(200, UserSchema)
@bp.alt_response(404, response="NOT_FOUND")
def get_user(user_id: uuid.UUID) -> users.AccountView:
    """Show one account."""
    with session_scope() as session:
        return users.get_user(session, user_id)


@bp.patch("/<uuid:user_id>")
@roles_required(ADMIN)
@bp.arguments(UserUpdateSchema)
@bp.response(200, UserSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def update_user(changes: dict[str, Any], user_id: uuid.UUID) -> users.AccountView:
    """Change an account's name, phone, region, time zone or role."""
    with answering_with(API_FIELDS), session_scope() as session:
        return users.update_user(session, current_actor(), user_id, changes)


@bp.post("/<uuid:user_id>/suspend")
@roles_required(ADMIN)
@bp.arguments(UserSuspendSchema)
@bp.response(200, UserSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def suspend_user(body: dict[str, Any], user_id: uuid.UUID) -> users.AccountView:
    """Suspend an account: its tokens stop working at once."""
    with session_scope() as session:
        return users.suspend_user(
            session,
            current_actor(),
            user_id,
            body["reason"],
            current_app.config["SEGS_SETTINGS"],
            revocation_list(current_app.config["SEGS_SETTINGS"]),
            datetime.now(UTC),
        )


@bp.post("/<uuid:user_id>/activate")
@roles_required(ADMIN)
@bp.response(200, UserSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def activate_user(user_id: uuid.UUID) -> users.AccountView:
    """Lift an account's suspension."""
    with session_scope() as session:
        return users.activate_user(session, current_actor(), user_id)


@bp.delete("/<uuid:user_id>")
@roles_required(ADMIN)
@bp.response(204)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def delete_user(user_id: uuid.UUID) -> None:
    """Delete an account: its meters are unassigned, its email address is free again."""
    with session_scope() as session:
        users.delete_user(session, current_actor(), user_id)
