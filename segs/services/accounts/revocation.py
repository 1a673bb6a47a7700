"""Revoked tokens, kept in Redis only as long as the tokens they revoke could still be used.

Every access token carries the family id of the login it descends from (refresh rotation keeps
the family). Logging out revokes one access token by its jti and its family; logging out
everywhere, changing or resetting a password, and refresh-token reuse revoke families.

PostgreSQL is the authority: a revoked family is one whose refresh tokens carry ``revoked_at``
(segs.services.accounts.tokens), and Redis is the fast cache every request reads. A marker key says
the cache holds what PostgreSQL says; when Redis has lost its memory (a restart without
persistence, a failover) the marker is gone, and the next check loads the families revoked
within the access tokens' lifetime back from PostgreSQL before it answers. So a logged-out
token stays refused across a Redis restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

_JTI = "segs:jwt:revoked:jti:"
_FAMILY = "segs:jwt:revoked:family:"
# Set once the families revoked in PostgreSQL are in Redis; gone with Redis's memory.
_LOADED = "segs:jwt:revoked:loaded"

# (family id, seconds since its revocation) of every family revoked within the last *s* seconds.
RevokedSince = Callable[[int], list[tuple[str, float]]]


@dataclass
class RevocationList:
    client: redis.Redis
    # No access token lives longer than this, so a family entry can expire after it.
    access_ttl_s: int
    # Reads the families revoked lately from PostgreSQL.
    revoked_since: RevokedSince

    def revoke_token(self, jti: str, expires_at_s: int, now_s: float) -> None:
        """Revoke one token until it expires by itself."""
        remaining = max(1, int(expires_at_s - now_s) + 1)
        self.client.set(_JTI + jti, b"1", ex=remaining)

    def revoke_families(self, family_ids: list[str]) -> None:
        """Revoke every access token of these login families."""
        if not family_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for family_id in family_ids:
            pipe.set(_FAMILY + family_id, b"1", ex=self.access_ttl_s + 1)
        pipe.execute()

    def is_revoked(self, jti: str, family_id: str | None) -> bool:
        """Is this token revoked, by itself or through its family? One round trip (a pipeline,
        not MGET: on a Redis Cluster the keys may live on different nodes), and a load from
        PostgreSQL first if Redis has lost the revocations."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(_LOADED)
        pipe.exists(_JTI + jti)
        if family_id:
            pipe.exists(_FAMILY + family_id)
        loaded, *revoked = pipe.execute()
        if any(revoked):
            return True
        if loaded or not family_id:
            return False
        self._load()
        return bool(self.client.exists(_FAMILY + family_id))

    def _load(self) -> None:
        """Put the families PostgreSQL revoked within the access tokens' lifetime into Redis
        (again), each for the rest of that lifetime, then set the marker."""
        pipe = self.client.pipeline(transaction=False)
        for family_id, age_s in self.revoked_since(self.access_ttl_s + 1):
            pipe.set(_FAMILY + family_id, b"1", ex=max(1, int(self.access_ttl_s + 1 - age_s)))
        pipe.set(_LOADED, b"1")
        pipe.execute()
