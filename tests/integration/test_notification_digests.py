"""Per-recipient limits end to end: a real worker delivers over a real SMTP server and to a real
HTTP receiver; what is over the limit is held in PostgreSQL and arrives as one digest.

The module's worker allows 3 notifications per recipient and hour. Beat's digest run is called
here directly, once the held notifications are made older than SEGS_NOTIFY_DIGEST_S.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC
from datetime import datetime

import pytest

from segs.db import session_scope
from segs.domain import alerts as rules
from segs.domain.digests import DIGEST_EVENT
from segs.domain.signatures import signature_problem
from segs.domain.webhooks import DELIVERY_HEADER
from segs.domain.webhooks import SIGNATURE_HEADER
from segs.domain.webhooks import TIMESTAMP_HEADER
from segs.redis_client import get_redis
from segs.services.alerts.digests import Recipient
from segs.services.alerts.lifecycle import Condition
from segs.services.alerts.lifecycle import clear_condition
from segs.services.alerts.lifecycle import raise_alert
from segs.tasks.notifications import deliver_digest
from segs.tasks.notifications import deliver_notification
from segs.tasks.notifications import enqueue_transitions
from segs.tasks.notifications import send_due_digests
from tests import support
from tests.accounts import create_account
from tests.integration.test_alert_notifications import Receiver
from tests.support import execute
from tests.support import query
from tests.support import scalar
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Mumbai-North"
LIMIT = 3
DIGEST_S = 900


@pytest.fixture(scope="module")
def digest_worker(mailbox, database, tmp_path_factory):
    """A worker (and this process's settings) allowing LIMIT notifications an hour."""
    with (
        pytest.MonkeyPatch.context() as env,
        support.task_settings(notify_max_per_hour=LIMIT, notify_digest_s=DIGEST_S),
    ):
        env.setenv("SEGS_NOTIFY_MAX_PER_HOUR", str(LIMIT))
        env.setenv("SEGS_NOTIFY_DIGEST_S", str(DIGEST_S))
        support.reset_state()
        proc = support.WorkerProcess(tmp_path_factory.mktemp("digest-worker"))
        proc.start()
        try:
            yield proc
        finally:
            proc.kill()


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def raise_spikes(meters: list[str]) -> dict[str, int]:
    """Open a spike alert on each meter and dispatch it; return each meter's alert id."""
    transitions = []
    with session_scope() as session:
        for meter in meters:
            transitions += raise_alert(
                session,
                Condition(rules.POWER_SPIKE, REGION, meter),
                "medium",
                f"spike on {meter}",
                datetime.now(UTC),
            )
    enqueue_transitions(transitions)
    return {
        meter: scalar("SELECT id FROM alerts WHERE meter_id = %s", (meter,)) for meter in meters
    }


def held(user_id) -> list[tuple[str, str | None]]:
    return query(
        "SELECT subject, digest_subject FROM notification_digest_items WHERE user_id = %s "
        "ORDER BY id",
        (user_id,),
    )


def settled_deliveries(user_id, count: int) -> None:
    """Wait until *count* deliveries of this account were sent or held."""
    wait_for(
        lambda: (
            scalar(
                "SELECT count(*) FROM notification_deliveries "
                "WHERE user_id = %s AND status = 'sent'",
                (user_id,),
            )
            + len(held(user_id))
            >= count
        ),
        timeout=20,
    )


def make_digests_due() -> None:
    execute(
        "UPDATE notification_digest_items SET held_at = held_at - make_interval(secs => %s) "
        "WHERE digest_subject IS NULL",
        (DIGEST_S,),
    )


def test_over_the_limit_the_rest_arrive_in_one_digest_and_others_are_unaffected(
    app, mailbox, digest_worker
):
    many = create_account(app, region=REGION, meters=tuple(f"DIG-A{i}" for i in range(5)))
    other = create_account(app, region=REGION, meters=tuple(f"DIG-B{i}" for i in range(3)))

    alerts = raise_spikes(many.meters)
    settled_deliveries(many.id, 5)
    wait_for(lambda: len(mailbox.to(many.email)) == LIMIT, timeout=20)
    individually = {message.subject for message in mailbox.to(many.email)}
    held_meters = [meter for meter in many.meters if not any(meter in s for s in individually)]
    assert len(individually) == LIMIT and len(held_meters) == 2
    assert [digest for _, digest in held(many.id)] == [None, None]

    # Another customer, under the limit, hears of each alert on its own meanwhile.
    raise_spikes(other.meters)
    wait_for(lambda: len(mailbox.to(other.email)) == 3, timeout=20)
    assert held(other.id) == []

    # A held alert resolves: the resolve is held too, and the digest shows it resolved.
    resolved_meter = held_meters[0]
    with session_scope() as session:
        resolved = clear_condition(
            session, Condition(rules.POWER_SPIKE, REGION, resolved_meter), datetime.now(UTC)
        )
    enqueue_transitions(resolved)
    wait_for(lambda: len(held(many.id)) == 3, timeout=20)

    assert send_due_digests.run() == 0  # not yet due
    make_digests_due()
    assert send_due_digests.run() == 1  # the other customer has nothing held
    digest = mailbox.wait(many.email, count=LIMIT + 1)
    assert digest.subject == "[SEGS] Digest of 3 held notifications"
    lines = [line for line in digest.text.splitlines() if line.startswith("- ")]
    assert len(lines) == 2
    first, second = sorted(lines, key=lambda line: resolved_meter not in line)
    assert first.startswith(f"- [SEGS] medium POWER_SPIKE resolved: {resolved_meter} (alert ")
    assert f"alert {alerts[resolved_meter]}, medium, now resolved; at " in first
    assert first.endswith("; events: alert.created, alert.resolved)")
    assert second.startswith(f"- [SEGS] medium POWER_SPIKE created: {held_meters[1]} (alert ")
    assert f"alert {alerts[held_meters[1]]}, medium, now active; at " in second
    for meter in many.meters:
        assert digest.text.count(f": {meter} (") == (meter in held_meters)

    [(digest_subject,)] = query(
        "SELECT DISTINCT digest_subject FROM notification_digest_items WHERE user_id = %s",
        (many.id,),
    )
    assert digest_subject.startswith("digest:")
    assert query(
        "SELECT subject LIKE 'digest:%%', status, count(*) FROM notification_deliveries "
        "WHERE user_id = %s GROUP BY 1, 2 ORDER BY 1",
        (many.id,),
    ) == [(False, "sent", LIMIT), (True, "sent", 1)]
    time.sleep(1)
    assert len(mailbox.to(many.email)) == LIMIT + 1
    assert len(mailbox.to(other.email)) == 3


def test_a_webhook_gets_one_signed_digest_post(app, client, receiver, digest_worker):
    owner = create_account(app, region=REGION, meters=tuple(f"DIG-W{i}" for i in range(5)))
    execute(
        "INSERT INTO notification_preferences (user_id, channels, kinds, min_severity) "
        "VALUES (%s, '{webhook}', '{POWER_SPIKE}', 'low')",
        (owner.id,),
    )
    created = client.post(
        "/api/v1/users/me/webhooks", headers=owner.headers, json={"url": receiver.url("/digest")}
    ).get_json()

    alerts = raise_spikes(owner.meters)
    settled_deliveries(owner.id, 5)
    wait_for(lambda: len(receiver.to("/digest")) == LIMIT, timeout=20)
    sent_alone = {json.loads(body)["alert"]["id"] for _, _, body in receiver.to("/digest")}
    assert len(held(owner.id)) == 2

    make_digests_due()
    assert send_due_digests.run() == 1
    wait_for(lambda: len(receiver.to("/digest")) == LIMIT + 1, timeout=20)
    _, headers, body = receiver.to("/digest")[LIMIT]
    assert (
        signature_problem(
            created["secret"],
            headers[TIMESTAMP_HEADER],
            body,
            headers[SIGNATURE_HEADER],
            time.time(),
        )
        is None
    )
    payload = json.loads(body)
    assert payload["event"] == DIGEST_EVENT
    assert sorted(item["alert"]["id"] for item in payload["notifications"]) == sorted(
        set(alerts.values()) - sent_alone
    )
    assert [item["events"] for item in payload["notifications"]] == [["alert.created"]] * 2
    [(digest_subject,)] = query(
        "SELECT DISTINCT digest_subject FROM notification_digest_items WHERE user_id = %s",
        (owner.id,),
    )
    assert headers[DELIVERY_HEADER] == digest_subject


def tariff(price: str) -> dict[str, str]:
    return {
        "region": REGION,
        "previousPrice": "5.00",
        "price": price,
        "effectiveFrom": "2026-12-08T18:00:00+00:00",
        "reason": "AUTO",
    }


def test_a_digest_or_a_held_delivery_run_again_sends_nothing_twice(app, mailbox, digest_worker):
    account = create_account(app, region=REGION)
    deliveries = [
        replace(
            account.delivery(f"tariff:{REGION}:again-{i}", f"[SEGS] tariff {i}"),
            payload={"event": "tariff.changed", "tariff": tariff(f"{i}.00")},
        )
        for i in range(5)
    ]
    for delivery in deliveries:
        deliver_notification.apply_async(kwargs=delivery.as_task_args(), queue="notifications")
    settled_deliveries(account.id, 5)
    assert len(held(account.id)) == 2

    # A held delivery run again, its Redis mark lost: still held once, not sent.
    [held_subject, _] = [subject for subject, _ in held(account.id)]
    [again] = [delivery for delivery in deliveries if delivery.subject == held_subject]
    get_redis().delete(f"segs:delivered:{held_subject}:email:{account.email}")
    assert deliver_notification.apply(kwargs=again.as_task_args()).get() == "held"
    assert len(held(account.id)) == 2

    # Two copies of the digest at once (the worker's two processes), then a third.
    make_digests_due()
    recipient = Recipient("email", account.email, str(account.id))
    for _ in range(2):
        deliver_digest.apply_async(kwargs=recipient.as_task_args(), queue="notifications")
    digest = mailbox.wait(account.email, count=LIMIT + 1)
    assert digest.subject == "[SEGS] Digest of 2 held notifications"
    assert deliver_digest.apply(kwargs=recipient.as_task_args()).get() == "nothing held"
    assert send_due_digests.run() == 0
    time.sleep(1)
    assert len(mailbox.to(account.email)) == LIMIT + 1
    assert query(
        "SELECT count(*) FROM notification_deliveries WHERE user_id = %s "
        "AND subject LIKE 'digest:%%'",
        (account.id,),
    ) == [(1,)]
