"""The live feed: Server-Sent Events, authenticated by the API's JWT.

A browser's EventSource cannot set headers, so the access token may also come as
``?access_token=``. A connection lasts at most SEGS_FEED_MAX_S (the API runs sync workers, one
per open connection); EventSource reconnects by itself and sends Last-Event-ID, from which the
stream resumes without losing events. Comment lines keep idle connections open.

Not in the OpenAPI document: an endless text/event-stream does not fit it (README describes it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import request
from flask_jwt_extended import verify_jwt_in_request

from segs.config import Settings
from segs.services.feed import FeedReader
from segs.services.feed import audience_feeds
from segs.web.security import current_account

bp = Blueprint("feed", __name__, url_prefix="/api/v1")


@bp.get("/feed")
def live_feed() -> Response:
    """Alert transitions (staff: all; customers: their meters') and their region's tariffs."""
    verify_jwt_in_request(locations=["headers", "query_string"])
    account = current_account()
    settings: Settings = current_app.config["SEGS_SETTINGS"]
    feeds = audience_feeds(account.id, account.role, account.region)
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=settings.feed_heartbeat_s + 5, socket_connect_timeout=2
    )
    reader = FeedReader(client, feeds, request.headers.get("Last-Event-ID"))
    return Response(
        _events(client, reader, settings),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _events(client: redis.Redis, reader: FeedReader, settings: Settings) -> Iterator[str]:
    deadline = time.monotonic() + settings.feed_max_s
    try:
        yield f"retry: 1000\nid: {reader.cursor}\nevent: ready\ndata: {{}}\n\n"
        while (remaining := deadline - time.monotonic()) > 0:
            wait_ms = max(1, int(min(settings.feed_heartbeat_s, remaining) * 1000))
            events = reader.read(wait_ms)
            if not events:
                yield ": keep-alive\n\n"
            for event in events:
                yield f"id: {event.cursor}\nevent: {event.name}\ndata: {event.data}\n\n"
    finally:
        client.close()
