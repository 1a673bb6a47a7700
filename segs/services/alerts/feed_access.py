"""Who may open a live-feed stream, and how many are open.

- **Tickets.** A browser's EventSource cannot send an Authorization header, and a bearer token
  in a URL ends up in access logs. So a signed-in client asks the API for a ticket: random,
  valid SEGS_FEED_TICKET_TTL_S, good for one connection (GETDEL), stored only as its hash.
- **Slots.** Each open stream holds a slot in two Redis sorted sets, one per account and one
  for all, scored by when its lease ends; a stream renews its lease while it runs and gives
  the slot back when it ends. A feed process that dies leaves leases that simply expire.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import redis

from segs.services.shared.keyspace import FEED_TAG
from segs.services.shared.lua import LuaScript

_TICKET = "segs:feed:ticket:"
# The two slot sets are updated together: one hash tag (segs.services.shared.keyspace).
_SLOTS = f"segs:{FEED_TAG}:slots"

# Returns 0 (taken), ACCOUNT_FULL or ALL_FULL.
_TAKE = LuaScript(__package__, "feed_access.take_slot.lua")
ACCOUNT_FULL = 1
ALL_FULL = 2


def _ticket_key(ticket: str) -> str:
    return _TICKET + hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(client: redis.Redis, account_id: uuid.UUID, ttl_s: int) -> str:
    """A new single-use ticket for *account_id*'s next feed connection."""
    ticket = secrets.token_urlsafe(32)
    client.set(_ticket_key(ticket), str(account_id), ex=ttl_s)
    return ticket


def redeem_ticket(client: redis.Redis, ticket: str) -> uuid.UUID | None:
    """The account a ticket was issued to, or None (unknown, used or expired); used up now."""
    if not 16 <= len(ticket) <= 128:
        return None
    value = client.getdel(_ticket_key(ticket))
    return uuid.UUID(value.decode()) if value else None


@dataclass(frozen=True)
class StreamSlot:
    """One open stream's place in the caps."""

    client: redis.Redis
    account_id: uuid.UUID
    slot_id: str
    lease_ms: int

    @property
    def _keys(self) -> list[str]:
        return [_SLOTS, f"{_SLOTS}:{self.account_id}"]

    def renew(self, now_ms: int) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._keys:
                pipe.zadd(key, {self.slot_id: now_ms + self.lease_ms}, xx=True)
            pipe.pexpireat(self._keys[1], now_ms + self.lease_ms)
            pipe.execute()

    def release(self) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._keys:
                pipe.zrem(key, self.slot_id)
            pipe.execute()


def take_slot(
    client: redis.Redis,
    account_id: uuid.UUID,
    *,
    now_ms: int,
    lease_ms: int,
    max_streams: int,
    max_per_account: int,
) -> StreamSlot | int:
    """A slot for a new stream, or why not: ACCOUNT_FULL or ALL_FULL."""
    slot = StreamSlot(client, account_id, secrets.token_hex(8), lease_ms)
    outcome = int(
        _TAKE.call(
            client,
            keys={"all_slots": slot._keys[0], "account_slots": slot._keys[1]},
            args={
                "now": now_ms,
                "lease_end": now_ms + lease_ms,
                "max_streams": max_streams,
                "max_per_account": max_per_account,
                "slot": slot.slot_id,
            },
        )
    )
    return slot if outcome == 0 else outcome
