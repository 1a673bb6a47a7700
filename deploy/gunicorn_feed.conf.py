"""Gunicorn settings for the SEGS feed process (the live feed's event streams).

Used as ``gunicorn "segs.web.feed_app:create_feed_app()" --config deploy/gunicorn_feed.conf.py``.
Threads, not processes: an open stream mostly waits on Redis, so each one holds a thread of one
process. There are a few more threads than SEGS_FEED_MAX_STREAMS, so a connection over the cap
still gets its 429 at once instead of waiting for a stream to end.
"""

from __future__ import annotations

import os

from segs.config import get_settings

bind = [os.environ.get("SEGS_FEED_BIND") or "0.0.0.0:8001"]  # noqa: S104
workers = 1
worker_class = "gthread"
threads = get_settings().feed_max_streams + 16
# A stream lasts at most SEGS_FEED_MAX_S; gthread workers heartbeat outside request threads.
timeout = 30
keepalive = 5
