"""Feed tickets on the wire."""

from __future__ import annotations

from marshmallow import fields

from segs.web.schemas import CamelSchema


class FeedTicketSchema(CamelSchema):
    ticket = fields.String(
        metadata={"description": "open the feed with GET /api/v1/feed?ticket=<ticket>, once"}
    )
    expires_in = fields.Integer(metadata={"description": "seconds the ticket stays valid"})
