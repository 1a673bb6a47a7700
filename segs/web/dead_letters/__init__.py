"""Dead letters: reading batches set aside after failing for a reason other than an outage."""

from segs.web.dead_letters.routes import bp

__all__ = ["bp"]
