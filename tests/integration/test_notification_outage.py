"""A notification survives PostgreSQL being unreachable: its delivery task is retried, sends
nothing meanwhile, and sends once the database is back.

Its own module: it needs a worker of its own, pointed at a port where no PostgreSQL listens, and
no other worker taking the task.
"""

from __future__ import annotations

import pytest

from segs.tasks.notifications import deliver_notification
from tests.accounts import create_account
from tests.mailbox import free_port
from tests.support import WorkerProcess
from tests.support import query
from tests.support import wait_for

pytestmark = pytest.mark.integration

TASK_RECEIVED = "Task segs.tasks.notifications.deliver_notification["


def test_a_delivery_waits_out_a_database_outage(app, clean_state, mailbox, tmp_path):
    account = create_account(app, region="Pune-West")
    delivery = account.delivery("transition:outage", "[SEGS] after the outage")
    unreachable = f"postgresql+psycopg://127.0.0.1:{free_port()}/segs"
    worker = WorkerProcess(tmp_path / "worker")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", unreachable)
        worker.start()
    try:
        deliver_notification.apply_async(kwargs=delivery.as_task_args(), queue="notifications")
        # A failed task would be received once and acknowledged, and the notification lost.
        wait_for(
            lambda: worker.log().count(TASK_RECEIVED) >= 2,
            timeout=30,
            message=lambda: f"the delivery was not retried:\n{worker.log()[-4000:]}",
        )
        assert mailbox.to(account.email) == []
        # PostgreSQL is back: a worker that can reach it takes the retried task over.
        worker.stop()
        worker.start()
        received = mailbox.wait(account.email, timeout=40)
    finally:
        worker.stop()
    assert received.subject == "[SEGS] after the outage"
    assert [mail.subject for mail in mailbox.to(account.email)] == ["[SEGS] after the outage"]
    assert query(
        "SELECT channel, status FROM notification_deliveries WHERE subject = %s",
        ("transition:outage",),
    ) == [("email", "sent")]
