"""The RBAC matrix: every /api/v1 route x every kind of caller, with the exact status expected.

The routes come from the app's URL map, so a new route without a row here fails
``test_the_matrix_covers_every_route``. Each route runs against a fresh world: a customer who
owns the meter and the account in the URL, another customer in the same region, an operator
and an admin. Bodies are valid, so a refusal can only come from authentication or scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.accounts import PASSWORD
from tests.accounts import Account
from tests.accounts import create_account
from tests.support import execute
from tests.support import reset_state
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

PERSONAS = ("anonymous", "owner", "other", "operator", "admin")
REGION = "Pune-West"
OWNED_METER = "MTR-00000108"
OTHER_METER = "MTR-00000208"
FREE_METER = "MTR-00000308"
INVOICE_ID = 4242  # the owner's pending invoice of OWNED_METER
INVOICE_TOTAL = 11800
OVERRIDE_ID = 4343  # an override of REGION, far in the future
KEY_ID = uuid.UUID("00000000-0000-4000-8000-00000000aaaa")  # a head-end key of REGION
BATCH_ID = uuid.UUID("00000000-0000-4000-8000-00000000bbbb")  # a dead-lettered batch
WINDOW_ID = 4444  # a quarantined window of REGION


@dataclass
class World:
    owner: Account
    other: Account
    operator: Account
    admin: Account
    refresh_token: str
    alert_id: int
    webhook_id: uuid.UUID

    def account(self, persona: str) -> Account | None:
        return None if persona == "anonymous" else getattr(self, persona)


Body = Callable[[World, str], Any]

ALL = (200, 200, 200, 200, 200)
STAFF_ONLY = (401, 403, 403, 200, 200)
ADMIN_ONLY = (401, 403, 403, 403, 200)
OWN_METER = (401, 200, 404, 200, 200)  # another customer cannot tell it from a missing meter
SIGNED_IN = (401, 200, 200, 200, 200)
NOBODY = (401, 401, 401, 401, 401)


def _email(world: World, persona: str) -> str:
    account = world.account(persona)
    return account.email if account else world.owner.email


def _new_email(_world: World, persona: str) -> dict[str, Any]:
    return {"name": "New Customer", "email": f"new.{persona}@example.test", "region": REGION}


# (method, rule) -> (expected status per persona in PERSONAS order, request body or None)
MATRIX: dict[tuple[str, str], tuple[tuple[int, ...], Body | None]] = {
    # Public account flows: the caller's token does not matter.
    # The same answer for a new and a taken address.
    ("POST", "/api/v1/auth/register"): ((202, 202, 202, 202, 202), _new_email),
    ("POST", "/api/v1/auth/login"): (
        ALL,
        lambda world, persona: {"email": _email(world, persona), "password": PASSWORD},
    ),
    # The owner's one refresh token: the first use rotates it, every later use is reuse.
    ("POST", "/api/v1/auth/refresh"): (
        (200, 401, 401, 401, 401),
        lambda world, _persona: {"refreshToken": world.refresh_token},
    ),
    ("POST", "/api/v1/auth/resend-code"): (
        (202, 202, 202, 202, 202),
        lambda world, persona: {"email": _email(world, persona)},
    ),
    ("POST", "/api/v1/auth/forgot-password"): (
        (202, 202, 202, 202, 202),
        lambda world, persona: {"email": _email(world, persona)},
    ),
    # No code was ever sent to these accounts, so every attempt is refused the same way.
    ("POST", "/api/v1/auth/verify-email"): (
        (401, 401, 401, 401, 401),
        lambda world, persona: {
            "email": _email(world, persona),
            "code": "123456",
            "password": "brand-new-pass-1",
        },
    ),
    ("POST", "/api/v1/auth/reset-password"): (
        (401, 401, 401, 401, 401),
        lambda world, persona: {
            "email": _email(world, persona),
            "code": "123456",
            "newPassword": "brand-new-pass-1",
        },
    ),
    # Signed-in account flows.
    ("POST", "/api/v1/auth/logout"): ((401, 204, 204, 204, 204), None),
    ("POST", "/api/v1/auth/logout-all"): ((401, 204, 204, 204, 204), None),
    ("POST", "/api/v1/auth/change-password"): (
        SIGNED_IN,
        lambda _world, _persona: {"currentPassword": PASSWORD, "newPassword": "fresh-secret-55"},
    ),
    ("GET", "/api/v1/users/me"): (SIGNED_IN, None),
    ("PATCH", "/api/v1/users/me"): (SIGNED_IN, lambda _w, _p: {"name": "Renamed"}),
    # Accounts: operators read, admins manage.
    ("GET", "/api/v1/users"): (STAFF_ONLY, None),
    ("POST", "/api/v1/users"): (
        (401, 403, 403, 403, 201),
        lambda _w, persona: {
            "email": f"made.by.{persona}@example.test",
            "name": "Made By Admin",
            "role": "USER",
            "region": REGION,
            "password": "initial-pass-12",
        },
    ),
    ("GET", "/api/v1/users/<uuid:user_id>"): (STAFF_ONLY, None),
    ("PATCH", "/api/v1/users/<uuid:user_id>"): (ADMIN_ONLY, lambda _w, _p: {"name": "Edited"}),
    ("POST", "/api/v1/users/<uuid:user_id>/suspend"): (
        ADMIN_ONLY,
        lambda _w, _p: {"reason": "unpaid invoices"},
    ),
    # The owner is active, so an admin's activate is refused as a conflict.
    ("POST", "/api/v1/users/<uuid:user_id>/activate"): ((401, 403, 403, 403, 409), None),
    ("DELETE", "/api/v1/users/<uuid:user_id>"): ((401, 403, 403, 403, 204), None),
    # The meter registry: everyone lists (scoped), admins manage.
    ("GET", "/api/v1/meters"): (SIGNED_IN, None),
    ("POST", "/api/v1/meters"): (
        (401, 403, 403, 403, 201),
        lambda _w, _p: {"meterId": "MTR-09999999", "region": REGION},
    ),
    ("GET", "/api/v1/meters/<meter_id>"): (OWN_METER, None),
    ("POST", "/api/v1/meters/<meter_id>/retire"): (ADMIN_ONLY, None),
    # The free meter goes to the owner, who lives in its region.
    ("PUT", "/api/v1/meters/<meter_id>/assignment"): (
        ADMIN_ONLY,
        lambda world, _p: {"userId": str(world.owner.id)},
    ),
    ("DELETE", "/api/v1/meters/<meter_id>/assignment"): ((401, 403, 403, 403, 204), None),
    # Meter data: the owner and staff only.
    ("GET", "/api/v1/meters/latest"): (SIGNED_IN, None),
    ("GET", "/api/v1/meters/<meter_id>/latest"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/history"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/history.csv"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/stats"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/daily"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/monthly"): (OWN_METER, None),
    ("GET", "/api/v1/meters/<meter_id>/compare"): (OWN_METER, None),
    # Regions: everyone sees the list; the grid's figures are for staff.
    ("GET", "/api/v1/regions"): (SIGNED_IN, None),
    ("GET", "/api/v1/regions/<region>"): (SIGNED_IN, None),
    # The capacity Pune-West was migrated with: the world's region stays as it was.
    ("PATCH", "/api/v1/regions/<region>"): (ADMIN_ONLY, lambda _w, _p: {"capacityKw": 3400}),
    ("GET", "/api/v1/regions/<region>/stats"): (STAFF_ONLY, None),
    ("GET", "/api/v1/regions/<region>/top-consumers"): (STAFF_ONLY, None),
    ("GET", "/api/v1/regions/<region>/load"): (STAFF_ONLY, None),
    # Tariffs: prices for everyone (staff have no region of their own), overrides for admins.
    ("GET", "/api/v1/tariffs/current"): ((401, 200, 200, 422, 422), None),
    ("GET", "/api/v1/tariffs/regions/<region>/current"): (SIGNED_IN, None),
    ("GET", "/api/v1/tariffs/regions/<region>/history"): (SIGNED_IN, None),
    ("GET", "/api/v1/tariffs/estimate"): (SIGNED_IN, None),
    ("GET", "/api/v1/tariffs/overview"): (STAFF_ONLY, None),
    ("GET", "/api/v1/tariffs/regions/<region>/rules"): (STAFF_ONLY, None),
    ("PATCH", "/api/v1/tariffs/regions/<region>/rules"): (
        ADMIN_ONLY,
        lambda _w, _p: {"demandChargePerKw": "40"},
    ),
    ("GET", "/api/v1/tariffs/overrides"): (STAFF_ONLY, None),
    ("POST", "/api/v1/tariffs/overrides"): (
        (401, 403, 403, 403, 201),
        lambda _w, _p: {
            "region": REGION,
            "pricePerKwh": "4.5",
            "validFrom": "2031-01-01T00:00:00Z",
            "validTo": "2031-01-02T00:00:00Z",
            "reason": "matrix",
        },
    ),
    ("GET", "/api/v1/tariffs/overrides/<int:override_id>"): (STAFF_ONLY, None),
    ("PATCH", "/api/v1/tariffs/overrides/<int:override_id>"): (
        ADMIN_ONLY,
        lambda _w, _p: {"reason": "edited"},
    ),
    ("DELETE", "/api/v1/tariffs/overrides/<int:override_id>"): ((401, 403, 403, 403, 204), None),
    # Billing: customers their own invoices; staff all, and the operations.
    ("GET", "/api/v1/billing/invoices"): (SIGNED_IN, None),
    ("GET", "/api/v1/billing/invoices/<int:invoice_id>"): (OWN_METER, None),
    ("GET", "/api/v1/billing/invoices/<int:invoice_id>/pdf"): (OWN_METER, None),
    # A customer's pay starts a pending payment with the provider; staff record payments.
    ("POST", "/api/v1/billing/invoices/<int:invoice_id>/pay"): (
        (401, 202, 404, 403, 403),
        lambda _w, _p: {"amountMinor": INVOICE_TOTAL, "method": "card"},
    ),
    # The operator records it first; the admin then finds the invoice paid.
    ("POST", "/api/v1/billing/invoices/<int:invoice_id>/payments"): (
        (401, 403, 403, 201, 409),
        lambda _w, _p: {"amountMinor": INVOICE_TOTAL, "method": "cash"},
    ),
    # The provider's callback needs its signature, whoever calls.
    ("POST", "/api/v1/billing/payment-callbacks/<provider>"): (
        (401, 401, 401, 401, 401),
        lambda _w, _p: {"reference": "testpay_x", "status": "succeeded", "amountMinor": 1},
    ),
    ("POST", "/api/v1/billing/invoices/<int:invoice_id>/dispute"): (
        (401, 200, 404, 403, 403),
        lambda _w, _p: {"reason": "too high"},
    ),
    # The invoice is disputed for this route (SETUP); the operator resolves it first.
    ("POST", "/api/v1/billing/invoices/<int:invoice_id>/resolve"): (
        (401, 403, 403, 200, 409),
        lambda _w, _p: {"outcome": "uphold", "resolution": "checked"},
    ),
    ("POST", "/api/v1/billing/invoices/<int:invoice_id>/cancel"): (
        ADMIN_ONLY,
        lambda _w, _p: {"reason": "duplicate"},
    ),
    ("GET", "/api/v1/billing/current-cycle"): (SIGNED_IN, None),
    ("GET", "/api/v1/billing/overdue"): (STAFF_ONLY, None),
    ("GET", "/api/v1/billing/analytics"): (STAFF_ONLY, None),
    ("POST", "/api/v1/billing/runs"): (
        (401, 403, 403, 202, 202),
        lambda _w, _p: {"period": "2026-10"},
    ),
    ("GET", "/api/v1/billing/export.csv"): (STAFF_ONLY, None),
    # Administration.
    ("GET", "/api/v1/audit-log"): (ADMIN_ONLY, None),
    # Alerts: staff handle them; the first member of staff to act wins, the second conflicts.
    ("GET", "/api/v1/alerts"): (STAFF_ONLY, None),
    ("GET", "/api/v1/alerts/stats"): (STAFF_ONLY, None),
    ("GET", "/api/v1/alerts/<int:alert_id>"): (STAFF_ONLY, None),
    ("GET", "/api/v1/alerts/<int:alert_id>/meters"): (OWN_METER, None),
    ("POST", "/api/v1/alerts/<int:alert_id>/acknowledge"): (
        (401, 403, 403, 200, 409),
        lambda _w, _p: {"note": "on it"},
    ),
    ("POST", "/api/v1/alerts/<int:alert_id>/resolve"): (
        (401, 403, 403, 200, 409),
        lambda _w, _p: {"note": "fixed"},
    ),
    ("POST", "/api/v1/alerts/resolve"): (
        STAFF_ONLY,
        lambda world, _p: {"ids": [world.alert_id]},
    ),
    # Live-feed tickets: everyone signed in (the stream itself is the feed process's).
    ("POST", "/api/v1/feed/tickets"): ((401, 201, 201, 201, 201), None),
    # The caller's own alerts, preferences and webhooks.
    ("GET", "/api/v1/users/me/alerts"): (SIGNED_IN, None),
    ("GET", "/api/v1/users/me/notification-preferences"): (SIGNED_IN, None),
    ("PUT", "/api/v1/users/me/notification-preferences"): (
        SIGNED_IN,
        lambda _w, _p: {"channels": ["email"], "kinds": ["POWER_OUTAGE"], "minSeverity": "high"},
    ),
    ("GET", "/api/v1/users/me/webhooks"): (SIGNED_IN, None),
    ("POST", "/api/v1/users/me/webhooks"): (
        (401, 201, 201, 201, 201),
        lambda _w, _p: {"url": "https://receiver.segs.test/segs"},
    ),
    # Only the owner's own webhook: everyone else cannot tell it from a missing one.
    ("DELETE", "/api/v1/users/me/webhooks/<uuid:webhook_id>"): ((401, 204, 404, 404, 404), None),
    ("GET", "/api/v1/admin/stats"): (ADMIN_ONLY, None),
    # Ingestion takes ingestion keys only: an API token, whoever's, is refused (and the rule's
    # "<key>" is no key).
    ("POST", "/api/v1/<key>/telemetry"): (NOBODY, lambda _w, _p: {}),
    ("POST", "/api/v1/<key>/telemetry/batch"): (NOBODY, lambda _w, _p: []),
    # Ingestion keys: admins only.
    ("GET", "/api/v1/ingestion-keys"): (ADMIN_ONLY, None),
    ("POST", "/api/v1/ingestion-keys"): (
        (401, 403, 403, 403, 201),
        lambda _w, _p: {"name": "matrix head-end", "regions": [REGION]},
    ),
    ("GET", "/api/v1/ingestion-keys/<uuid:key_id>"): (ADMIN_ONLY, None),
    ("POST", "/api/v1/ingestion-keys/<uuid:key_id>/revoke"): (ADMIN_ONLY, None),
    ("POST", "/api/v1/ingestion-keys/<uuid:key_id>/rotate"): (
        (401, 403, 403, 403, 201),
        lambda _w, _p: {"overlapSeconds": 60},
    ),
    # Moving a meter is for admins; its moves are shown to whoever may see the meter.
    ("POST", "/api/v1/meters/<meter_id>/move"): (
        ADMIN_ONLY,
        lambda _w, _p: {"region": "Pune-East"},
    ),
    ("GET", "/api/v1/meters/<meter_id>/moves"): (OWN_METER, None),
    # What the pipeline set aside: staff; the first to replay, discard or release wins.
    ("GET", "/api/v1/dead-letters"): (STAFF_ONLY, None),
    ("GET", "/api/v1/dead-letters/<uuid:batch_id>"): (STAFF_ONLY, None),
    ("POST", "/api/v1/dead-letters/<uuid:batch_id>/replay"): ((401, 403, 403, 200, 409), None),
    ("POST", "/api/v1/dead-letters/<uuid:batch_id>/discard"): ((401, 403, 403, 200, 409), None),
    ("GET", "/api/v1/quarantined-windows"): (STAFF_ONLY, None),
    ("GET", "/api/v1/quarantined-windows/<int:window_id>"): (STAFF_ONLY, None),
    ("POST", "/api/v1/quarantined-windows/<int:window_id>/release"): (
        (401, 403, 403, 200, 409),
        None,
    ),
}

# Query strings some routes need to be valid at all.
QUERIES = {
    "/api/v1/meters/<meter_id>/compare": {
        "period1Start": "2026-11-01T00:00:00Z",
        "period1End": "2026-11-02T00:00:00Z",
        "period2Start": "2026-11-02T00:00:00Z",
        "period2End": "2026-11-03T00:00:00Z",
    },
    "/api/v1/tariffs/estimate": {"kwh": "12.5", "region": REGION},
}

# State some routes need before the first caller.
SETUP = {
    "/api/v1/billing/invoices/<int:invoice_id>/resolve": (
        "UPDATE invoices SET status = 'disputed' WHERE id = %s",
        (INVOICE_ID,),
    ),
}

NOT_IN_MATRIX = {"/api/v1/openapi.json"}  # the public OpenAPI document


def api_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.rule not in NOT_IN_MATRIX
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_the_matrix_covers_every_route(app):
    assert api_routes(app) == set(MATRIX)


def build_world(app, client) -> World:
    reset_state()
    owner = create_account(app, region=REGION, meters=(OWNED_METER,))
    other = create_account(app, region=REGION, meters=(OTHER_METER,))
    operator = create_account(app, role="OPERATOR", region=None)
    admin = create_account(app, role="ADMIN", region=None)
    execute("INSERT INTO meters (meter_id, region) VALUES (%s, %s)", (FREE_METER, REGION))
    execute(
        """
        INSERT INTO invoices (id, invoice_number, meter_id, user_id, region, period, period_start,
            period_end, timezone, currency, energy_kwh, energy_minor, demand_minor, tax_rate,
            tax_minor, total_minor, due_at)
        VALUES (%s, 'INV-202610-00004242', %s, %s, %s, '2026-10', '2026-09-30T18:30Z',
            '2026-10-31T18:30Z', 'Asia/Kolkata', 'INR', 16.666667, 10000, 0, 0.18, 1800, %s,
            now() + interval '10 days')
        """,
        (INVOICE_ID, OWNED_METER, owner.id, REGION, INVOICE_TOTAL),
    )
    execute(
        """
        INSERT INTO tariff_overrides (id, region, price_per_kwh, valid_from, valid_to, reason)
        VALUES (%s, %s, 5, '2030-01-01T00:00Z', '2030-01-02T00:00Z', 'matrix')
        """,
        (OVERRIDE_ID, REGION),
    )
    execute(
        "INSERT INTO ingestion_keys (id, name, key_prefix, key_digest, regions) "
        "VALUES (%s, 'matrix', 'segs_matrix', %s, %s)",
        (KEY_ID, "0" * 64, [REGION]),
    )
    execute(
        "INSERT INTO dead_letter_batches (batch_id, shard, received_at_us, rows_json, "
        "reading_count, error_type, error, attempts, status) "
        "VALUES (%s, 0, 0, '[]', 0, 'DataError', 'matrix', 3, 'dead')",
        (BATCH_ID,),
    )
    execute(
        "INSERT INTO quarantined_windows (id, flush_key, size, region, window_start, meters, "
        "meter_count, reading_count, error_type, error, status) VALUES (%s, "
        "'segs:flushing:matrix:segs:win:1m:Pune-West:0', '1m', %s, now(), '{}', 0, 0, "
        "'CheckViolation', 'matrix', 'quarantined')",
        (WINDOW_ID, REGION),
    )
    login = client.post("/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert login.status_code == 200, login.get_json()
    alert_id = scalar(
        "INSERT INTO alerts (type, severity, status, region, meter_id, message, last_seen_at) "
        "VALUES ('POWER_SPIKE', 'medium', 'active', %s, %s, 'spike', now()) RETURNING id",
        (REGION, OWNED_METER),
    )
    webhook_id = uuid.uuid4()
    execute(
        "INSERT INTO webhooks (id, user_id, url, secret) VALUES (%s, %s, %s, 'secret')",
        (webhook_id, owner.id, "https://hooks.example.test/owner"),
    )
    return World(
        owner, other, operator, admin, login.get_json()["refreshToken"], alert_id, webhook_id
    )


def url_for_rule(rule: str, method: str, world: World) -> str:
    unowned = (rule.endswith("/assignment") and method == "PUT") or rule.endswith("/move")
    meter = FREE_METER if unowned else OWNED_METER
    return (
        rule.replace("<uuid:user_id>", str(world.owner.id))
        .replace("<meter_id>", meter)
        .replace("<region>", REGION)
        .replace("<int:alert_id>", str(world.alert_id))
        .replace("<uuid:webhook_id>", str(world.webhook_id))
        .replace("<int:invoice_id>", str(INVOICE_ID))
        .replace("<int:override_id>", str(OVERRIDE_ID))
        .replace("<uuid:key_id>", str(KEY_ID))
        .replace("<uuid:batch_id>", str(BATCH_ID))
        .replace("<int:window_id>", str(WINDOW_ID))
        .replace("<provider>", "testpay")
    )


@pytest.mark.parametrize(("method", "rule"), sorted(MATRIX))
def test_route_answers_each_caller_exactly(app, client, database, method, rule):
    world = build_world(app, client)
    if rule in SETUP:
        execute(*SETUP[rule])
    expected, body = MATRIX[(method, rule)]
    answers = {}
    for persona in PERSONAS:
        account = world.account(persona)
        response = client.open(
            url_for_rule(rule, method, world),
            method=method,
            headers=account.headers if account else {},
            query_string=QUERIES.get(rule),
            json=body(world, persona) if body else None,
        )
        answers[persona] = (response.status_code, response.get_json(silent=True))
    assert {persona: status for persona, (status, _) in answers.items()} == dict(
        zip(PERSONAS, expected, strict=True)
    ), answers
