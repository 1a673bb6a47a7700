"""Accounts on the wire: what the API shows of an account and what it accepts."""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import validate

from segs.domain.access import ROLES
from segs.domain.access import USER
from segs.domain.accounts import DEFAULT_TIMEZONE
from segs.domain.accounts import EMAIL_MAX_LENGTH
from segs.domain.accounts import MAX_PASSWORD_LENGTH
from segs.domain.accounts import NAME_MAX_LENGTH
from segs.domain.accounts import PHONE_PATTERN
from segs.domain.accounts import STATUSES
from segs.web.schemas import AccountFieldsSchema
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema

_NAME = validate.Length(min=1, max=NAME_MAX_LENGTH)
_PHONE = validate.Regexp(PHONE_PATTERN, error="must be a phone number in E.164 form")


def _name(**kwargs: Any) -> fields.String:
    return fields.String(validate=_NAME, metadata={"description": "display name"}, **kwargs)


def _phone() -> fields.String:
    return fields.String(
        allow_none=True,
        validate=_PHONE,
        metadata={"description": "E.164, e.g. +919812345678; null clears it"},
    )


def _timezone(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA time zone used for the account's days and months"},
        **kwargs,
    )


class UserSchema(AccountFieldsSchema):
    """An account (never its password)."""

    status = fields.String(metadata={"description": " | ".join(STATUSES)})
    suspended_reason = fields.String(allow_none=True)
    email_verified = fields.Boolean()
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    meter_ids = fields.List(
        fields.String(), metadata={"description": "meters assigned to the account"}
    )


UserPageSchema = page_schema(UserSchema, "UserPage")


class UserQueryArgsSchema(PageArgsSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    region = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    # No part of an address or a name is longer than the longest address.
    q = fields.String(
        validate=validate.Length(min=1, max=EMAIL_MAX_LENGTH),
        metadata={"description": "case-insensitive part of the email address or name"},
    )


class UserCreateSchema(CamelSchema):
    email = fields.Email(required=True, validate=validate.Length(max=EMAIL_MAX_LENGTH))
    name = _name(required=True)
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(max=MAX_PASSWORD_LENGTH),
        metadata={"description": "at least 10 characters with a letter and a digit"},
    )
    role = fields.String(load_default=USER, validate=validate.OneOf(ROLES))
    region = fields.String(
        allow_none=True,
        load_default=None,
        metadata={"description": "a known region; a USER needs one to own meters"},
    )
    timezone = _timezone(load_default=DEFAULT_TIMEZONE)
    phone = _phone()


class UserUpdateSchema(CamelSchema):
    """Only the fields sent change."""

    name = _name()
    phone = _phone()
    region = fields.String(allow_none=True)
    timezone = _timezone()
    role = fields.String(validate=validate.OneOf(ROLES))


class ProfileUpdateSchema(CamelSchema):
    """What an account may change about itself; role, region and email are the admin's."""

    name = _name()
    phone = _phone()
    timezone = _timezone()


class UserSuspendSchema(CamelSchema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "shown to admins and kept in the audit log"},
    )
