"""A real SMTP server for the tests: aiosmtpd on a free local port, keeping what it receives.

The Celery worker subprocess delivers the mail, so the server's address must be in os.environ
before the worker starts (WorkerProcess copies os.environ); :func:`running_mailbox` sets
SEGS_SMTP_HOST and SEGS_SMTP_PORT for as long as the server runs.
"""

from __future__ import annotations

import email
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import wait_for

HOST = "127.0.0.1"
CODE = re.compile(r"\b(\d{6})\b")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_content().replace("\r\n", "\n")

    @property
    def code(self) -> str:
        """The 6-digit code the message carries."""
        match = CODE.search(self.text)
        assert match, self.text
        return match.group(1)


class Mailbox:
    """Messages received by the SMTP server, by recipient."""

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname=HOST, port=port)

    # aiosmtpd handler hook
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def to(self, address: str) -> list[Received]:
        """Every message received for *address* so far, oldest first."""
        with self._lock:
            return [item for item in self._received if address in item.recipients]

    def wait(self, address: str, count: int = 1, timeout: float = 30.0) -> Received:
        """Wait until *address* has *count* messages and return the last of them."""
        wait_for(
            lambda: len(self.to(address)) >= count,
            timeout=timeout,
            message=lambda: f"{len(self.to(address))} of {count} messages to {address}",
        )
        return self.to(address)[count - 1]


@contextmanager
def running_mailbox(port: int | None = None) -> Iterator[Mailbox]:
    """Run a mailbox and point SEGS_SMTP_HOST/PORT at it (restored afterwards)."""
    box = Mailbox(port or free_port())
    saved = {name: os.environ.get(name) for name in ("SEGS_SMTP_HOST", "SEGS_SMTP_PORT")}
    box.start()
    os.environ["SEGS_SMTP_HOST"] = box.host
    os.environ["SEGS_SMTP_PORT"] = str(box.port)
    try:
        yield box
    finally:
        box.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
