"""Schema building blocks shared by the resource blueprints: camelCase on the wire, pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import pre_load
from marshmallow import validate

from segs.domain.access import ROLES

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Keeps OFFSET = (page - 1) x pageSize far inside PostgreSQL's bigint.
MAX_PAGE = 1_000_000


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class CamelSchema(Schema):
    """Fields are snake_case in Python and camelCase in JSON, as the ingestion format is."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = camel_case(field_obj.data_key or field_name)

    @pre_load
    def reject_nul_characters(self, data: Any, **_kwargs: Any) -> Any:
        """PostgreSQL text cannot hold NUL: refuse it as bad input (422), not a 500 later."""
        if isinstance(data, Mapping):
            bad = {key: ["must not contain NUL characters"] for key in data if _has_nul(data[key])}
            if bad:
                raise ValidationError(bad)
        return data


class AccountFieldsSchema(CamelSchema):
    """What every answer showing an account says of it: who, where, and which role."""

    id = fields.UUID()
    email = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    role = fields.String(metadata={"description": " | ".join(ROLES)})
    region = fields.String(allow_none=True)
    timezone = fields.String()


class PageArgsSchema(CamelSchema):
    """``?page=&pageSize=`` on every list endpoint."""

    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"1-based page, at most {MAX_PAGE}"},
    )
    page_size = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"items per page, at most {MAX_PAGE_SIZE}"},
    )


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """A response schema ``{items, total, page, pageSize}`` named *name* in the OpenAPI document."""
    page_fields: dict[str, fields.Field] = {
        "items": fields.List(fields.Nested(item)),
        "total": fields.Integer(metadata={"description": "items over all pages"}),
        "page": fields.Integer(),
        "page_size": fields.Integer(),
    }
    return CamelSchema.from_dict(page_fields, name=name)


def page_body(items: list[Any], total: int, args: dict[str, int]) -> dict[str, Any]:
    """The object a page schema dumps."""
    return {"items": items, "total": total, "page": args["page"], "page_size": args["page_size"]}


class ErrorDetailSchema(Schema):
    code = fields.String(metadata={"description": "machine-readable, e.g. VALIDATION_ERROR"})
    message = fields.String()
    details = fields.Raw(allow_none=True, metadata={"description": "per-field reasons, or null"})


class ErrorSchema(Schema):
    """Every error response: ``{"error": {"code", "message", "details"}}`` (CONTRACT §5)."""

    error = fields.Nested(ErrorDetailSchema)
