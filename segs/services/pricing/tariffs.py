"""The tariff engine and tariff reads: price history, the Redis cache, overrides, analytics.

The database is the source of truth. The current price of each region is cached in Redis
(``segs:tariff:current:<region>``) after every change and on a cache miss; a lost cache only
costs one query.

Concurrency: a recalculation locks the region's row first (``SELECT ... FOR NO KEY UPDATE``), so two
engines (after a flush and from beat) cannot both close the same open interval; the exclusion
constraint on ``tariffs`` is the last line of defence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segs.domain import tariffs as rules_domain
from segs.domain.billing import EnergyUse
from segs.domain.billing import compute_invoice
from segs.domain.tariffs import CurrentTariff
from segs.domain.tariffs import Override
from segs.domain.tariffs import PricingRules
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Region
from segs.models import Tariff
from segs.models import TariffOverride
from segs.models.base import BIGINT_MAX
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page

CACHE_PREFIX = "segs:tariff:current:"
MAX_HISTORY_SPAN = timedelta(days=92)


@dataclass(frozen=True)
class PublishedChange:
    """A price change that was written to the history, to announce to customers."""

    region: str
    previous_price: Decimal | None
    price: Decimal
    effective_from: datetime
    reason: str
    triggered_by: str


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


def pricing_rules(region: Region) -> PricingRules:
    return PricingRules(
        region.name,
        region.timezone,
        region.base_price_per_kwh,
        rules_domain.parse_load_bands(region.load_bands),
        rules_domain.parse_tou(region.tou_schedule, region.tou_multipliers),
    )


def get_region(session: Session, name: str) -> Region:
    region = session.get(Region, name)
    if region is None:
        raise NotFoundError(f"region {name} not found")
    return region


def latest_load(session: Session, region: str) -> Decimal | None:
    """The load of the region's newest flushed 1-minute window."""
    return session.scalar(
        text(
            "SELECT load_percentage FROM regional_aggregates_1m WHERE region = :region "
            "ORDER BY window_start DESC LIMIT 1"
        ),
        {"region": region},
    )


def open_tariff(session: Session, region: str) -> Tariff | None:
    return session.scalar(
        select(Tariff).where(Tariff.region == region, Tariff.effective_to.is_(None))
    )


def recalculate_prices(
    session: Session,
    regions: list[str] | None,
    now: datetime,
    threshold: Decimal,
    band_hysteresis: Decimal,
) -> list[PublishedChange]:
    """Run the engine for *regions* (all if None) at *now*; return the changes it published."""
    # NO KEY UPDATE: the flush and account writes only take KEY SHARE locks on regions (FKs).
    statement = select(Region).order_by(Region.name).with_for_update(key_share=True)
    if regions is not None:
        statement = statement.where(Region.name.in_(regions))
    changes = []
    for region in session.scalars(statement).all():
        change = _recalculate_region(session, region, now, threshold, band_hysteresis)
        if change is not None:
            changes.append(change)
    return changes


def _recalculate_region(
    session: Session, region: Region, now: datetime, threshold: Decimal, band_hysteresis: Decimal
) -> PublishedChange | None:
    current_row = open_tariff(session, region.name)
    current = None
    if current_row is not None:
        override_end = None
        if current_row.override_id is not None:
            source = session.get(TariffOverride, current_row.override_id)
            if source is not None and source.removed_at is None:
                override_end = source.valid_to
        current = CurrentTariff(
            current_row.price_per_kwh,
            current_row.effective_from,
            current_row.override_id,
            current_row.load_multiplier,
            current_row.tou_period,
            override_end,
            unmeasured=current_row.override_id is None and current_row.load_percentage is None,
            load_percent=current_row.load_percentage,
        )
    overrides = [
        _as_override(row)
        for row in session.scalars(
            select(TariffOverride).where(
                TariffOverride.region == region.name,
                TariffOverride.removed_at.is_(None),
                TariffOverride.valid_from <= now,
                TariffOverride.valid_to > now,
            )
        )
    ]
    change = rules_domain.next_price(
        current,
        pricing_rules(region),
        latest_load(session, region.name),
        overrides,
        now,
        threshold,
        band_hysteresis=band_hysteresis,
    )
    if change is None:
        return None
    if current_row is not None:
        current_row.effective_to = change.effective_from
        session.flush()
    session.add(
        Tariff(
            region=region.name,
            price_per_kwh=change.price,
            effective_from=change.effective_from,
            reason=change.reason,
            triggered_by=change.triggered_by,
            load_percentage=change.load_percent,
            load_multiplier=change.load_multiplier,
            tou_period=change.tou_period,
            override_id=change.override_id,
        )
    )
    session.flush()
    return PublishedChange(
        region.name,
        current_row.price_per_kwh if current_row is not None else None,
        change.price,
        change.effective_from,
        change.reason,
        change.triggered_by,
    )


def _as_override(row: TariffOverride) -> Override:
    return Override(row.id, row.price_per_kwh, row.valid_from, row.valid_to, row.reason)


# --------------------------------------------------------------------------- current price


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
class CostEstimate:
    region: str
    kwh: Decimal
    price_per_kwh: Decimal
    energy_minor: int
    tax_rate: Decimal
    tax_minor: int
    total_minor: int


def estimate_cost(price: CurrentPrice, kwh: Decimal, tax_rate: Decimal) -> CostEstimate:
    """What *kwh* would cost at the current price, billed the way an invoice line is."""
    amounts = compute_invoice(
        [EnergyUse(price.tariff_id, "current", price.price_per_kwh, kwh, price.effective_from)],
        None,
        None,
        tax_rate,
    )
    return CostEstimate(
        price.region,
        kwh,
        price.price_per_kwh,
        amounts.energy_minor,
        tax_rate,
        amounts.tax_minor,
        amounts.total_minor,
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
        override_id = session.scalar(
            select(TariffOverride.id).where(
                TariffOverride.region == region.name,
                TariffOverride.removed_at.is_(None),
                TariffOverride.valid_from <= now,
                TariffOverride.valid_to > now,
            )
        )
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


# --------------------------------------------------------------------------- region rules

RULE_FIELDS = (
    "base_price_per_kwh",
    "load_bands",
    "tou_schedule",
    "tou_multipliers",
    "demand_charge_per_kw",
)


def update_rules(
    session: Session, actor: Actor, region_name: str, changes: dict[str, Any]
) -> Region:
    """Change a region's pricing rules; they are checked as the engine will read them."""
    region = get_region(session, region_name)
    before = {name: _jsonable(getattr(region, name)) for name in RULE_FIELDS}
    for name in RULE_FIELDS:
        if name in changes:
            setattr(region, name, changes[name])
    try:
        pricing_rules(region)
    except rules_domain.TariffRuleError as exc:
        field_name = str(exc).split(":")[0]
        raise InvalidInputError(str(exc), {field_name: [str(exc)]}) from exc
    session.flush()
    session.refresh(region)
    after = {name: _jsonable(getattr(region, name)) for name in RULE_FIELDS}
    record_audit(
        session, actor, "tariff_rules.update", "region", region.name, {"from": before, "to": after}
    )
    return region


def _jsonable(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


# --------------------------------------------------------------------------- overrides


def list_overrides(
    session: Session, region: str | None, include_removed: bool, *, page: int, page_size: int
) -> Page[TariffOverride]:
    statement = select(TariffOverride)
    if region is not None:
        statement = statement.where(TariffOverride.region == region)
    if not include_removed:
        statement = statement.where(TariffOverride.removed_at.is_(None))
    statement = statement.order_by(TariffOverride.valid_from.desc(), TariffOverride.id.desc())
    items, total = fetch_page(session, statement, page=page, page_size=page_size)
    return Page(items, total)


def get_override(session: Session, override_id: int) -> TariffOverride:
    # Ids beyond bigint are simply not there (PostgreSQL would refuse to compare them).
    row = session.get(TariffOverride, override_id) if 0 < override_id <= BIGINT_MAX else None
    if row is None:
        raise NotFoundError(f"override {override_id} not found")
    return row


def _check_window(valid_from: datetime, valid_to: datetime, now: datetime) -> None:
    if valid_to <= valid_from:
        raise InvalidInputError("validTo must be after validFrom", {"validTo": ["after validFrom"]})
    if valid_to <= now:
        raise InvalidInputError("validTo must be in the future", {"validTo": ["in the future"]})


def _flush_override(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError("another override of this region overlaps that window") from exc


def create_override(
    session: Session,
    actor: Actor,
    region: str,
    price: Decimal,
    valid_from: datetime,
    valid_to: datetime,
    reason: str,
    now: datetime,
) -> TariffOverride:
    get_region(session, region)
    _check_window(valid_from, valid_to, now)
    row = TariffOverride(
        region=region,
        price_per_kwh=price,
        valid_from=valid_from,
        valid_to=valid_to,
        reason=reason,
        created_by=actor.id,
    )
    session.add(row)
    _flush_override(session)
    record_audit(session, actor, "tariff_override.create", "tariff_override", row.id, _details(row))
    return row


def update_override(
    session: Session, actor: Actor, override_id: int, changes: dict[str, Any], now: datetime
) -> TariffOverride:
    row = get_override(session, override_id)
    if row.removed_at is not None:
        raise ConflictError(f"override {override_id} was removed")
    for name in ("price_per_kwh", "valid_from", "valid_to", "reason"):
        if name in changes:
            setattr(row, name, changes[name])
    _check_window(row.valid_from, row.valid_to, now)
    _flush_override(session)
    record_audit(session, actor, "tariff_override.update", "tariff_override", row.id, _details(row))
    return row


def remove_override(
    session: Session, actor: Actor, override_id: int, now: datetime
) -> TariffOverride:
    """Mark the override removed; the price history keeps what it already recorded."""
    get_override(session, override_id)
    result = session.execute(
        update(TariffOverride)
        .where(TariffOverride.id == override_id, TariffOverride.removed_at.is_(None))
        .values(removed_at=now, removed_by=actor.id)
        .returning(TariffOverride.id)
    )
    if result.scalar() is None:
        raise ConflictError(f"override {override_id} was already removed")
    row = get_override(session, override_id)
    session.refresh(row)
    record_audit(session, actor, "tariff_override.remove", "tariff_override", row.id, _details(row))
    return row


def _details(row: TariffOverride) -> dict[str, Any]:
    return {
        "region": row.region,
        "pricePerKwh": str(row.price_per_kwh),
        "validFrom": row.valid_from.astimezone(UTC).isoformat(),
        "validTo": row.valid_to.astimezone(UTC).isoformat(),
        "reason": row.reason,
    }
