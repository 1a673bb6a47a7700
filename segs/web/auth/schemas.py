"""Registration, codes, login and tokens on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates

from segs.domain.accounts import DEFAULT_TIMEZONE
from segs.domain.accounts import EMAIL_MAX_LENGTH
from segs.domain.accounts import MAX_PASSWORD_LENGTH
from segs.domain.accounts import MIN_PASSWORD_LENGTH
from segs.domain.accounts import NAME_MAX_LENGTH
from segs.domain.accounts import PHONE_PATTERN
from segs.domain.accounts import is_timezone
from segs.domain.codes import CODE_DIGITS
from segs.domain.codes import CODE_PATTERN
from segs.domain.readings import REGION_MAX_LENGTH
from segs.domain.text import has_control_characters
from segs.web.schemas import AccountFieldsSchema
from segs.web.schemas import CamelSchema

_RULE_TEXT = (
    f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters with at least one letter and "
    "one digit, not the email address"
)


def _email() -> fields.Email:
    return fields.Email(
        required=True,
        validate=validate.Length(max=EMAIL_MAX_LENGTH),
        metadata={"description": "the account's address (case does not matter)"},
    )


def _code() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Regexp(
            CODE_PATTERN, error=f"must be the {CODE_DIGITS} digits from the email"
        ),
        metadata={"description": f"the {CODE_DIGITS}-digit code from the email"},
    )


def _new_password(description: str) -> fields.String:
    # The full rule (which needs the email) is checked by the service; this bounds the size.
    return fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH),
        metadata={"description": f"{description}: {_RULE_TEXT}"},
    )


def _refuse_control_characters(value: str) -> None:
    # PostgreSQL text cannot hold NUL, and no name needs a control character.
    if has_control_characters(value):
        raise ValidationError("must not contain control characters")


class AccountSchema(AccountFieldsSchema):
    """The logged-in account, as login and registration show it."""

    email_verified = fields.Function(
        lambda account: account.email_verified_at is not None,
        metadata={"description": "true once the emailed code was entered"},
    )


class RegisterSchema(CamelSchema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=NAME_MAX_LENGTH),
        metadata={"description": "display name"},
    )
    email = _email()
    phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(PHONE_PATTERN, error="must be a phone number in E.164 form"),
        metadata={"description": "E.164, e.g. +919812345678"},
    )
    region = fields.String(
        required=True,
        validate=validate.Length(min=1, max=REGION_MAX_LENGTH),
        metadata={"description": "grid region of the account's meters (GET /regions)"},
    )
    timezone = fields.String(
        load_default=DEFAULT_TIMEZONE,
        metadata={"description": f"IANA time zone, default {DEFAULT_TIMEZONE}"},
    )

    @validates("timezone")
    def _known_timezone(self, value: str, **_: Any) -> None:
        if not is_timezone(value):
            raise ValidationError("must be an IANA time zone name such as Asia/Kolkata")

    @validates("name")
    def _visible_name(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("must not be blank")
        _refuse_control_characters(value)

    @validates("region")
    def _plain_region(self, value: str, **_: Any) -> None:
        _refuse_control_characters(value)


class VerifyEmailSchema(CamelSchema):
    email = _email()
    code = _code()
    password = _new_password("the password to log in with from now on")


class CodeRequestSchema(CamelSchema):
    """Ask for a code by email (a new verification code, or a password reset code)."""

    email = _email()


class LoginSchema(CamelSchema):
    email = _email()
    password = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )


class RefreshSchema(CamelSchema):
    refresh_token = fields.String(
        required=True,
        validate=validate.Length(min=1, max=4096),
        metadata={"description": "the refreshToken of the last login or refresh"},
    )


class ChangePasswordSchema(CamelSchema):
    current_password = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )
    new_password = _new_password("the new password")


class ResetPasswordSchema(CamelSchema):
    email = _email()
    code = _code()
    new_password = _new_password("the new password")


class TokensSchema(CamelSchema):
    """A session: a short-lived access token and the refresh token that renews it."""

    access_token = fields.String(
        metadata={"description": "send as Authorization: Bearer <accessToken>"}
    )
    refresh_token = fields.String(
        metadata={"description": "single use: POST it to /auth/refresh for the next pair"}
    )
    expires_in = fields.Integer(metadata={"description": "seconds the access token is valid"})
    user = fields.Nested(AccountSchema)


class CodeSentSchema(CamelSchema):
    """The same answer whether or not the address has an account."""

    message = fields.String()
