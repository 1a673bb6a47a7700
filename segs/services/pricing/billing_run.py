"""The billing run: one month of invoices for every customer meter, set-based.

Per region, the tariff and time-of-use period of each of the month's 15-minute intervals is
planned in Python (segs.domain.billing.slot_plan, about 3,000 intervals) and folded into
segments of consecutive intervals on the same invoice line. One grouped query over the
region's 15-minute rows then sums each meter's energy per line, so every interval's energy
meets the tariff in effect in that interval, and no query runs per interval or per meter.
Invoices and their lines are written with COPY and two INSERT ... SELECT.

Idempotent: an invoice is unique per (meter, period start, owner); a re-run skips those billed
and inserts nothing twice, even when two runs race. Invoice numbers come from a sequence.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

from segs.domain import tariffs as rules_domain
from segs.domain.billing import CURRENCY
from segs.domain.billing import EnergyUse
from segs.domain.billing import InvoiceAmounts
from segs.domain.billing import LineItem
from segs.domain.billing import Slot
from segs.domain.billing import TariffInterval
from segs.domain.billing import compute_invoice
from segs.domain.billing import month_bounds
from segs.domain.billing import previous_period
from segs.domain.billing import slot_plan


@dataclass(frozen=True)
class RegionBilling:
    name: str
    zone: ZoneInfo
    demand_rate: Decimal | None
    slots: list[Slot]


@dataclass
class MeterCharges:
    meter_id: str
    owner_id: uuid.UUID | None
    uses: list[EnergyUse] = field(default_factory=list)
    demand_kw: Decimal | None = None
    # 15-minute windows with data, over every line.
    intervals: int = 0

    def add(self, use: EnergyUse, peak_kw: Decimal | None, intervals: int) -> None:
        """Add one line's energy; the demand is the highest 15-minute average over all."""
        self.uses.append(use)
        self.intervals += intervals
        if peak_kw is not None and (self.demand_kw is None or peak_kw > self.demand_kw):
            self.demand_kw = peak_kw


# A month is billed once its last 15-minute window has surely been flushed (end + grace).
SETTLE = timedelta(hours=1)


@dataclass
class BillingReport:
    period: str
    regions: int = 0
    # Regions whose local month had not ended (+ SETTLE) yet: billed by a later run.
    not_ended: list[str] = field(default_factory=list)
    meters: int = 0
    created: int = 0
    already_billed: int = 0


_REGIONS_SQL = """
SELECT name, timezone, base_price_per_kwh, tou_schedule, tou_multipliers, demand_charge_per_kw
FROM regions {where} ORDER BY name
"""

_HISTORY_SQL = """
SELECT id, price_per_kwh, effective_from, effective_to FROM tariffs
WHERE region = %(region)s AND effective_from < %(end)s
  AND (effective_to IS NULL OR effective_to > %(start)s)
ORDER BY effective_from
"""

# One pass over the region's 15-minute rows. width_bucket finds each window's segment (a run
# of consecutive windows with the same tariff and time-of-use period) by binary search in the
# segments' start instants, and the segment's line number groups the energy: no join per row.
# Each window goes to the account that owned the meter when the window began
# (meter_assignments), so a month with a change of owner bills each owner for their own part.
# Earlier invoices are looked at after grouping, on one row per meter, owner and line.
_CHARGES_SQL = """
WITH per_line AS (
    SELECT a.meter_id, o.user_id,
           (%(line_of)s::int[])[width_bucket(a.window_start, %(bounds)s::timestamptz[])] AS line,
           sum(a.energy_kwh_sum) AS energy, {peak} AS peak, count(*) AS windows
    FROM aggregates_15m a
    JOIN meter_assignments o ON o.meter_id = a.meter_id AND a.window_start >= o.assigned_from
        AND (o.assigned_to IS NULL OR a.window_start < o.assigned_to)
    WHERE a.region = %(region)s AND a.window_start >= %(start)s AND a.window_start < %(end)s
      {meters}
    GROUP BY 1, 2, 3
)
SELECT p.meter_id, p.user_id, p.line, p.energy, p.peak, p.windows
FROM per_line p
WHERE true {unbilled}
"""

_UNBILLED = (
    "AND NOT EXISTS (SELECT 1 FROM invoices i "
    "WHERE i.meter_id = p.meter_id AND i.period_start = %(start)s AND i.user_id = p.user_id)"
)

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS invoice_stage (
    meter_id text, user_id uuid, energy_kwh numeric, energy_minor bigint, demand_kw numeric,
    demand_minor bigint, tax_minor bigint, total_minor bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS invoice_line_stage (
    meter_id text, user_id uuid, position integer, kind text, description text, tariff_id bigint,
    tou_period text, quantity numeric, unit_price numeric, amount_minor bigint
) ON COMMIT DELETE ROWS
"""

_INSERT_INVOICES = """
INSERT INTO invoices (invoice_number, meter_id, user_id, region, period, period_start, period_end,
    timezone, currency, energy_kwh, energy_minor, demand_kw, demand_minor, tax_rate, tax_minor,
    total_minor, due_at)
SELECT 'INV-' || replace(%(period)s, '-', '') || '-' || lpad(nextval('invoice_number_seq')::text,
                                                             8, '0'),
       s.meter_id, s.user_id, %(region)s, %(period)s, %(start)s, %(end)s, %(timezone)s,
       %(currency)s, s.energy_kwh, s.energy_minor, s.demand_kw, s.demand_minor, %(tax_rate)s,
       s.tax_minor, s.total_minor, %(due_at)s
FROM invoice_stage s ORDER BY s.meter_id, s.user_id
ON CONFLICT (meter_id, period_start, user_id) DO NOTHING
RETURNING id
"""

_INSERT_LINES = """
INSERT INTO invoice_line_items (invoice_id, position, kind, description, tariff_id, tou_period,
    quantity, unit_price, amount_minor)
SELECT i.id, l.position, l.kind, l.description, l.tariff_id, l.tou_period, l.quantity,
       l.unit_price, l.amount_minor
FROM invoice_line_stage l JOIN invoices i
  ON i.meter_id = l.meter_id AND i.user_id = l.user_id AND i.period_start = %(start)s
WHERE i.id = ANY(%(created)s)
"""


def previous_month(now: datetime) -> str:
    """The month before *now*'s (UTC) month: every region's local month has ended by then
    once the run is scheduled a day into the UTC month."""
    return previous_period(now.strftime("%Y-%m"))


def load_regions(
    conn: psycopg.Connection, start_of: str, regions: list[str] | None
) -> list[tuple[RegionBilling, datetime, datetime]]:
    """Each region's slot plan for the month *start_of* (YYYY-MM), with the month's bounds."""
    where = "WHERE name = ANY(%(names)s)" if regions is not None else ""
    rows = conn.execute(_REGIONS_SQL.format(where=where), {"names": regions}).fetchall()
    planned = []
    for name, timezone, base_price, schedule, multipliers, demand_rate in rows:
        zone = ZoneInfo(timezone)
        start, end = month_bounds(start_of, zone)
        planned.append(
            (
                plan_region(
                    conn, name, zone, base_price, schedule, multipliers, demand_rate, start, end
                ),
                start,
                end,
            )
        )
    return planned


def plan_region(
    conn: psycopg.Connection,
    name: str,
    zone: ZoneInfo,
    base_price: Decimal,
    schedule: dict[str, str],
    multipliers: dict[str, str],
    demand_rate: Decimal | None,
    start: datetime,
    end: datetime,
) -> RegionBilling:
    history = [
        TariffInterval(*row)
        for row in conn.execute(
            _HISTORY_SQL, {"region": name, "start": start, "end": end}
        ).fetchall()
    ]
    grid = rules_domain.parse_tou(schedule, multipliers)
    return RegionBilling(
        name, zone, demand_rate, slot_plan(history, base_price, grid, zone, start, end)
    )


def meter_charges(
    cursor: psycopg.Cursor,
    region: RegionBilling,
    start: datetime,
    end: datetime,
    *,
    meter_ids: list[str] | None = None,
    owner_id: uuid.UUID | None = None,
    unbilled_only: bool = False,
) -> dict[tuple[str, uuid.UUID], MeterCharges]:
    """Each customer meter's energy per (tariff, period) and its demand over [start, end), per
    owner: the windows of the time each account owned it (only *owner_id*'s when given)."""
    slots = [slot for slot in region.slots if start <= slot.window_start < end]
    if not slots:
        return {}
    # Lines: distinct (tariff, period, price); segments: runs of windows on the same line.
    lines: dict[tuple[int | None, str, Decimal], int] = {}
    bounds: list[datetime] = []
    line_of: list[int] = []
    for slot in slots:
        line = lines.setdefault((slot.tariff_id, slot.tou_period, slot.price), len(lines))
        if not line_of or line_of[-1] != line:
            bounds.append(slot.window_start)
            line_of.append(line)
    keys = list(lines)
    # Lines are ordered on the invoice by the first interval of the period they cover.
    first_of = {line: bounds[line_of.index(line)] for line in range(len(keys))}
    params = {
        "region": region.name,
        "start": start,
        "end": end,
        "meter_ids": meter_ids,
        "owner_id": owner_id,
        "bounds": bounds,
        "line_of": line_of,
    }
    sql = _CHARGES_SQL.format(
        # The demand is only read where the region charges for it.
        peak="max(a.avg_power_kw)" if region.demand_rate is not None else "NULL::numeric",
        meters=("AND a.meter_id = ANY(%(meter_ids)s) " if meter_ids is not None else "")
        + ("AND o.user_id = %(owner_id)s" if owner_id is not None else ""),
        unbilled=_UNBILLED if unbilled_only else "",
    )
    charges: dict[tuple[str, uuid.UUID], MeterCharges] = {}
    for meter_id, owner, line, energy, peak, windows in cursor.execute(sql, params).fetchall():
        entry = charges.setdefault((meter_id, owner), MeterCharges(meter_id, owner))
        tariff_id, period, price = keys[line]
        entry.add(EnergyUse(tariff_id, period, price, energy, first_of[line]), peak, windows)
    return charges


def amounts_for(charges: MeterCharges, region: RegionBilling, tax_rate: Decimal) -> InvoiceAmounts:
    demand = charges.demand_kw if region.demand_rate is not None else None
    return compute_invoice(charges.uses, demand, region.demand_rate, tax_rate)


def run_billing(
    conn: psycopg.Connection,
    period: str,
    *,
    tax_rate: Decimal,
    due_days: int,
    now: datetime,
    regions: list[str] | None = None,
) -> BillingReport:
    """Invoice every customer meter with energy in *period* (YYYY-MM, local months).

    A region whose month has not ended by *now* is left out: a final invoice for part of a
    month would keep the rest of it from ever being billed.
    """
    report = BillingReport(period)
    with conn.transaction():
        planned = load_regions(conn, period, regions)
    # One transaction per region: a failure leaves the regions already billed billed.
    for region, start, end in planned:
        if end + SETTLE > now:
            report.not_ended.append(region.name)
            continue
        report.regions += 1
        with conn.transaction(), conn.cursor() as cursor:
            charges = meter_charges(cursor, region, start, end, unbilled_only=True)
            report.meters += len(charges)
            if not charges:
                continue
            created = _write_invoices(
                cursor, region, period, start, end, charges, tax_rate, due_days
            )
            report.created += created
            report.already_billed += len(charges) - created
    return report


def _write_invoices(
    cursor: psycopg.Cursor,
    region: RegionBilling,
    period: str,
    start: datetime,
    end: datetime,
    charges: dict[tuple[str, uuid.UUID], MeterCharges],
    tax_rate: Decimal,
    due_days: int,
) -> int:
    cursor.execute(_STAGE_DDL)
    cursor.execute("TRUNCATE invoice_stage, invoice_line_stage")
    lines_by_meter: dict[tuple[str, uuid.UUID], tuple[LineItem, ...]] = {}
    with cursor.copy(
        "COPY invoice_stage (meter_id, user_id, energy_kwh, energy_minor, demand_kw, "
        "demand_minor, tax_minor, total_minor) FROM STDIN"
    ) as copy:
        for key, entry in charges.items():
            amounts = amounts_for(entry, region, tax_rate)
            lines_by_meter[key] = amounts.lines
            copy.write_row(
                (
                    entry.meter_id,
                    entry.owner_id,
                    amounts.energy_kwh,
                    amounts.energy_minor,
                    amounts.demand_kw,
                    amounts.demand_minor,
                    amounts.tax_minor,
                    amounts.total_minor,
                )
            )
    with cursor.copy(
        "COPY invoice_line_stage (meter_id, user_id, position, kind, description, tariff_id, "
        "tou_period, quantity, unit_price, amount_minor) FROM STDIN"
    ) as copy:
        for (meter_id, owner), lines in lines_by_meter.items():
            for position, line in enumerate(lines, start=1):
                copy.write_row(
                    (
                        meter_id,
                        owner,
                        position,
                        line.kind,
                        line.description,
                        line.tariff_id,
                        line.tou_period,
                        line.quantity,
                        line.unit_price,
                        line.amount_minor,
                    )
                )
    cursor.execute(
        _INSERT_INVOICES,
        {
            "period": period,
            "region": region.name,
            "start": start,
            "end": end,
            "timezone": region.zone.key,
            "currency": CURRENCY,
            "tax_rate": tax_rate,
            "due_at": end + timedelta(days=due_days),
        },
    )
    created = [row[0] for row in cursor.fetchall()]
    if created:
        cursor.execute(_INSERT_LINES, {"start": start, "created": created})
    return len(created)
