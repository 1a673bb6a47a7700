"""The tariff engine: reprice regions from their newest load, time of use and overrides.

The price history in ``tariffs`` is the source of truth: each region has at most one open
interval, its current price. The rule that picks the next price is
``segs.domain.tariffs.next_price``; this module feeds it and writes what it decides.

Concurrency: a recalculation locks the region's row first (``SELECT ... FOR NO KEY UPDATE``), so
two engines (after a flush and from beat) cannot both close the same open interval; the
exclusion constraint on ``tariffs`` is the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain import tariffs as rules_domain
from segs.domain.tariffs import CurrentTariff
from segs.domain.tariffs import Override
from segs.models import Region
from segs.models import Tariff
from segs.models import TariffOverride
from segs.services.pricing.overrides import in_force
from segs.services.pricing.rules import pricing_rules


@dataclass(frozen=True)
class PublishedChange:
    """A price change that was written to the history, to announce to customers."""

    region: str
    previous_price: Decimal | None
    price: Decimal
    effective_from: datetime
    reason: str
    triggered_by: str

    @property
    def worth_announcing(self) -> bool:
        """False for a new interval at the same price (the first measured load re-basing an
        unchanged price): it changes nothing a customer pays."""
        return not (self.triggered_by == "load" and self.previous_price == self.price)


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
    current = None if current_row is None else _as_current(session, current_row)
    overrides = [
        _as_override(row)
        for row in session.scalars(select(TariffOverride).where(*in_force(region.name, now)))
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


def _as_current(session: Session, row: Tariff) -> CurrentTariff:
    """The open interval as the engine reads it, with the end of the override it came from
    (if that override is still live)."""
    override_end = None
    if row.override_id is not None:
        source = session.get(TariffOverride, row.override_id)
        if source is not None and source.removed_at is None:
            override_end = source.valid_to
    return CurrentTariff(
        row.price_per_kwh,
        row.effective_from,
        row.override_id,
        row.load_multiplier,
        row.tou_period,
        override_end,
        unmeasured=row.override_id is None and row.load_percentage is None,
        load_percent=row.load_percentage,
    )


def _as_override(row: TariffOverride) -> Override:
    return Override(row.id, row.price_per_kwh, row.valid_from, row.valid_to, row.reason)
