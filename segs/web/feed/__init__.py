"""The live feed: tickets (on the API) and the event stream (on the feed process)."""

from segs.web.feed.routes import bp
from segs.web.feed.stream import bp as stream_bp

__all__ = ["bp", "stream_bp"]
