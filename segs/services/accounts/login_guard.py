"""Failed-login counts in Redis, per (account, client address) and per account.

A stranger's failures delay the stranger: the count that can reach minutes is keyed by the
account and the client address together, so the owner, from their own address, is not locked
out. A looser count per account (every address) slows guessing spread over many addresses
by at most SEGS_LOGIN_MAX_DELAY_PER_ACCOUNT_S a try, and its threshold is when the owner is
told by mail. With Redis down nothing can be counted, so logins are refused (the Redis error
becomes a 503): fail closed, never unlimited guesses.

PostgreSQL (login_failures) is the authority and Redis the cache every login reads: each
failure and each success is written to both. A marker key says the cache holds what
PostgreSQL says; when Redis has lost its memory the marker is gone, and the next check loads the
failures of the last SEGS_LOGIN_FAILURE_WINDOW_S back first, so a restart of Redis hands a
guesser no fresh tries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import redis
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.lockout import retry_after_s
from segs.models import LoginFailure

_PREFIX = "segs:login:failures:"
_TOLD = "segs:login:owner-told:"
# Set once the failures PostgreSQL holds are in Redis; gone with Redis's memory.
_LOADED = "segs:login:failures-loaded"

# Opens a session of its own: a failed login's request rolls its own session back.
Sessions = Callable[[], AbstractContextManager[Session]]


def _account_key(email: str) -> str:
    # Hashed: addresses stay out of Redis key names (and the key length is bounded).
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def _client_part(address: str) -> str:
    """The client address as a key part: behind a proxy it comes from a header, so it is bounded
    and printable (login_failures keeps keys of up to 200 characters, and no NUL)."""
    return "".join(char if char.isprintable() else "?" for char in address[:100])


@dataclass(frozen=True)
class LoginGuard:
    client: redis.Redis
    settings: Settings
    sessions: Sessions

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        account = _account_key(email)
        return f"{_PREFIX}{account}:{_client_part(address)}", f"{_PREFIX}{account}"

    def retry_after(self, email: str, address: str, now_s: float) -> int:
        """Seconds *address* must wait before trying *email* again (0: it may try now)."""
        per_client, per_account = self._keys(email, address)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(_LOADED)
            pipe.hmget(per_client, "count", "last")
            pipe.hmget(per_account, "count", "last")
            loaded, (client_count, client_last), (account_count, account_last) = pipe.execute()
        if not loaded:
            self._load(now_s)
            return self.retry_after(email, address, now_s)
        settings = self.settings
        return max(
            retry_after_s(
                int(client_count or 0),
                float(client_last or 0),
                now_s,
                settings.login_free_failures_per_client,
                settings.login_max_delay_per_client_s,
            ),
            retry_after_s(
                int(account_count or 0),
                float(account_last or 0),
                now_s,
                settings.login_free_failures_per_account,
                settings.login_max_delay_per_account_s,
            ),
        )

    def record_failure(self, email: str, address: str, now_s: float) -> bool:
        """Count a failed try; True once per window, when the account's count reaches its
        threshold: the moment to tell the owner."""
        per_client, per_account = self._keys(email, address)
        window = self.settings.login_failure_window_s
        now = datetime.fromtimestamp(now_s, UTC)
        with self.sessions() as session:
            for key in (per_client, per_account):
                session.execute(_count_failure(key.removeprefix(_PREFIX), now, window))
        with self.client.pipeline(transaction=False) as pipe:
            for key in (per_client, per_account):
                pipe.hincrby(key, "count", 1)
                pipe.hset(key, "last", repr(now_s))
                pipe.expire(key, window)
            account_count = int(pipe.execute()[3])
        if account_count < self.settings.login_free_failures_per_account:
            return False
        return bool(self.client.set(_TOLD + _account_key(email), "1", nx=True, ex=window))

    def record_success(self, email: str, address: str) -> None:
        """The owner got in from this address: its count starts again."""
        per_client, _ = self._keys(email, address)
        with self.sessions() as session:
            session.execute(
                delete(LoginFailure).where(LoginFailure.key == per_client.removeprefix(_PREFIX))
            )
        self.client.delete(per_client)

    def _load(self, now_s: float) -> None:
        """Put the failures of the last window from PostgreSQL back into Redis, each count for
        the rest of its window, then set the marker."""
        window = self.settings.login_failure_window_s
        now = datetime.fromtimestamp(now_s, UTC)
        with self.sessions() as session:
            rows = session.execute(
                select(LoginFailure.key, LoginFailure.count, LoginFailure.last_at).where(
                    LoginFailure.last_at > now - timedelta(seconds=window)
                )
            ).all()
        with self.client.pipeline(transaction=False) as pipe:
            for key, count, last_at in rows:
                left = window - int((now - last_at).total_seconds())
                pipe.hset(
                    _PREFIX + key, mapping={"count": count, "last": repr(last_at.timestamp())}
                )
                pipe.expire(_PREFIX + key, max(1, left))
            pipe.set(_LOADED, b"1")
            pipe.execute()


def _count_failure(key: str, now: datetime, window_s: int) -> Insert:
    """One more failure under *key*: the count starts again after a quiet window."""
    stored = LoginFailure.__table__.c
    quiet = stored.last_at < now - timedelta(seconds=window_s)
    return (
        insert(LoginFailure)
        .values(key=key, count=1, last_at=now)
        .on_conflict_do_update(
            index_elements=[stored.key],
            set_={"count": case((quiet, 1), else_=stored.count + 1), "last_at": now},
        )
    )
