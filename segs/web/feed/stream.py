"""The live feed: Server-Sent Events, served by the feed process (segs.web.feed_app), never by
the API's sync workers, which an open stream would hold for its whole life.

Authentication: ``Authorization: Bearer <accessToken>``, or for a browser's EventSource (which
cannot set headers) ``?ticket=`` from ``POST /api/v1/feed/tickets`` (single use, short-lived).
A bearer token is never read from the URL, where access logs would keep it.

Bounds: SEGS_FEED_MAX_STREAMS_PER_ACCOUNT and SEGS_FEED_MAX_STREAMS open streams (429 beyond),
connections limited to SEGS_FEED_CONNECT_RATE per account (per address with a ticket), each at
most SEGS_FEED_MAX_S long; EventSource reconnects by itself and sends Last-Event-ID, from which
the stream resumes without losing events. Comment lines keep idle connections open.

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
from segs.db import session_scope
from segs.errors import AuthenticationError
from segs.errors import TooManyRequestsError
from segs.models import User
from segs.redis_client import cluster_mode
from segs.redis_client import connect
from segs.redis_client import get_redis
from segs.services.alerts import feed_access
from segs.services.alerts.feed import FeedReader
from segs.services.alerts.feed import audience_feeds
from segs.web.security import current_account

bp = Blueprint("feed", __name__, url_prefix="/api/v1")


def _account_of_ticket(ticket: str) -> User:
    account_id = feed_access.redeem_ticket(get_redis(), ticket)
    account = None
    if account_id is not None:
        with session_scope() as session:
            account = session.get(User, account_id)
    if account is None or not account.is_usable:
        raise AuthenticationError(
            "the feed ticket is unknown, used or expired; ask for a new one",
            code="TICKET_INVALID",
        )
    return account


@bp.get("/feed")
def live_feed() -> Response:
    """Alert transitions (staff: all; customers: their meters') and their region's tariffs."""
    ticket = request.args.get("ticket")
    if ticket is not None:
        account = _account_of_ticket(ticket)
    else:
        verify_jwt_in_request(locations=["headers"])
        account = current_account()
    settings: Settings = current_app.config["SEGS_SETTINGS"]
    lease_ms = int((settings.feed_heartbeat_s * 2 + 10) * 1000)
    slot = feed_access.take_slot(
        get_redis(),
        account.id,
        now_ms=int(time.time() * 1000),
        lease_ms=lease_ms,
        max_streams=settings.feed_max_streams,
        max_per_account=settings.feed_max_streams_per_account,
    )
    if not isinstance(slot, feed_access.StreamSlot):
        which = "this account's" if slot == feed_access.ACCOUNT_FULL else "the server's"
        raise TooManyRequestsError(
            f"{which} live-feed streams are all open; close one or try again later",
            int(settings.feed_max_s) + 1,
        )
    feeds = audience_feeds(account.id, account.role, account.region)
    client = connect(
        settings.redis_url,
        cluster_mode(settings.redis_url, settings.redis_cluster),
        socket_timeout=settings.feed_heartbeat_s + 5,
        socket_connect_timeout=2,
    )
    try:
        reader = FeedReader(client, feeds, request.headers.get("Last-Event-ID"))
    except redis.RedisError:
        slot.release()
        client.close()
        raise
    return Response(
        _events(client, reader, slot, settings),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _events(
    client: redis.Redis, reader: FeedReader, slot: feed_access.StreamSlot, settings: Settings
) -> Iterator[str]:
    deadline = time.monotonic() + settings.feed_max_s
    try:
        yield f"retry: 1000\nid: {reader.cursor}\nevent: ready\ndata: {{}}\n\n"
        while (remaining := deadline - time.monotonic()) > 0:
            wait_ms = max(1, int(min(settings.feed_heartbeat_s, remaining) * 1000))
            events = reader.read(wait_ms)
            slot.renew(int(time.time() * 1000))
            if not events:
                yield ": keep-alive\n\n"
            for event in events:
                yield f"id: {event.cursor}\nevent: {event.name}\ndata: {event.data}\n\n"
    finally:
        slot.release()
        client.close()
