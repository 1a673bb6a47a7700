"""Issue 15: what a hostile customer tries, refused. Webhooks reach only public addresses (the
refusals are checked before any connection; the happy path goes to a local receiver through
the test-only loopback setting), payments need staff or the provider's signature, a meter's
data, alerts and bills follow who owned it when, customers see no staff notes, and CSV cells
are not formulas."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import uuid
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from segs.db import raw_connection
from segs.db import session_scope
from segs.domain.billing import month_bounds
from segs.domain.signatures import signature
from segs.domain.signatures import signature_problem
from segs.services.alerts import deliveries
from segs.services.alerts.planning import Delivery
from segs.services.alerts.webhook_client import fixed_resolver
from segs.services.pricing.billing_run import run_billing
from segs.services.spine.partitions import ensure_partitions
from segs.web import create_app
from tests import support
from tests.accounts import create_account
from tests.support import execute
from tests.support import query
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGION = "Pune-West"
STRICT = {
    "webhook_allow_loopback": False,
    "webhook_allow_http": False,
    "webhook_ports": ((443, 443), (8443, 8443)),
}


class RawReceiver:
    """A TCP server on 127.0.0.1 that counts connections and answers with *reply* (bytes, or a
    callable that writes to the socket)."""

    def __init__(self, reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                try:
                    self.reply(conn) if callable(self.reply) else conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


OK = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def _settings(**changes):
    return dataclasses.replace(support.settings(), **changes)


# --------------------------------------------------------------------------- webhooks


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "must start with https://"),
        ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
        ("https://[::1]/hook", "::1 is a loopback address"),
        ("https://localhost:6379/", "port 6379 is not allowed"),
        ("https://127.0.0.1:5432/", "port 5432 is not allowed"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::ffff:169.254.169.254]/", "link-local"),
        ("https://10.0.0.7/hook", "private"),
        ("https://100.64.3.4/hook", "shared (CGNAT)"),
        ("https://224.0.0.9/hook", "multicast"),
        ("https://user:pass@93.184.215.14/hook", "user name or password"),
        ("https://internal.segs.test/hook", "internal.segs.test resolves to 10.1.2.3"),
        ("https://loop.segs.test/hook", "loop.segs.test resolves to 127.0.0.1"),
        ("https://nowhere.segs.test/hook", "nowhere.segs.test cannot be resolved"),
    ],
)
def test_a_webhook_to_a_non_public_address_is_refused_when_saved(clean_state, url, reason):
    hosts = (("internal.segs.test", "10.1.2.3"), ("loop.segs.test", "127.0.0.1"))
    app = create_app(_settings(**STRICT, webhook_test_hosts=hosts))
    owner = create_account(app, region=REGION)
    response = app.test_client().post(
        "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": url}
    )
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "WEBHOOK_URL_REFUSED"
    assert reason in error["details"]["url"][0]
    assert scalar("SELECT count(*) FROM webhooks") == 0


def test_a_webhook_to_a_public_address_is_saved_without_connecting(clean_state):
    app = create_app(_settings(**STRICT))
    owner = create_account(app, region=REGION)
    response = app.test_client().post(
        "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": "https://93.184.215.14/in"}
    )
    assert response.status_code == 201


def _webhook(owner, url: str) -> Delivery:
    hook_id = uuid.uuid4()
    execute(
        "INSERT INTO webhooks (id, user_id, url, secret) VALUES (%s, %s, %s, 'hook-secret')",
        (hook_id, owner.id, url),
    )
    return Delivery(
        "transition:1", "webhook", str(owner.id), str(hook_id), "t", {"event": "alert.created"}
    )


def _deliver(delivery, settings, table) -> str | None:
    with session_scope() as session:
        return deliveries.deliver(session, settings, delivery, 1, fixed_resolver(table))


def test_a_name_that_resolves_to_loopback_at_send_time_is_not_connected_to(app, clean_state):
    """DNS rebinding: saved while public, resolving to 127.0.0.1 when sent."""
    receiver = RawReceiver(OK)
    try:
        owner = create_account(app, region=REGION)
        delivery = _webhook(owner, f"https://rebind.segs.test:{receiver.port}/in")
        settings = _settings(**{**STRICT, "webhook_ports": ((receiver.port, receiver.port),)})
        error = _deliver(delivery, settings, {"rebind.segs.test": "127.0.0.1"})
        assert error is not None and "127.0.0.1 is a loopback address" in error
        time.sleep(0.2)
        assert receiver.connections == 0
        assert query("SELECT status FROM notification_deliveries") == [("failed",)]
    finally:
        receiver.close()


def test_a_webhook_goes_to_the_checked_address_signed_with_a_timestamp(app, clean_state):
    receiver = RawReceiver(OK)
    try:
        owner = create_account(app, region=REGION)
        delivery = _webhook(owner, f"http://hooks.segs.test:{receiver.port}/in?x=1")
        # hooks.segs.test is in no DNS: the request can only have reached the receiver through
        # the address the check resolved, with the name kept in the Host header.
        before = time.time()
        assert _deliver(delivery, support.settings(), {"hooks.segs.test": "127.0.0.1"}) is None
        [request] = receiver.requests
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /in?x=1 HTTP/1.1"
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        assert headers["host"] == f"hooks.segs.test:{receiver.port}"
        assert headers["x-segs-delivery"] == "transition:1"
        assert int(headers["x-segs-timestamp"]) >= int(before)
        assert headers["x-segs-signature"] == signature(
            "hook-secret", int(headers["x-segs-timestamp"]), body
        )
        assert (
            signature_problem(
                "hook-secret",
                headers["x-segs-timestamp"],
                body,
                headers["x-segs-signature"],
                time.time(),
            )
            is None
        )
        assert json.loads(body) == {"event": "alert.created"}
    finally:
        receiver.close()


def _huge_answer(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n")
    chunk = b"x" * 65536
    try:
        for _ in range(4800):  # 300 MiB, if anyone read it
            conn.sendall(chunk)
    except OSError:
        pass


def _trickle(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (_huge_answer, None),
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
            "answered 302",
        ),
        (_trickle, "TimeoutError"),
    ],
)
def test_answers_are_not_read_redirects_not_followed_and_the_deadline_holds(
    app, clean_state, reply, outcome
):
    receiver = RawReceiver(reply)
    try:
        owner = create_account(app, region=REGION)
        delivery = _webhook(owner, f"http://hooks.segs.test:{receiver.port}/in")
        started = time.monotonic()
        error = _deliver(
            delivery, _settings(webhook_timeout_s=1.0), {"hooks.segs.test": "127.0.0.1"}
        )
        elapsed = time.monotonic() - started
        assert (error is None) if outcome is None else (outcome in error), error
        # The status is all that is read: a 300 MiB answer costs no time (and no memory), a
        # trickling one no more than the 1 s deadline.
        assert elapsed < 1.8
        assert receiver.connections == 1  # the redirect was not followed
    finally:
        receiver.close()


# --------------------------------------------------------------------------- payments


def _invoice(owner, invoice_id: int, meter: str, total: int = 11800) -> None:
    execute(
        """
        INSERT INTO invoices (id, invoice_number, meter_id, user_id, region, period, period_start,
            period_end, timezone, currency, energy_kwh, energy_minor, demand_minor, tax_rate,
            tax_minor, total_minor, due_at)
        VALUES (%s, %s, %s, %s, %s, '2026-10', '2026-09-30T18:30Z', '2026-10-31T18:30Z',
            'Asia/Kolkata', 'INR', 16.666667, 10000, 0, 0.18, 1800, %s, now() + interval '9 days')
        """,
        (invoice_id, f"INV-202610-{invoice_id:08d}", meter, owner.id, REGION, total),
    )


def _callback(client, body: dict, *, secret: str = "test-provider-secret", age_s: int = 0):
    raw = json.dumps(body).encode()
    timestamp = int(time.time()) - age_s
    return client.post(
        "/api/v1/billing/payment-callbacks/testpay",
        data=raw,
        content_type="application/json",
        headers={
            "X-SEGS-Timestamp": str(timestamp),
            "X-SEGS-Signature": signature(secret, timestamp, raw),
        },
    )


def test_a_customer_cannot_settle_an_invoice_only_the_signed_callback_can(app, client, clean_state):
    owner = create_account(app, region=REGION, meters=("PAY-1",))
    _invoice(owner, 501, "PAY-1")
    # The request that used to mark it paid now starts a pending payment; cash is not offered.
    cash = client.post(
        "/api/v1/billing/invoices/501/pay",
        headers=owner.headers,
        json={"amountMinor": 11800, "method": "cash", "reference": "nothing was paid"},
    )
    assert cash.status_code == 422
    started = client.post(
        "/api/v1/billing/invoices/501/pay",
        headers=owner.headers,
        json={"amountMinor": 11800, "method": "card"},
    )
    assert started.status_code == 202
    payment = started.get_json()
    assert payment["status"] == "pending" and payment["provider"] == "testpay"
    assert scalar("SELECT status FROM invoices WHERE id = 501") == "pending"
    # Asking again gives the same pending payment.
    again = client.post(
        "/api/v1/billing/invoices/501/pay",
        headers=owner.headers,
        json={"amountMinor": 11800, "method": "upi"},
    )
    assert again.get_json()["id"] == payment["id"]

    callback = {"reference": payment["reference"], "status": "succeeded", "amountMinor": 11800}
    # Forged, stale or unsigned callbacks change nothing.
    assert _callback(client, callback, secret="guessed").status_code == 401
    assert _callback(client, callback, age_s=600).status_code == 401
    unsigned = client.post("/api/v1/billing/payment-callbacks/testpay", json=callback)
    assert unsigned.get_json()["error"]["code"] == "INVALID_SIGNATURE"
    assert _callback(client, {**callback, "amountMinor": 1}).status_code == 422
    assert scalar("SELECT status FROM invoices WHERE id = 501") == "pending"

    settled = _callback(client, callback)
    assert settled.status_code == 200
    assert settled.get_json() == {
        "paymentId": payment["id"],
        "invoiceId": 501,
        "status": "succeeded",
    }
    assert query("SELECT status, paid_minor FROM invoices WHERE id = 501") == [("paid", 11800)]
    assert _callback(client, callback).status_code == 200  # a repeat changes nothing
    assert scalar("SELECT paid_minor FROM invoices WHERE id = 501") == 11800
    assert [row[0] for row in query("SELECT action FROM audit_log ORDER BY id")] == [
        "invoice.payment.started",
        "invoice.payment.settled",
    ]


def test_staff_record_payments_and_every_payment_is_audited(app, client, clean_state):
    owner = create_account(app, region=REGION, meters=("PAY-2", "PAY-3"))
    operator = create_account(app, role="OPERATOR", region=None)
    _invoice(owner, 502, "PAY-2")
    recorded = client.post(
        "/api/v1/billing/invoices/502/payments",
        headers=operator.headers,
        json={"amountMinor": 11800, "method": "bank_transfer", "reference": "UTR 123"},
    )
    assert recorded.status_code == 201
    assert recorded.get_json()["status"] == "paid"
    assert query("SELECT action, actor_id, details->>'reference' FROM audit_log") == [
        ("invoice.payment.recorded", operator.id, "UTR 123")
    ]
    # A customer cannot use the staff route.
    _invoice(owner, 503, "PAY-3")
    response = client.post(
        "/api/v1/billing/invoices/503/payments",
        headers=owner.headers,
        json={"amountMinor": 11800, "method": "cash"},
    )
    assert response.status_code == 403


# --------------------------------------------------------------------------- ownership over time


def _window(meter: str, start: datetime, kwh: str) -> None:
    execute(
        """
        INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count, power_sum_kw,
            avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count,
            last_reading_at)
        VALUES (%s, %s, %s, 1, 4, 4, 4, 4, %s, 0, 0, %s)
        """,
        (meter, start, REGION, kwh, start),
    )


def test_each_owner_is_billed_and_reads_only_their_own_interval(app, client, clean_state):
    # Last month: whole and past whatever today's date is (this month may be hours old).
    first_of_this_month = datetime.now(ZoneInfo("Asia/Kolkata")).replace(day=1)
    period = (first_of_this_month - timedelta(days=1)).strftime("%Y-%m")
    month_start, month_end = month_bounds(period, ZoneInfo("Asia/Kolkata"))
    with raw_connection() as conn:
        # Partitions are kept only as far back as the oldest reading the API accepts.
        ensure_partitions(conn, support.settings(), month_start + timedelta(days=2))
    before = month_start + timedelta(hours=12)
    handover = month_start + timedelta(days=1)
    after = month_start + timedelta(days=1, hours=12)
    first = create_account(app, region=REGION, meters=("OWN-1",))
    second = create_account(app, region=REGION)
    execute("UPDATE meter_assignments SET assigned_from = %s", (month_start - timedelta(days=40),))
    # Handed over: the trigger closes the first owner's interval and opens the second's.
    execute(
        "UPDATE meters SET owner_id = %s, assigned_at = %s WHERE meter_id = 'OWN-1'",
        (second.id, handover),
    )
    _window("OWN-1", before, "3.000000")
    _window("OWN-1", after, "5.000000")

    with raw_connection() as conn:
        report = run_billing(
            conn,
            period,
            tax_rate=support.settings().billing_tax_rate,
            due_days=15,
            now=month_end + timedelta(hours=2),
            regions=[REGION],
        )
    assert report.created == 2
    assert sorted(query("SELECT user_id, energy_kwh FROM invoices")) == sorted(
        [
            (first.id, Decimal("3.000000")),
            (second.id, Decimal("5.000000")),
        ]
    )

    def energy(account) -> float:
        response = client.get(
            "/api/v1/meters/OWN-1/stats",
            headers=account.headers,
            query_string={
                "start": (month_start).isoformat(),
                "end": (month_start + timedelta(days=2)).isoformat(),
            },
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()["period"]["energyKwh"]

    # The new owner does not see the previous owner's use, nor the previous owner the new one's.
    assert energy(second) == 5
    assert energy(first) == 3
    operator = create_account(app, role="OPERATOR", region=None)
    assert energy(operator) == 8

    alert_id = scalar(
        "INSERT INTO alerts (type, severity, status, region, meter_id, message, created_at, "
        "last_seen_at, acknowledged_by, acknowledgement_note) VALUES ('POWER_SPIKE', 'medium', "
        "'acknowledged', %s, 'OWN-1', 'spike', %s, %s, %s, 'staff only: customer shouts') "
        "RETURNING id",
        (REGION, before, before, operator.id),
    )

    def alert_ids(account) -> list[int]:
        response = client.get("/api/v1/users/me/alerts", headers=account.headers)
        return [item["id"] for item in response.get_json()["items"]]

    assert alert_ids(first) == [alert_id] and alert_ids(second) == []
    [item] = client.get("/api/v1/users/me/alerts", headers=first.headers).get_json()["items"]
    assert "acknowledgedBy" not in item and "acknowledgementNote" not in item
    assert str(operator.id) not in json.dumps(item)


def test_the_migration_made_existing_assignments_intervals(app, clean_state):
    owner = create_account(app, region=REGION, meters=("MIG-1",))
    assert query("SELECT user_id, assigned_to FROM meter_assignments") == [(owner.id, None)]
    execute("UPDATE meters SET owner_id = NULL, assigned_at = NULL")
    [(user_id, closed)] = query("SELECT user_id, assigned_to FROM meter_assignments")
    assert user_id == owner.id and closed is not None


# --------------------------------------------------------------------------- exports


def test_the_invoice_export_writes_no_formulas(app, client, clean_state):
    owner = create_account(app, region=REGION)
    operator = create_account(app, role="OPERATOR", region=None)
    _invoice(owner, 504, '=HYPERLINK("http://x.example","y")')
    body = client.get("/api/v1/billing/export.csv", headers=operator.headers).get_data(as_text=True)
    row = body.splitlines()[1]
    assert row.split(",")[1].startswith("\"'=HYPERLINK")


# --------------------------------------------------------------------------- the live feed


def _feed(**changes):
    from segs.web.feed_app import create_feed_app

    return create_feed_app(_settings(**changes)).test_client()


def test_the_api_serves_no_stream_and_the_feed_takes_no_token_in_the_url(app, client, clean_state):
    customer = create_account(app, region=REGION)
    assert client.get("/api/v1/feed", headers=customer.headers).status_code == 404
    feed = _feed()
    in_url = feed.get(f"/api/v1/feed?access_token={customer.token}", buffered=True)
    assert in_url.status_code == 401
    assert feed.get("/api/v1/feed", headers=customer.headers, buffered=True).status_code == 200


def test_a_feed_ticket_opens_one_stream_once(app, client, clean_state):
    customer = create_account(app, region=REGION)
    issued = client.post("/api/v1/feed/tickets", headers=customer.headers)
    assert issued.status_code == 201
    ticket = issued.get_json()["ticket"]
    assert issued.get_json()["expiresIn"] == support.settings().feed_ticket_ttl_s
    feed = _feed()
    first = feed.get(f"/api/v1/feed?ticket={ticket}", buffered=True)
    assert first.status_code == 200 and first.mimetype == "text/event-stream"
    again = feed.get(f"/api/v1/feed?ticket={ticket}", buffered=True)
    assert again.status_code == 401
    assert again.get_json()["error"]["code"] == "TICKET_INVALID"
    assert feed.get("/api/v1/feed?ticket=made-up-ticket-123", buffered=True).status_code == 401


def test_open_streams_are_capped_per_account_and_in_total(app, clean_state):
    from segs.redis_client import get_redis
    from segs.services.alerts import feed_access

    customer = create_account(app, region=REGION)
    neighbour = create_account(app, region=REGION)
    held = feed_access.take_slot(
        get_redis(),
        customer.id,
        now_ms=int(time.time() * 1000),
        lease_ms=60_000,
        max_streams=10,
        max_per_account=10,
    )
    assert isinstance(held, feed_access.StreamSlot)
    feed = _feed(feed_max_streams_per_account=1, feed_max_streams=2)
    refused = feed.get("/api/v1/feed", headers=customer.headers, buffered=True)
    assert refused.status_code == 429
    assert "this account's live-feed streams" in refused.get_json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    # The neighbour takes the last slot of the server; after its stream ends the slot is free.
    assert feed.get("/api/v1/feed", headers=neighbour.headers, buffered=True).status_code == 200
    full = _feed(feed_max_streams_per_account=5, feed_max_streams=1)
    refused = full.get("/api/v1/feed", headers=neighbour.headers, buffered=True)
    assert "the server's live-feed streams" in refused.get_json()["error"]["message"]
    held.release()
    assert feed.get("/api/v1/feed", headers=customer.headers, buffered=True).status_code == 200


def test_feed_connects_are_rate_limited(app, clean_state):
    customer = create_account(app, region=REGION)
    feed = _feed(feed_connect_rate="2 per minute")
    for _ in range(2):
        assert feed.get("/api/v1/feed", headers=customer.headers, buffered=True).status_code == 200
    assert feed.get("/api/v1/feed", headers=customer.headers, buffered=True).status_code == 429
