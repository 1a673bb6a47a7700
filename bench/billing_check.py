"""Recompute a month's invoices independently: from raw_readings and the tariff history only.

Shares no code with segs' billing path (no segs.domain, no aggregates): it buckets raw readings
into 15-minute windows itself, looks each window's tariff up in the history itself, reads the
time-of-use grid on the region's clock itself, and rounds the way the billing rules say (each
line half-up to the paisa, tax half-up on the sum). Used by ``python -m bench.billing_accuracy``
and by the integration tests.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

LETTERS = {"O": "off_peak", "S": "shoulder", "P": "peak"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Expected:
    meter_id: str
    lines: dict[tuple[int | None, str], list[Decimal]] = field(default_factory=dict)
    energy_kwh: Decimal = Decimal(0)
    energy_minor: int = 0
    demand_kw: Decimal | None = None
    demand_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _local_month(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _bucket(ts: datetime) -> datetime:
    seconds = int((ts - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % 900)


@dataclass
class _Rules:
    """A region's pricing as the check reads it: history, grid, demand rate, tax."""

    zone: ZoneInfo
    base: Decimal
    schedule: dict[str, str]
    demand_rate: Decimal | None
    tax_rate: Decimal
    history: list[tuple[datetime, datetime | None, int, Decimal]]

    @cached_property
    def starts(self) -> list[datetime]:
        return [row[0] for row in self.history]

    def tariff_of(self, moment: datetime) -> tuple[int | None, Decimal]:
        index = bisect.bisect_right(self.starts, moment) - 1
        if index >= 0:
            _, until, tariff_id, price = self.history[index]
            if until is None or moment < until:
                return tariff_id, price
        return None, self.base

    def period_of(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        letters = self.schedule["weekend" if local.isoweekday() >= 6 else "weekday"]
        return LETTERS[letters[local.hour]]

    def invoice(self, meter_id: str, by_bucket: dict[datetime, list[Any]]) -> Expected:
        expected = Expected(meter_id)
        peak = Decimal(0)
        for moment, (energy, power_sum, count) in by_bucket.items():
            tariff_id, price = self.tariff_of(moment)
            key = (tariff_id, self.period_of(moment))
            line = expected.lines.setdefault(key, [Decimal(0), price])
            line[0] += energy
            expected.energy_kwh += energy
            peak = max(peak, (power_sum / count).quantize(Decimal("0.000001"), ROUND_HALF_UP))
        expected.energy_minor = sum(
            _half_up(energy * price * 100) for energy, price in expected.lines.values()
        )
        if self.demand_rate is not None:
            expected.demand_kw = peak
            expected.demand_minor = _half_up(peak * self.demand_rate * 100)
        subtotal = expected.energy_minor + expected.demand_minor
        expected.tax_minor = _half_up(subtotal * self.tax_rate)
        expected.total_minor = subtotal + expected.tax_minor
        return expected


def expected_invoices(
    conn: psycopg.Connection, region: str, period: str, tax_rate: Decimal
) -> dict[str, Expected]:
    """The invoice of every customer meter of *region* with readings in *period*."""
    found = conn.execute(
        "SELECT timezone, base_price_per_kwh, tou_schedule, demand_charge_per_kw "
        "FROM regions WHERE name = %s",
        (region,),
    ).fetchone()
    if found is None:
        raise ValueError(f"unknown region {region}")
    timezone, base, schedule, demand_rate = found
    zone = ZoneInfo(timezone)
    start, end = _local_month(period, zone)
    history = conn.execute(
        "SELECT effective_from, effective_to, id, price_per_kwh FROM tariffs "
        "WHERE region = %s ORDER BY effective_from",
        (region,),
    ).fetchall()
    rules = _Rules(zone, base, schedule, demand_rate, tax_rate, history)

    # Streamed meter by meter: bucket -> [energy, power sum, readings].
    results: dict[str, Expected] = {}
    current: str | None = None
    buckets: dict[datetime, list[Any]] = {}
    with conn.transaction(), conn.cursor(name="billing_check") as cursor:
        cursor.itersize = 50_000
        cursor.execute(
            "SELECT r.meter_id, r.ts, coalesce(r.energy_kwh, 0), r.power_kw FROM raw_readings r "
            "JOIN meters m ON m.meter_id = r.meter_id AND m.owner_id IS NOT NULL "
            "WHERE r.region = %s AND r.ts >= %s AND r.ts < %s ORDER BY r.meter_id",
            (region, start, end),
        )
        for meter_id, ts, energy, power in cursor:
            if meter_id != current:
                if current is not None:
                    results[current] = rules.invoice(current, buckets)
                current, buckets = meter_id, {}
            slot = buckets.setdefault(_bucket(ts), [Decimal(0), Decimal(0), 0])
            slot[0] += energy
            slot[1] += power
            slot[2] += 1
    if current is not None:
        results[current] = rules.invoice(current, buckets)
    return results


def stored_invoices(conn: psycopg.Connection, region: str, period: str) -> dict[str, Expected]:
    """The stored invoices of *region* for *period*, in the same shape."""
    stored: dict[str, Expected] = {}
    rows = conn.execute(
        "SELECT id, meter_id, energy_kwh, energy_minor, demand_kw, demand_minor, tax_minor, "
        "total_minor FROM invoices WHERE region = %s AND period = %s",
        (region, period),
    ).fetchall()
    by_id = {}
    for invoice_id, meter_id, kwh, energy, demand_kw, demand, tax, total in rows:
        stored[meter_id] = Expected(meter_id, {}, kwh, energy, demand_kw, demand, tax, total)
        by_id[invoice_id] = stored[meter_id]
    for invoice_id, tariff_id, period_name, quantity, price in conn.execute(
        "SELECT l.invoice_id, l.tariff_id, l.tou_period, l.quantity, l.unit_price "
        "FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id "
        "WHERE i.region = %s AND i.period = %s AND l.kind = 'energy'",
        (region, period),
    ).fetchall():
        by_id[invoice_id].lines[(tariff_id, period_name)] = [quantity, price]
    return stored


def differences(expected: dict[str, Expected], stored: dict[str, Expected]) -> list[str]:
    """Every way the stored invoices differ from the recomputed ones (empty: identical)."""
    problems = []
    for meter_id in sorted(set(expected) | set(stored)):
        want, got = expected.get(meter_id), stored.get(meter_id)
        if want is None or got is None:
            problems.append(f"{meter_id}: expected={want is not None} stored={got is not None}")
            continue
        for name in (
            "energy_kwh",
            "energy_minor",
            "demand_kw",
            "demand_minor",
            "tax_minor",
            "total_minor",
        ):
            if getattr(want, name) != getattr(got, name):
                problems.append(
                    f"{meter_id}.{name}: expected {getattr(want, name)}, "
                    f"stored {getattr(got, name)}"
                )
        if want.lines != got.lines:
            problems.append(f"{meter_id}.lines: expected {want.lines}, stored {got.lines}")
    return problems
