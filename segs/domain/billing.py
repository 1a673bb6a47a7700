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

# The invoice lifecycle, written once: each status and the statuses it may become. Beat turns
# pending invoices overdue after their due date; an operator resolves a dispute by upholding the
# bill (resolved, payable again) or voiding it (cancelled). Paid and cancelled are final.
PENDING = "pending"
PAID = "paid"
OVERDUE = "overdue"
DISPUTED = "disputed"
RESOLVED = "resolved"
CANCELLED = "cancelled"
INVOICE_STATUSES = (PENDING, PAID, OVERDUE, DISPUTED, RESOLVED, CANCELLED)
INVOICE_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PAID, OVERDUE, DISPUTED, CANCELLED}),
    OVERDUE: frozenset({PAID, DISPUTED, CANCELLED}),
    DISPUTED: frozenset({RESOLVED, CANCELLED}),
    RESOLVED: frozenset({PAID}),
    PAID: frozenset(),
    CANCELLED: frozenset(),
}


# A payment started with a provider is pending until the provider's callback says it succeeded
# or failed.
SUCCEEDED = "succeeded"
FAILED = "failed"
PAYMENT_STATUSES = (PENDING, SUCCEEDED, FAILED)


class InvoiceTransitionError(ValueError):
    """An invoice cannot move from its status to the one asked for."""

    def __init__(self, status: str, target: str) -> None:
        super().__init__(f"a {status} invoice cannot be {target}")
        self.status = status
        self.allowed = statuses_that_may_become(target)


def statuses_that_may_become(target: str) -> tuple[str, ...]:
    """The statuses an invoice may be in to move to *target*, in INVOICE_STATUSES order."""
    return tuple(status for status in INVOICE_STATUSES if target in INVOICE_TRANSITIONS[status])


def may_become(status: str, target: str) -> bool:
    return target in INVOICE_TRANSITIONS.get(status, frozenset())


def check_transition(status: str, target: str) -> None:
    """Raise InvoiceTransitionError unless an invoice in *status* may move to *target*."""
    if not may_become(status, target):
        raise InvoiceTransitionError(status, target)


class PeriodError(ValueError):
    """A billing period is not a valid YYYY-MM month."""


def to_minor(amount: Decimal) -> int:
    """An amount in currency units to the smallest unit, half-up (amounts are never negative)."""
    return int((amount * MINOR_UNITS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tax_on(subtotal_minor: int, tax_rate: Decimal) -> int:
    """The tax on an amount in the smallest unit, rounded half-up once."""
    return int((subtotal_minor * tax_rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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
    tax_minor = tax_on(subtotal, tax_rate)
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


# A projection needs a whole day of data: from fewer hours it mostly reflects the time of day
# (and its time-of-use price), so the to-date amount is given alone.
MIN_PROJECTION_COVERAGE = timedelta(hours=24)
PROJECTION_METHOD = "pro_rata_covered_hours"


def _half_up_ratio(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half-up, in integers (both non-negative, denominator > 0)."""
    return (2 * numerator + denominator) // (2 * denominator)


def _hours(intervals: int) -> Decimal:
    """A number of intervals in hours: exact, as 0.25 h steps, to 2 places."""
    minutes = intervals * (INTERVAL // timedelta(minutes=1))
    return (Decimal(minutes) / 60).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class CycleProjection:
    """How a period's bill in progress is projected to the period's end, and its result.

    Counts are 15-minute intervals: *elapsed* have ended (before now's interval), *covered*
    are those with data billed to the account, *remaining* are now's interval and the rest.
    Energy is projected pro rata: what the covered intervals cost, per covered interval, for
    the covered and the remaining ones (an elapsed interval without data stays unbilled). The
    demand charge is the peak so far, not scaled (a peak does not add up); tax is charged on
    the projected sum as on an invoice. Fewer than MIN_PROJECTION_COVERAGE of data: no
    projection (``projected_minor`` None) and ``reason`` says why.
    """

    method: str
    period_intervals: int
    elapsed_intervals: int
    covered_intervals: int
    remaining_intervals: int
    minimum_covered_intervals: int
    projected_energy_minor: int | None
    projected_minor: int | None
    reason: str | None

    @property
    def period_hours(self) -> Decimal:
        return _hours(self.period_intervals)

    @property
    def elapsed_hours(self) -> Decimal:
        return _hours(self.elapsed_intervals)

    @property
    def covered_hours(self) -> Decimal:
        return _hours(self.covered_intervals)

    @property
    def remaining_hours(self) -> Decimal:
        return _hours(self.remaining_intervals)

    @property
    def minimum_covered_hours(self) -> Decimal:
        return _hours(self.minimum_covered_intervals)


def ended_intervals(start: datetime, now: datetime) -> int:
    """How many whole 15-minute intervals of a period starting at *start* have ended by *now*."""
    return max(0, (now - start) // INTERVAL)


def project_cycle(
    so_far: InvoiceAmounts,
    covered: int,
    start: datetime,
    end: datetime,
    now: datetime,
) -> CycleProjection:
    """Project the bill of the period [start, end) at *now* from *so_far*, the amounts of its
    ended intervals, of which *covered* have data.

    *start* and *end* lie on 15-minute boundaries (local months do, in every zone in use).
    """
    period = (end - start) // INTERVAL
    elapsed = min(ended_intervals(start, now), period)
    if not 0 <= covered <= elapsed:
        raise ValueError("the covered intervals must be among the ended ones")
    remaining = period - elapsed
    minimum = MIN_PROJECTION_COVERAGE // INTERVAL
    if covered < minimum:
        reason = (
            f"{_hours(covered)} h of this period have data; a projection needs at least "
            f"{_hours(minimum)} h"
        )
        return CycleProjection(
            PROJECTION_METHOD, period, elapsed, covered, remaining, minimum, None, None, reason
        )
    energy_minor = _half_up_ratio(so_far.energy_minor * (covered + remaining), covered)
    subtotal = energy_minor + so_far.demand_minor
    return CycleProjection(
        PROJECTION_METHOD,
        period,
        elapsed,
        covered,
        remaining,
        minimum,
        energy_minor,
        subtotal + tax_on(subtotal, so_far.tax_rate),
        None,
    )
