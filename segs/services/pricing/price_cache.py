"""The current price of a region, served from Redis (``segs:tariff:current:<region>``).

The cache holds what the history says: it is written after every committed change and on a
cache miss, so a lost cache only costs one query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import redis
from sqlalchemy.orm import Session

from segs.models import Tariff
from segs.services.pricing.engine import open_tariff
from segs.services.pricing.rules import get_region

CACHE_PREFIX = "segs:tariff:current:"


@dataclass(frozen=True)
class CurrentPrice:
    region: str
    price_per_kwh: Decimal
    effective_from: datetime
    reason: str
    triggered_by: str
    tou_period: str | None
    load_percentage: Decimal | None
    tariff_id: int | None


def _view(row: Tariff) -> CurrentPrice:
    return CurrentPrice(
        row.region,
        row.price_per_kwh,
        row.effective_from,
        row.reason,
        row.triggered_by,
        row.tou_period,
        row.load_percentage,
        row.id,
    )


def _encode(price: CurrentPrice) -> str:
    return json.dumps(
        {
            "region": price.region,
            "price": str(price.price_per_kwh),
            "from": price.effective_from.isoformat(),
            "reason": price.reason,
            "trigger": price.triggered_by,
            "tou": price.tou_period,
            "load": None if price.load_percentage is None else str(price.load_percentage),
            "id": price.tariff_id,
        }
    )


def _decode(raw: bytes) -> CurrentPrice:
    data = json.loads(raw)
    return CurrentPrice(
        data["region"],
        Decimal(data["price"]),
        datetime.fromisoformat(data["from"]),
        data["reason"],
        data["trigger"],
        data["tou"],
        None if data["load"] is None else Decimal(data["load"]),
        data["id"],
    )


def cache_current(session: Session, client: redis.Redis, regions: list[str], ttl_s: int) -> None:
    """Write the committed current price of *regions* to the cache (call after the commit)."""
    for name in regions:
        row = open_tariff(session, name)
        if row is None:
            client.delete(CACHE_PREFIX + name)
        else:
            client.set(CACHE_PREFIX + name, _encode(_view(row)), ex=ttl_s)


def current_price(session: Session, client: redis.Redis, region: str, ttl_s: int) -> CurrentPrice:
    """The region's price now: from the cache, else from the history (then cached).

    A region the engine has not priced yet is at its base price.
    """
    cached = client.get(CACHE_PREFIX + region)
    if cached is not None:
        return _decode(cached)
    found = get_region(session, region)
    row = open_tariff(session, region)
    if row is None:
        return CurrentPrice(
            region,
            found.base_price_per_kwh,
            found.created_at,
            "base price",
            "base",
            None,
            None,
            None,
        )
    price = _view(row)
    client.set(CACHE_PREFIX + region, _encode(price), ex=ttl_s)
    return price
