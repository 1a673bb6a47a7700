"""Revoked tokens, kept in Redis only as long as the tokens they revoke could still be used.

Every access token carries the family id of the login it descends from (refresh rotation keeps
the family). Logging out revokes one access token by its jti and its family; logging out
everywhere, changing or resetting a password, and refresh-token reuse revoke families.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

_JTI = "segs:jwt:revoked:jti:"
_FAMILY = "segs:jwt:revoked:family:"


@dataclass
class RevocationList:
    client: redis.Redis
    # No access token lives longer than this, so a family entry can expire after it.
    access_ttl_s: int

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
        not MGET: on a Redis Cluster the two keys may live on different nodes)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(_JTI + jti)
        if family_id:
            pipe.exists(_FAMILY + family_id)
        return any(pipe.execute())
