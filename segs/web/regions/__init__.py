"""Grid regions: the list, and for operators each region's totals, top consumers and load."""

from segs.web.regions.routes import bp

__all__ = ["bp"]
