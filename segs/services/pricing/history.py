"""Reads of the price history: the intervals over a range, and the operators' overview.

The overview's analytics (changes, range, time-weighted average price) are computed by
PostgreSQL over the intervals clipped to the window, one query per region.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import redis
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.errors import InvalidInputError
from segs.models import Region
from segs.models import Tariff
from segs.models import TariffOverride
from segs.services.pricing.engine import latest_load
from segs.services.pricing.overrides import in_force
from segs.services.pricing.price_cache import CurrentPrice
from segs.services.pricing.price_cache import current_price
from segs.services.pricing.rules import get_region

MAX_HISTORY_SPAN = timedelta(days=92)


def history(session: Session, region: str, start: datetime, end: datetime) -> list[Tariff]:
    """History intervals that overlap [start, end), oldest first."""
    get_region(session, region)
    if end <= start:
        raise InvalidInputError("end must be after start", {"end": ["must be after start"]})
    if end - start > MAX_HISTORY_SPAN:
        raise InvalidInputError(
            "the range is too long", {"end": [f"at most {MAX_HISTORY_SPAN.days} days after start"]}
        )
    return list(
        session.scalars(
            select(Tariff)
            .where(
                Tariff.region == region,
                Tariff.effective_from < end,
                (Tariff.effective_to.is_(None)) | (Tariff.effective_to > start),
            )
            .order_by(Tariff.effective_from)
        )
    )


@dataclass(frozen=True)
class RegionTariffStats:
    region: str
    base_price_per_kwh: Decimal
    current: CurrentPrice
    load_percentage: Decimal | None
    changes: int
    min_price: Decimal | None
    max_price: Decimal | None
    time_weighted_avg_price: Decimal | None
    active_override_id: int | None


_WINDOW_STATS = text(
    """
    SELECT count(*) FILTER (WHERE effective_from >= :start),
           min(price_per_kwh), max(price_per_kwh),
           round(sum(price_per_kwh * extract(epoch FROM
                    least(coalesce(effective_to, :end), :end) - greatest(effective_from, :start)))
                 / nullif(sum(extract(epoch FROM
                    least(coalesce(effective_to, :end), :end) - greatest(effective_from, :start))),
                          0), 6)
    FROM tariffs
    WHERE region = :region AND effective_from < :end
      AND (effective_to IS NULL OR effective_to > :start)
    """
)


def overview(
    session: Session, client: redis.Redis, now: datetime, span: timedelta, ttl_s: int
) -> list[RegionTariffStats]:
    """Every region's price now and its price analytics over the last *span*."""
    stats = []
    for region in session.scalars(select(Region).order_by(Region.name)):
        changes, low, high, average = session.execute(
            _WINDOW_STATS, {"region": region.name, "start": now - span, "end": now}
        ).one()
        override_id = session.scalar(select(TariffOverride.id).where(*in_force(region.name, now)))
        stats.append(
            RegionTariffStats(
                region.name,
                region.base_price_per_kwh,
                current_price(session, client, region.name, ttl_s),
                latest_load(session, region.name),
                int(changes),
                low,
                high,
                average,
                override_id,
            )
        )
    return stats
