"""The live feed: events on Redis streams, one per audience, read by the API's SSE endpoint.

Streams rather than pub/sub, so a browser that reconnects (EventSource does so by itself, with
the Last-Event-ID header) gets what it missed in between. Each stream keeps its newest
FEED_LENGTH events, and each event is published once (``segs:{feed}:published:<subject>``).

- ``segs:{feed}:staff``            every alert transition and every tariff change
- ``segs:{feed}:user:<user_id>``   transitions of alerts on that account's meters
- ``segs:{feed}:region:<region>``  tariff changes of the region

An event goes to its streams in one step, and a reader reads its streams in one XREAD, so the
feed's keys share one hash tag (segs.services.shared.keyspace).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from segs.domain.access import STAFF
from segs.services.shared.keyspace import FEED_TAG
from segs.services.shared.lua import LuaScript

STAFF_FEED = f"segs:{FEED_TAG}:staff"
FEED_LENGTH = 1000
_START = "0-0"


def user_feed(user_id: uuid.UUID | str) -> str:
    return f"segs:{FEED_TAG}:user:{user_id}"


def region_feed(region: str) -> str:
    return f"segs:{FEED_TAG}:region:{region}"


def audience_feeds(account_id: uuid.UUID, role: str, region: str | None) -> list[str]:
    """The streams one account reads: staff see everything, customers their own."""
    if role in STAFF:
        return [STAFF_FEED]
    feeds = [user_feed(account_id)]
    if region is not None:
        feeds.append(region_feed(region))
    return feeds


_PUBLISH_ONCE = LuaScript(__package__, "feed.publish_once.lua")
PUBLISHED_PREFIX = f"segs:{FEED_TAG}:published:"
# Longer than any redelivery of a dispatch could take.
PUBLISHED_TTL_S = 7 * 24 * 3600


def publish(client: redis.Redis, subject: str, events: dict[str, dict[str, Any]]) -> bool:
    """Put the event about *subject* on each stream of *events* (stream -> the event as that
    audience sees it), unless it was put there before: a dispatch that runs again (redelivered
    after a crash) must not show it twice. The mark and the events are written in one atomic
    step, so a crash leaves both or neither."""
    feeds = list(events)
    published = _PUBLISH_ONCE.call(
        client,
        keys={"published": PUBLISHED_PREFIX + subject, "streams": feeds},
        args={
            "mark_ttl": PUBLISHED_TTL_S,
            "max_length": FEED_LENGTH,
            "data": [json.dumps(events[feed]) for feed in feeds],
        },
    )
    return bool(published)


@dataclass(frozen=True)
class FeedEvent:
    cursor: str  # the SSE event id: where to resume after this event
    name: str
    data: str


class FeedReader:
    """Reads a set of streams from a cursor: the last id seen on each, joined by commas."""

    def __init__(self, client: redis.Redis, feeds: list[str], cursor: str | None) -> None:
        self._redis = client
        self._feeds = feeds
        self._positions = self._parse(cursor) or self._newest()

    def _parse(self, cursor: str | None) -> dict[str, str] | None:
        """A Last-Event-ID from an earlier connection, if it fits these streams."""
        if not cursor:
            return None
        ids = cursor.split(",")
        if len(ids) != len(self._feeds) or not all(_is_stream_id(item) for item in ids):
            return None
        return dict(zip(self._feeds, ids, strict=True))

    def _newest(self) -> dict[str, str]:
        positions = {}
        for feed in self._feeds:
            newest = self._redis.xrevrange(feed, count=1)
            positions[feed] = newest[0][0].decode() if newest else _START
        return positions

    def read(self, block_ms: int) -> list[FeedEvent]:
        """Events after the cursor, waiting up to *block_ms* for the first one."""
        replies = self._redis.xread(dict(self._positions), count=100, block=block_ms)
        events = []
        for feed, entries in replies or []:
            name = feed.decode() if isinstance(feed, bytes) else feed
            for entry_id, fields in entries:
                self._positions[name] = entry_id.decode()
                data = fields[b"data"].decode()
                events.append(FeedEvent(self.cursor, json.loads(data)["event"], data))
        return events

    @property
    def cursor(self) -> str:
        return ",".join(self._positions[feed] for feed in self._feeds)


def _is_stream_id(text: str) -> bool:
    head, _, tail = text.partition("-")
    return head.isdigit() and tail.isdigit()
