"""What a meter measured: latest reading, history (JSON, CSV), totals per period, day, month."""

from segs.web.meter_data.routes import bp

__all__ = ["bp"]
