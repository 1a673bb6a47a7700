"""Verification mail survives an SMTP server that is down: the worker retries until it answers.

Its own module: it needs a worker of its own, pointed at a port where nothing listens yet, and
no other worker taking the task.
"""

from __future__ import annotations

import time

import pytest

from tests.mailbox import free_port
from tests.mailbox import running_mailbox
from tests.support import WorkerProcess

pytestmark = pytest.mark.integration


def test_mail_is_retried_until_the_smtp_server_answers(client, clean_state, tmp_path):
    port = free_port()
    worker = WorkerProcess(tmp_path / "worker")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGS_SMTP_HOST", "127.0.0.1")
        patch.setenv("SEGS_SMTP_PORT", str(port))
        worker.start()
    try:
        body = {"name": "Asha Rao", "email": "patient@example.test", "region": "Pune-West"}
        assert client.post("/api/v1/auth/register", json=body).status_code == 202
        # Nothing listens yet: the first delivery fails and is retried with backoff.
        time.sleep(1.5)
        with running_mailbox(port) as late_box:
            received = late_box.wait("patient@example.test", timeout=40)
    finally:
        worker.stop()
    assert received.subject == "Your SEGS verification code"
    # The same task came back at least once: each retry is a new delivery of it.
    assert worker.log().count("Task segs.tasks.mail.send_email[") >= 2
