"""Notifications and the alert API: email over a real SMTP server, signed webhooks to a real
HTTP server (retries, dead letters), the live feed, preferences, and the operators' actions.

One worker, mailbox and webhook receiver serve the whole module; each test has its own accounts
and meters.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

from segs.celery_app import app as celery_app
from segs.db import session_scope
from segs.domain import alerts as rules
from segs.domain.signatures import signature_problem
from segs.domain.webhooks import SIGNATURE_HEADER
from segs.domain.webhooks import TIMESTAMP_HEADER
from segs.redis_client import get_redis
from segs.services.alerts.lifecycle import Condition
from segs.services.alerts.lifecycle import raise_alert
from segs.tasks.notifications import deliver_notification
from segs.tasks.notifications import dispatch_transition
from segs.tasks.notifications import redispatch_stale_transitions
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import execute
from tests.support import now_us
from tests.support import post_and_fold
from tests.support import query
from tests.support import reading
from tests.support import scalar
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Mumbai-North"
S = MICRO


class Receiver(ThreadingHTTPServer):
    """Keeps every POST; answers 500 on paths starting with /fail, and only after a second on
    paths starting with /slow."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def to(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return [item for item in self.received if item[0] == path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.received.append((self.path, dict(self.headers.items()), body))
        if self.path.startswith("/slow"):
            time.sleep(1)
        self.send_response(500 if self.path.startswith("/fail") else 204)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


def recorded(sql: str, params: tuple, expected: list[tuple]) -> None:
    """Wait until *sql* returns *expected*: a delivery's row is written once the receiver has
    answered, so a test that saw the request may look before the row is there."""
    wait_for(
        lambda: query(sql, params) == expected, timeout=10, message=lambda: repr(query(sql, params))
    )


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def spike(client, worker, meter: str, region: str = REGION, last: float = 10.0) -> None:
    """Five readings at 4 kW, then one at *last* kW."""
    start = now_us() - 60 * S
    powers = [4.0] * 5 + [last]
    post_and_fold(
        client, worker, [reading(meter, region, start + i * S, p) for i, p in enumerate(powers)]
    )


def open_alert(meter: str) -> int:
    return wait_for(
        lambda: scalar("SELECT max(id) FROM alerts WHERE meter_id = %s", (meter,)), timeout=10
    )


@pytest.fixture(scope="module")
def feed_client(database):
    """The feed process's app (the API serves no stream)."""
    from segs.web.feed_app import create_feed_app

    return create_feed_app().test_client()


def feed_events(feed_client, account, cursor: str) -> list[tuple[str, dict]]:
    """What the live feed sends this account from *cursor* within one connection."""
    response = feed_client.get(
        "/api/v1/feed", headers={**account.headers, "Last-Event-ID": cursor}, buffered=True
    )
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields.get("event") not in (None, "ready"):
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_spike_reaches_its_owner_by_email_webhook_and_feed(
    app, client, feed_client, mail_worker, mailbox, receiver
):
    meter = "NOTE-SPIKE-1"
    owner = create_account(app, region=REGION, meters=(meter,))
    operator = create_account(app, role="OPERATOR", region=None)
    created = client.post(
        "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": receiver.url("/owner")}
    )
    assert created.status_code == 201
    secret = created.get_json()["secret"]

    spike(client, mail_worker, meter)
    alert_id = open_alert(meter)
    message = mailbox.wait(owner.email)
    assert message.subject == f"[SEGS] medium POWER_SPIKE created: {meter}"
    assert "Sudden power consumption spike: 150.0% increase" in message.text

    wait_for(lambda: receiver.to("/owner"), timeout=10)
    [(_, headers, body)] = receiver.to("/owner")
    assert (
        signature_problem(
            secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], time.time()
        )
        is None
    )
    payload = json.loads(body)
    assert payload["event"] == "alert.created"
    assert payload["alert"]["id"] == alert_id and payload["alert"]["meterId"] == meter

    answer = client.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", headers=operator.headers, json={"note": "on it"}
    )
    assert answer.status_code == 200 and answer.get_json()["status"] == "acknowledged"
    assert mailbox.wait(owner.email, count=2).subject == (
        f"[SEGS] medium POWER_SPIKE acknowledged: {meter}"
    )
    wait_for(lambda: len(receiver.to("/owner")) == 2, timeout=10)
    # The customer's copy names no one on the staff and carries no note.
    acknowledged = json.loads(receiver.to("/owner")[1][2])
    assert acknowledged["event"] == "alert.acknowledged"
    assert "note" not in acknowledged["transition"] and "actorId" not in acknowledged["transition"]
    assert "on it" not in mailbox.to(owner.email)[1].text
    recorded(
        "SELECT channel, attempt, status FROM notification_deliveries WHERE user_id = %s "
        "ORDER BY channel, id",
        (owner.id,),
        [
            ("email", 1, "sent"),
            ("email", 1, "sent"),
            ("webhook", 1, "sent"),
            ("webhook", 1, "sent"),
        ],
    )

    # The feed replays both transitions from the start of the streams (as after a reconnect).
    assert [name for name, _ in feed_events(feed_client, owner, "0-0,0-0")] == [
        "alert.created",
        "alert.acknowledged",
    ]
    owner_events = feed_events(feed_client, owner, "0-0,0-0")
    assert "on it" not in json.dumps(owner_events) and str(operator.id) not in json.dumps(
        owner_events
    )
    staff_events = feed_events(feed_client, operator, "0-0")
    assert ("alert.acknowledged", alert_id) in [
        (name, data["alert"]["id"]) for name, data in staff_events
    ]
    [staff_ack] = [data for name, data in staff_events if name == "alert.acknowledged"]
    assert staff_ack["transition"]["note"] == "on it"
    assert staff_ack["transition"]["actorId"] == str(operator.id)
    # Another customer sees none of it.
    stranger = create_account(app, region=REGION)
    assert feed_events(feed_client, stranger, "0-0,0-0") == []


def test_preferences_choose_channels_kinds_and_severity(app, client, mail_worker, receiver):
    meter = "NOTE-PREFS-1"
    owner = create_account(app, region=REGION, meters=(meter,))
    assert (
        client.post(
            "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": receiver.url("/p")}
        ).status_code
        == 201
    )
    answer = client.put(
        "/api/v1/users/me/notification-preferences",
        headers=owner.headers,
        json={"channels": ["webhook"], "kinds": ["POWER_OUTAGE"], "minSeverity": "high"},
    )
    assert answer.get_json() == {
        "channels": ["webhook"],
        "kinds": ["POWER_OUTAGE"],
        "minSeverity": "high",
        "isDefault": False,
    }
    spike(client, mail_worker, meter)  # a medium spike: not a kind this customer wants
    spike_transition = wait_for(
        lambda: scalar(
            "SELECT max(t.id) FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
            "WHERE a.meter_id = %s",
            (meter,),
        ),
        timeout=10,
    )
    wait_for(lambda: get_redis().exists(f"segs:notified:transition:{spike_transition}"), timeout=10)
    post_and_fold(client, mail_worker, [reading(meter, REGION, now_us() - 30 * S, 0.0)])  # outage
    wait_for(lambda: receiver.to("/p"), timeout=10)
    assert [json.loads(body)["alert"]["type"] for _, _, body in receiver.to("/p")] == [
        "POWER_OUTAGE"
    ]
    recorded(
        "SELECT channel FROM notification_deliveries WHERE user_id = %s",
        (owner.id,),
        [("webhook",)],
    )


def test_a_failing_webhook_is_tried_three_times_then_dead_lettered(
    app, client, mail_worker, receiver
):
    meter = "NOTE-FAIL-1"
    owner = create_account(app, region=REGION, meters=(meter,))
    execute(
        "INSERT INTO notification_preferences (user_id, channels, kinds, min_severity) "
        "VALUES (%s, '{webhook}', '{POWER_SPIKE}', 'low')",
        (owner.id,),
    )
    client.post(
        "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": receiver.url("/fail")}
    )
    spike(client, mail_worker, meter)
    wait_for(
        lambda: scalar(
            "SELECT count(*) FROM notification_dead_letters WHERE user_id = %s", (owner.id,)
        ),
        timeout=15,
    )
    assert len(receiver.to("/fail")) == 3
    assert query(
        "SELECT attempt, status, error FROM notification_deliveries WHERE user_id = %s "
        "ORDER BY attempt",
        (owner.id,),
    ) == [
        (attempt, "failed", f"DeliveryFailedError: {receiver.url('/fail')} answered 500")
        for attempt in (1, 2, 3)
    ]
    [(attempts, subject)] = query(
        "SELECT attempts, subject FROM notification_dead_letters WHERE user_id = %s", (owner.id,)
    )
    assert attempts == 3 and subject.startswith("transition:")


def test_a_tariff_change_reaches_the_regions_customers(
    app, client, feed_client, mail_worker, mailbox
):
    customer = create_account(app, region="Pune-East")
    elsewhere = create_account(app, region="Pune-West")
    effective = datetime(2026, 11, 22, 18, 0, tzinfo=UTC).isoformat()
    celery_app.send_task(
        "segs.tasks.notifications.announce_tariff_change",
        kwargs={
            "region": "Pune-East",
            "previous_price": "5.00",
            "price": "6.25",
            "effective_from": effective,
            "reason": "AUTO: Critical load (93.1% > 90%)",
        },
        queue="notifications",
    )
    message = mailbox.wait(customer.email)
    assert message.subject == f"[SEGS] Tariff change in Pune-East: 6.25 per kWh from {effective}"
    assert "New price 6.25 per kWh" in message.text
    [(name, data)] = feed_events(feed_client, customer, "0-0,0-0")
    assert name == "tariff.changed"
    assert data["tariff"] == {
        "region": "Pune-East",
        "previousPrice": "5.00",
        "price": "6.25",
        "effectiveFrom": effective,
        "reason": "AUTO: Critical load (93.1% > 90%)",
    }
    assert feed_events(feed_client, elsewhere, "0-0,0-0") == []
    assert mailbox.to(elsewhere.email) == []


def _alert(meter, kind, severity, status, created, acknowledged=None, resolved=None) -> int:
    return scalar(
        "INSERT INTO alerts (type, severity, status, region, meter_id, message, created_at, "
        "last_seen_at, acknowledged_at, resolved_at) "
        "VALUES (%s, %s, %s, 'Chennai-North', %s, 'm', %s, %s, %s, %s) RETURNING id",
        (kind, severity, status, meter, created, created, acknowledged, resolved),
    )


def test_operators_list_filter_resolve_and_count(app, client, mail_worker):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    minute = 60
    at = lambda seconds: datetime.fromtimestamp(base.timestamp() + seconds, UTC)  # noqa: E731
    first = _alert("OPS-1", "POWER_SPIKE", "high", "acknowledged", at(0), acknowledged=at(60))
    second = _alert(
        "OPS-2", "POWER_DROP", "low", "resolved", at(minute), at(2 * minute), at(5 * minute)
    )
    third = _alert("OPS-3", "POWER_SPIKE", "medium", "active", at(2 * minute))
    operator = create_account(app, role="OPERATOR", region=None)
    window = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}

    page = client.get(
        "/api/v1/alerts",
        headers=operator.headers,
        query_string={**window, "type": "POWER_SPIKE", "pageSize": 1},
    ).get_json()
    assert (page["total"], [item["id"] for item in page["items"]]) == (2, [third])
    assert (
        client.get(
            "/api/v1/alerts", headers=operator.headers, query_string={"severity": "urgent"}
        ).status_code
        == 422
    )

    stats = client.get("/api/v1/alerts/stats", headers=operator.headers, query_string=window)
    assert stats.get_json() == {
        "total": 3,
        "byStatus": {"acknowledged": 1, "resolved": 1, "active": 1},
        "byType": {"POWER_SPIKE": 2, "POWER_DROP": 1},
        "byRegion": {"Chennai-North": 3},
        "meanTimeToAcknowledgeS": 60.0,  # (60 + 60) / 2
        "meanTimeToResolveS": 240.0,
    }

    bulk = client.post(
        "/api/v1/alerts/resolve",
        headers=operator.headers,
        json={"ids": [first, second, third, 10**12], "note": "storm over"},
    )
    assert bulk.get_json() == {"resolved": [first, third], "skipped": [second, 10**12]}
    detail = client.get(f"/api/v1/alerts/{third}", headers=operator.headers).get_json()
    assert detail["status"] == "resolved" and detail["resolutionNote"] == "storm over"
    assert [(t["kind"], t["fromStatus"], t["actorId"]) for t in detail["transitions"]] == [
        ("resolved", "active", str(operator.id))
    ]
    again = client.post(f"/api/v1/alerts/{third}/resolve", headers=operator.headers, json={})
    assert again.status_code == 409
    assert client.get("/api/v1/alerts/999999999", headers=operator.headers).status_code == 404
    beyond_bigint = "9" * 30
    assert (
        client.get(f"/api/v1/alerts/{beyond_bigint}", headers=operator.headers).status_code == 404
    )
    assert (
        client.post(f"/api/v1/alerts/{beyond_bigint}/resolve", headers=operator.headers, json={})
    ).status_code == 404
    assert (
        scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'alert.resolve' AND actor_id = %s",
            (operator.id,),
        )
        == 2
    )


def test_customers_see_only_their_meters_alerts(app, client, mail_worker):
    owner = create_account(app, region="Chennai-North", meters=("MINE-1",))
    mine = _alert("MINE-1", "POWER_SPIKE", "high", "active", datetime.now(UTC))
    _alert("THEIRS-1", "POWER_SPIKE", "high", "active", datetime.now(UTC))
    page = client.get("/api/v1/users/me/alerts", headers=owner.headers).get_json()
    assert [item["id"] for item in page["items"]] == [mine]
    bad = client.put(
        "/api/v1/users/me/notification-preferences",
        headers=owner.headers,
        json={"channels": ["sms"], "kinds": [], "minSeverity": "low"},
    )
    assert bad.status_code == 422
    assert "channels" in bad.get_json()["error"]["details"]["json"]


def test_a_delivery_queued_twice_is_sent_once(app, mailbox, mail_worker):
    """A dispatch that dies after queuing its deliveries, before marking itself done, runs
    again and queues them again: the second copy of each finds it delivered and sends nothing."""
    account = create_account(app, region=REGION)
    delivery = account.delivery("transition:sent-once", "[SEGS] sent once")
    results = [deliver_notification.apply(kwargs=delivery.as_task_args()).get() for _ in (1, 2)]
    assert results == ["sent", "already sent"]
    assert [received.subject for received in mailbox.to(account.email)] == ["[SEGS] sent once"]
    assert query(
        "SELECT channel, status FROM notification_deliveries WHERE subject = %s",
        ("transition:sent-once",),
    ) == [("email", "sent")]


def raise_without_dispatch(meter: str, kind: str) -> int:
    """Commit a new alert's `created` transition and enqueue nothing, as a worker that dies
    right after the commit would; return the transition's id."""
    with session_scope() as session:
        [transition] = raise_alert(
            session, Condition(kind, REGION, meter), "medium", "raised", datetime.now(UTC)
        )
    return transition


def dispatched_at(transition_id: int) -> datetime | None:
    return scalar("SELECT dispatched_at FROM alert_transitions WHERE id = %s", (transition_id,))


def test_the_outbox_sweep_dispatches_a_transition_whose_dispatch_was_lost(
    app, client, mail_worker, mailbox
):
    """Issue 4: a crash between a transition's commit and enqueue_transitions lost its
    notifications for ever. Beat's sweep now dispatches it once it is stale, and leaves alone
    the transitions dispatched as usual."""
    meter = "NOTE-OUTBOX-1"
    owner = create_account(app, region=REGION, meters=(meter,))
    spike(client, mail_worker, meter)
    assert mailbox.wait(owner.email).subject == f"[SEGS] medium POWER_SPIKE created: {meter}"
    [(dispatched,)] = query(
        "SELECT t.id FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id "
        "WHERE a.meter_id = %s",
        (meter,),
    )
    wait_for(lambda: dispatched_at(dispatched), timeout=10)

    lost = raise_without_dispatch(meter, rules.METER_OUTAGE)
    assert redispatch_stale_transitions.run() == 0  # its own dispatch may still be on its way
    execute(
        "UPDATE alert_transitions SET at = at - interval '1 minute' WHERE id IN (%s, %s)",
        (dispatched, lost),
    )
    assert redispatch_stale_transitions.run() == 1  # the lost one only
    assert redispatch_stale_transitions.run() == 0  # its copy is queued: not another one
    assert mailbox.wait(owner.email, count=2).subject == (
        f"[SEGS] medium METER_OUTAGE created: {meter}"
    )
    wait_for(lambda: dispatched_at(lost), timeout=10)
    assert len(mailbox.to(owner.email)) == 2


def test_a_dispatch_run_again_puts_its_event_on_the_feed_once(
    app, client, feed_client, mail_worker, mailbox
):
    """Issue 4: a dispatch that died after publishing, before marking itself done, ran again
    and showed the event twice on the live feed. Its deliveries are sent once as well."""
    meter = "NOTE-FEED-ONCE-1"
    owner = create_account(app, region=REGION, meters=(meter,))
    operator = create_account(app, role="OPERATOR", region=None)
    transition = raise_without_dispatch(meter, rules.POWER_SPIKE)
    duplicates = mail_worker.metric("segs_notifications_total", channel="email", status="duplicate")

    assert dispatch_transition.run(transition) == 1
    get_redis().delete(f"segs:notified:transition:{transition}")  # as if it died before that
    assert dispatch_transition.run(transition) == 1

    assert [name for name, _ in feed_events(feed_client, owner, "0-0,0-0")] == ["alert.created"]
    staff = [
        data
        for name, data in feed_events(feed_client, operator, "0-0")
        if name.startswith("alert.")
    ]
    assert [data["transition"]["id"] for data in staff].count(transition) == 1
    wait_for(
        lambda: (
            mail_worker.metric("segs_notifications_total", channel="email", status="duplicate")
            > duplicates
        ),
        timeout=10,
    )
    assert [message.subject for message in mailbox.to(owner.email)] == [
        f"[SEGS] medium POWER_SPIKE created: {meter}"
    ]


def test_two_copies_of_a_delivery_sending_at_once_send_it_once(app, client, mail_worker, receiver):
    """Issue 4: two copies of one delivery running at the same moment both found it not
    delivered yet, and both sent it. The copy that finds the other's claim waits, then finds
    it delivered."""
    account = create_account(app, region=REGION)
    hook = client.post(
        "/api/v1/users/me/webhooks", headers=account.headers, json={"url": receiver.url("/slow")}
    ).get_json()
    delivery = account.delivery(
        "transition:claimed-once", "[SEGS] claimed once", channel="webhook", target=hook["id"]
    )

    def duplicates() -> float:
        return mail_worker.metric("segs_notifications_total", channel="webhook", status="duplicate")

    before = duplicates()
    # The worker's two pool processes take one copy each; the receiver holds each POST 1 s.
    for _ in range(2):
        deliver_notification.apply_async(kwargs=delivery.as_task_args(), queue="notifications")
    wait_for(
        lambda: duplicates() > before or len(receiver.to("/slow")) > 1,
        timeout=15,
        message=lambda: mail_worker.log()[-4000:],
    )
    assert len(receiver.to("/slow")) == 1
    assert query(
        "SELECT channel, attempt, status FROM notification_deliveries WHERE subject = %s",
        ("transition:claimed-once",),
    ) == [("webhook", 1, "sent")]
    assert mail_worker.metric("segs_notifications_total", channel="webhook", status="busy") >= 1


def test_a_claim_left_by_a_copy_that_died_expires_and_the_delivery_is_sent(
    app, mailbox, mail_worker
):
    """A copy killed while sending never releases its claim: the claim expires, and a copy
    that found it taken sends the notification then (at least once)."""
    account = create_account(app, region=REGION)
    delivery = account.delivery("transition:claim-expired", "[SEGS] sent after the claim expired")
    busy = mail_worker.metric("segs_notifications_total", channel="email", status="busy")
    get_redis().set(
        f"segs:delivering:{delivery.subject}:email:{account.email}", "dead-copy", px=1500
    )
    deliver_notification.apply_async(kwargs=delivery.as_task_args(), queue="notifications")
    assert mailbox.wait(account.email, timeout=15).subject == delivery.title
    assert mail_worker.metric("segs_notifications_total", channel="email", status="busy") > busy
