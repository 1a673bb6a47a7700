"""Failed-login counts in Redis, per (account, client address) and per account.

A stranger's failures delay the stranger: the count that can reach minutes is keyed by the
account and the client address together, so the owner, from their own address, is not locked
out. A looser count per account (every address) slows guessing spread over many addresses
by at most SEGS_LOGIN_MAX_DELAY_PER_ACCOUNT_S a try, and its threshold is when the owner is
told by mail. With Redis down nothing can be counted, so logins are refused (the Redis error
becomes a 503): fail closed, never unlimited guesses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

from segs.config import Settings
from segs.domain.lockout import retry_after_s

_PREFIX = "segs:login:failures:"
_TOLD = "segs:login:owner-told:"


def _account_key(email: str) -> str:
    # Hashed: addresses stay out of Redis key names (and the key length is bounded).
    return hashlib.sha256(email.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoginGuard:
    client: redis.Redis
    settings: Settings

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        account = _account_key(email)
        return f"{_PREFIX}{account}:{address}", f"{_PREFIX}{account}"

    def retry_after(self, email: str, address: str, now_s: float) -> int:
        """Seconds *address* must wait before trying *email* again (0: it may try now)."""
        per_client, per_account = self._keys(email, address)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(per_client, "count", "last")
            pipe.hmget(per_account, "count", "last")
            (client_count, client_last), (account_count, account_last) = pipe.execute()
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
        self.client.delete(per_client)
