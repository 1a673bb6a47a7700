"""Billing math: local-time months, each 15-minute interval at its own tariff, exact amounts.

Amounts are integers in the currency's smallest unit (paise for INR). Each line item is
``energy x unit price`` rounded half-up to the smallest unit once; the tax is the tax rate of the
sum of the rounded lines, rounded the same way. Nothing is ever averaged: an interval's energy
is priced at the tariff in effect when the interval began.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal
from zoneinfo import ZoneInfo

from segs.domain.tariffs import TouGrid

INTERVAL = timedelta(minutes=15)
MINOR_UNITS = 100  # INR: 100 paise to the rupee
CURRENCY = "INR"


class PeriodError(ValueError):
    """A billing period is not a valid YYYY-MM month."""


def to_minor(amount: Decimal) -> int:
    """An amount in currency units to the smallest unit, half-up (amounts are never negative)."""
    return int((amount * MINOR_UNITS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_period(period: str) -> tuple[int, int]:
    try:
        year_text, month_text = period.split("-")
        year, month = int(year_text), int(month_text)
    except ValueError as exc:
        raise PeriodError("period must be YYYY-MM") from exc
    if len(year_text) != 4 or len(month_text) != 2 or not 1 <= month <= 12:
        raise PeriodError("period must be YYYY-MM")
    if not 2000 <= year <= 2100:
        raise PeriodError("period must be a month from 2000-01 to 2100-12")
    return year, month


def month_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a calendar month on the region's local clock (DST-aware)."""
    year, month = parse_period(period)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def period_of(instant: datetime, zone: ZoneInfo) -> str:
    """The YYYY-MM month that holds *instant* on the region's local clock."""
    return instant.astimezone(zone).strftime("%Y-%m")


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def interval_starts(start: datetime, end: datetime) -> list[datetime]:
    """Every 15-minute window start in [start, end); *start* must lie on a window boundary."""
    starts = []
    moment = start
    while moment < end:
        starts.append(moment)
        moment += INTERVAL
    return starts


@dataclass(frozen=True)
class TariffInterval:
    """One interval of the price history (effective_to None: still open)."""

    id: int
    price: Decimal
    effective_from: datetime
    effective_to: datetime | None


@dataclass(frozen=True)
class Slot:
    """What a 15-minute interval costs per kWh and under which line it is billed."""

    window_start: datetime
    tariff_id: int | None
    price: Decimal
    tou_period: str


def slot_plan(
    history: Sequence[TariffInterval],
    base_price: Decimal,
    grid: TouGrid,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[Slot]:
    """The tariff and time-of-use period of every 15-minute interval in [start, end).

    *history* is sorted by effective_from and does not overlap. Before the first interval a
    region has no history yet, so its base price applies (tariff_id None).
    """
    froms = [item.effective_from for item in history]
    plan = []
    for window_start in interval_starts(start, end):
        index = bisect.bisect_right(froms, window_start) - 1
        tariff = history[index] if index >= 0 else None
        if tariff is not None and (
            tariff.effective_to is None or window_start < tariff.effective_to
        ):
            plan.append(
                Slot(window_start, tariff.id, tariff.price, grid.period_at(window_start, zone))
            )
        else:
            plan.append(Slot(window_start, None, base_price, grid.period_at(window_start, zone)))
    return plan


@dataclass(frozen=True)
class EnergyUse:
    """Energy billed under one (tariff, time-of-use period) pair: a line of the invoice."""

    tariff_id: int | None
    tou_period: str
    unit_price: Decimal
    energy_kwh: Decimal
    # Orders the lines: the first interval of the period priced under this pair.
    first_interval: datetime


@dataclass(frozen=True)
class LineItem:
    kind: str  # energy | demand
    description: str
    tariff_id: int | None
    tou_period: str | None
    quantity: Decimal
    unit_price: Decimal
    amount_minor: int


@dataclass(frozen=True)
class InvoiceAmounts:
    lines: tuple[LineItem, ...]
    energy_kwh: Decimal
    energy_minor: int
    demand_kw: Decimal | None
    demand_minor: int
    tax_rate: Decimal
    tax_minor: int
    total_minor: int


def compute_invoice(
    uses: Sequence[EnergyUse],
    demand_kw: Decimal | None,
    demand_rate: Decimal | None,
    tax_rate: Decimal,
) -> InvoiceAmounts:
    """Line items in time order, the demand charge (when the region has a rate), tax, total."""
    lines = []
    for use in sorted(uses, key=lambda item: (item.first_interval, item.tou_period)):
        tariff = "base price" if use.tariff_id is None else f"tariff #{use.tariff_id}"
        lines.append(
            LineItem(
                "energy",
                f"{use.tou_period.replace('_', '-')} energy at {tariff}",
                use.tariff_id,
                use.tou_period,
                use.energy_kwh,
                use.unit_price,
                to_minor(use.energy_kwh * use.unit_price),
            )
        )
    energy_minor = sum(line.amount_minor for line in lines)
    demand_minor = 0
    if demand_rate is not None and demand_kw is not None:
        demand_minor = to_minor(demand_kw * demand_rate)
        lines.append(
            LineItem(
                "demand",
                "demand: highest 15-minute average kW",
                None,
                None,
                demand_kw,
                demand_rate,
                demand_minor,
            )
        )
    subtotal = energy_minor + demand_minor
    tax_minor = int((subtotal * tax_rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return InvoiceAmounts(
        tuple(lines),
        sum((use.energy_kwh for use in uses), Decimal(0)),
        energy_minor,
        demand_kw,
        demand_minor,
        tax_rate,
        tax_minor,
        subtotal + tax_minor,
    )


def month_to_date_estimate(so_far_minor: int, elapsed: timedelta, period: timedelta) -> int:
    """Project the amount so far over the whole period at the same pace, half-up."""
    if elapsed <= timedelta(0):
        return 0
    projected = (
        Decimal(so_far_minor)
        * Decimal(period / timedelta(seconds=1))
        / Decimal(elapsed / timedelta(seconds=1))
    )
    return int(projected.quantize(Decimal(1), rounding=ROUND_HALF_UP))
