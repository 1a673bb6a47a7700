"""Billing end to end: a DST month through the real pipeline, invoices checked against an
independent recomputation from raw_readings, then the invoice API and its statuses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from bench.billing_check import differences
from bench.billing_check import expected_invoices
from bench.billing_check import stored_invoices
from segs.db import raw_connection
from segs.tasks.billing import generate_invoices
from segs.tasks.billing import mark_overdue
from tests.accounts import create_account
from tests.integration import billing_world as world
from tests.support import db
from tests.support import execute
from tests.support import query
from tests.support import reset_state
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

METERS = ["LDN-001", "LDN-002", "LDN-003"]
DST_METER = "LDN-DST"
UNOWNED = "LDN-FREE"
TAX = Decimal("0.18")


@pytest.fixture(scope="module")
def billed(database):
    """Readings, history and one billing run, shared by the module's tests (read-mostly)."""
    from segs.web import create_app

    reset_state()
    world.add_region()
    app = create_app()
    customer = create_account(app, region=world.REGION, meters=(*METERS, DST_METER))
    other = create_account(app, region=world.REGION, meters=())
    operator = create_account(app, role="OPERATOR", region=None)
    admin = create_account(app, role="ADMIN", region=None)
    world.add_history()
    world.load_through_pipeline(
        world.month_readings([*METERS, UNOWNED]) + world.dst_day_readings(DST_METER)
    )
    report = generate_invoices.run(world.PERIOD)
    yield {
        "app": app,
        "customer": customer,
        "other": other,
        "operator": operator,
        "admin": admin,
        "report": report,
    }
    reset_state()
    world.drop_region()
    world.drop_old_partitions()


def test_every_invoice_equals_the_independent_recomputation(billed):
    assert billed["report"] == {"period": "2026-10", "created": 4, "meters": 4}
    with db() as conn:
        expected = expected_invoices(conn, world.REGION, world.PERIOD, TAX)
        stored = stored_invoices(conn, world.REGION, world.PERIOD)
    assert sorted(stored) == sorted([*METERS, DST_METER])  # the unowned meter is not billed
    assert differences(expected, stored) == []
    # The month covers the change (tariff 9001 then 9002), the override (9003) and after (9004).
    assert {tariff for tariff, _ in stored["LDN-001"].lines} == {9001, 9002, 9003, 9004}


def test_the_25_hour_day_is_billed_hour_by_hour(billed):
    lines = query(
        """
        SELECT l.tou_period, l.tariff_id, l.quantity, l.unit_price, l.amount_minor
        FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.meter_id = %s AND l.kind = 'energy' ORDER BY l.position
        """,
        (DST_METER,),
    )
    # A Sunday: 9 local off-peak hours (01:00 twice) and 16 shoulder hours, 1 kWh a window.
    assert lines == [
        ("off_peak", 9004, Decimal("36.000000"), Decimal("7.500000"), 27000),
        ("shoulder", 9004, Decimal("64.000000"), Decimal("7.500000"), 48000),
    ]
    invoice = query(
        "SELECT energy_kwh, demand_kw, demand_minor, tax_minor, total_minor, period_start, "
        "period_end FROM invoices WHERE meter_id = %s",
        (DST_METER,),
    )[0]
    # Demand: 4 kW x 50; tax 18 % of (750.00 + 200.00).
    assert invoice[:5] == (Decimal("100.000000"), Decimal("4.000000"), 20000, 17100, 112100)
    assert (invoice[5], invoice[6]) == (world.MONTH_START, world.MONTH_END)


def test_a_rerun_is_idempotent_and_numbers_are_unique(billed):
    before = query("SELECT id, invoice_number, total_minor FROM invoices ORDER BY id")
    assert generate_invoices.run(world.PERIOD) == {"period": "2026-10", "created": 0, "meters": 0}
    assert query("SELECT id, invoice_number, total_minor FROM invoices ORDER BY id") == before
    numbers = [number for _, number, _ in before]
    assert len(set(numbers)) == len(numbers) == 4
    assert all(number.startswith("INV-202610-") for number in numbers)
    assert scalar("SELECT count(*) FROM invoice_line_items") == sum(
        len(stored.lines) + 1
        for stored in stored_invoices_now().values()  # + the demand line
    )


def test_a_month_is_billed_only_once_it_has_ended(billed):
    from decimal import Decimal as D

    from segs.services.pricing.billing_run import run_billing

    execute("DELETE FROM invoices WHERE meter_id = %s", (DST_METER,))
    with raw_connection() as conn:
        early = run_billing(
            conn,
            world.PERIOD,
            tax_rate=D("0.18"),
            due_days=15,
            now=world.MONTH_END + timedelta(minutes=30),
            regions=[world.REGION],
        )
        assert (early.not_ended, early.created) == ([world.REGION], 0)
        late = run_billing(
            conn,
            world.PERIOD,
            tax_rate=D("0.18"),
            due_days=15,
            now=world.MONTH_END + timedelta(hours=1),
            regions=[world.REGION],
        )
        assert (late.not_ended, late.created) == ([], 1)
    client = billed["app"].test_client()
    from datetime import UTC
    from datetime import datetime

    refused = client.post(
        "/api/v1/billing/runs",
        json={"period": datetime.now(UTC).strftime("%Y-%m")},
        headers=billed["operator"].headers,
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"] == {
        "period": ["must be before the current month"]
    }


def test_concurrent_runs_bill_each_meter_once(billed):
    """Two runs racing over the same month: every meter billed once, numbers unique."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC
    from datetime import datetime

    from segs.services.pricing.billing_run import run_billing

    before = dict(query("SELECT meter_id, total_minor FROM invoices"))
    execute("DELETE FROM invoices WHERE meter_id = ANY(%s)", (METERS[:2],))

    def one_run(_: int) -> int:
        with raw_connection() as conn:
            report = run_billing(
                conn, world.PERIOD, tax_rate=TAX, due_days=15, now=datetime.now(UTC)
            )
            return report.created

    with ThreadPoolExecutor(max_workers=2) as pool:
        created = sorted(pool.map(one_run, range(2)))
    assert sum(created) == 2
    rows = query("SELECT meter_id, total_minor, invoice_number FROM invoices")
    assert {meter: total for meter, total, _ in rows} == before
    assert len({number for _, _, number in rows}) == len(rows) == 4
    assert scalar(
        "SELECT count(*) FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id "
        "WHERE i.meter_id = ANY(%s)",
        (METERS[:2],),
    ) == sum(len(stored_invoices_now()[meter].lines) + 1 for meter in METERS[:2])


def stored_invoices_now():
    with db() as conn:
        return stored_invoices(conn, world.REGION, world.PERIOD)


def _invoice_id(meter: str) -> int:
    return scalar("SELECT id FROM invoices WHERE meter_id = %s", (meter,))


def test_customers_see_only_their_invoices(billed):
    client = billed["app"].test_client()
    mine = client.get("/api/v1/billing/invoices", headers=billed["customer"].headers).get_json()
    assert mine["total"] == 4
    theirs = client.get("/api/v1/billing/invoices", headers=billed["other"].headers).get_json()
    assert theirs["total"] == 0
    invoice_id = _invoice_id(DST_METER)
    detail = client.get(
        f"/api/v1/billing/invoices/{invoice_id}", headers=billed["customer"].headers
    )
    assert detail.status_code == 200
    body = detail.get_json()
    assert (body["totalMinor"], body["status"], len(body["lines"])) == (112100, "pending", 3)
    assert body["lines"][2]["kind"] == "demand"
    hidden = client.get(f"/api/v1/billing/invoices/{invoice_id}", headers=billed["other"].headers)
    assert hidden.status_code == 404
    pdf = client.get(
        f"/api/v1/billing/invoices/{invoice_id}/pdf", headers=billed["customer"].headers
    )
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert pdf.mimetype == "application/pdf"


def test_statuses_payments_disputes_and_overdue(billed):
    client = billed["app"].test_client()
    customer, operator = billed["customer"].headers, billed["operator"].headers
    paid_id, disputed_id, late_id = (_invoice_id(meter) for meter in METERS)
    total = scalar("SELECT total_minor FROM invoices WHERE id = %s", (paid_id,))

    wrong = client.post(
        f"/api/v1/billing/invoices/{paid_id}/pay",
        json={"amountMinor": total - 1, "method": "upi"},
        headers=customer,
    )
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["details"] == {"amountMinor": [f"must be {total}"]}
    # A customer's pay is only a pending payment; the operator records the one received.
    pending = client.post(
        f"/api/v1/billing/invoices/{paid_id}/pay",
        json={"amountMinor": total, "method": "upi"},
        headers=customer,
    )
    assert pending.status_code == 202 and pending.get_json()["status"] == "pending"
    paid = client.post(
        f"/api/v1/billing/invoices/{paid_id}/payments",
        json={"amountMinor": total, "method": "upi", "reference": "UPI-1"},
        headers=operator,
    )
    assert paid.status_code == 201
    assert (paid.get_json()["status"], paid.get_json()["paidMinor"]) == ("paid", total)
    assert [(p["amountMinor"], p["status"]) for p in paid.get_json()["payments"]] == [
        (total, "pending"),
        (total, "succeeded"),
    ]
    again = client.post(
        f"/api/v1/billing/invoices/{paid_id}/dispute", json={"reason": "x"}, headers=customer
    )
    assert again.status_code == 409

    disputed = client.post(
        f"/api/v1/billing/invoices/{disputed_id}/dispute",
        json={"reason": "meter was off that week"},
        headers=customer,
    )
    assert disputed.get_json()["status"] == "disputed"
    resolved = client.post(
        f"/api/v1/billing/invoices/{disputed_id}/resolve",
        json={"outcome": "uphold", "resolution": "readings verified"},
        headers=operator,
    )
    assert resolved.get_json()["status"] == "resolved"
    assert (
        scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'invoice.resolve' AND entity_id = %s",
            (str(disputed_id),),
        )
        == 1
    )

    # October's invoices fell due on 16 November: move all but two into the future.
    execute("UPDATE invoices SET due_at = now() + interval '1 day'")
    execute(
        "UPDATE invoices SET due_at = now() - interval '1 day' WHERE id IN (%s, %s)",
        (late_id, paid_id),
    )
    assert mark_overdue.run() == {"overdue": 1}  # a paid invoice never becomes overdue
    overdue = client.get("/api/v1/billing/overdue", headers=operator).get_json()
    assert [item["id"] for item in overdue["items"]] == [late_id]
    analytics = client.get(
        "/api/v1/billing/analytics", query_string={"period": "2026-10"}, headers=operator
    ).get_json()
    assert analytics["byStatus"] == {"paid": 1, "resolved": 1, "overdue": 1, "pending": 1}
    assert analytics["paidMinor"] == total
    cancelled = client.post(
        f"/api/v1/billing/invoices/{late_id}/cancel",
        json={"reason": "duplicate"},
        headers=billed["admin"].headers,
    )
    assert cancelled.get_json()["status"] == "cancelled"

    export = client.get(
        "/api/v1/billing/export.csv", query_string={"period": "2026-10"}, headers=operator
    )
    rows = export.data.decode().splitlines()
    assert rows[0].startswith("invoice_number,meter_id,user_id,region,period")
    assert len(rows) == 5


def test_current_cycle_of_a_customer_without_data_this_month(billed):
    client = billed["app"].test_client()
    body = client.get(
        "/api/v1/billing/current-cycle", headers=billed["customer"].headers
    ).get_json()
    assert body["currency"] == "INR"
    assert [meter["meterId"] for meter in body["meters"]] == sorted([*METERS, DST_METER])
    assert {(meter["soFarMinor"], meter["projectedMinor"]) for meter in body["meters"]} == {
        (0, None)
    }
    assert {meter["projection"]["coveredHours"] for meter in body["meters"]} == {"0.00"}


def test_current_cycle_estimate_prices_this_months_intervals(billed):
    """A reading in the current month is priced; one interval is too little to project."""
    from datetime import UTC
    from datetime import datetime

    from segs.domain.billing import month_bounds
    from segs.domain.billing import period_of
    from segs.services.pricing.billing import current_cycle

    zone = __import__("zoneinfo").ZoneInfo("Europe/London")
    now = datetime.now(UTC)
    start, _end = month_bounds(period_of(now, zone), zone)
    window = start + timedelta(minutes=15)
    now = max(now, window + timedelta(minutes=15))  # the window has ended
    execute(
        """
        INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count, power_sum_kw,
            avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count,
            last_reading_at)
        VALUES (%s, %s, %s, 1, 2, 2, 2, 2, 10, 0, 0, %s)
        """,
        (DST_METER, window, world.REGION, window),
    )
    with raw_connection() as conn:
        estimates = {
            item.meter_id: item for item in current_cycle(conn, billed["customer"].id, now, TAX)
        }
    estimate = estimates[DST_METER]
    # 10 kWh at 7.50 = 75.00, demand 2 kW x 50 = 100.00, tax 18 % = 31.50.
    assert (estimate.energy_kwh, estimate.so_far_minor) == (Decimal("10"), 20650)
    assert (estimate.projection.covered_intervals, estimate.projected_minor) == (1, None)
