"""The caller of a guarded view as the audit log records them."""

from __future__ import annotations

from flask import request

from segs.services.accounts.audit import Actor
from segs.web.security import current_account


def current_actor() -> Actor:
    """The verified account and the address it calls from (call only inside a guarded view)."""
    return Actor(current_account(), request.remote_addr)
