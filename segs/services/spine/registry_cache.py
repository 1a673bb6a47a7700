"""What each API process caches of the ingestion keys and the meter registry.

Every ingestion request checks its key and the place of each of its meters. Asking PostgreSQL
each time would cost more than the rest of the request, so each process keeps what it looked up.
A change made through SEGS (a key revoked or rotated, a meter moved or retired) writes a new
generation token to Redis after it commits, and starts over the caches of the process that made
it. The other processes read the token at most every SEGS_REGISTRY_CHECK_S (one GET) and start
over when it is new, so the change holds everywhere within that time. The caches also start over
after SEGS_INGESTION_CACHE_S, which bounds how long a change made behind SEGS's back (in SQL)
goes unseen.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from segs.domain.ingestion_keys import KeyScope
from segs.domain.registry import Place

logger = logging.getLogger(__name__)

GENERATION = "segs:registry:generation"
# Unknown keys remembered per process, so one repeated bad key costs no query each time.
_UNKNOWN_KEYS_LIMIT = 10_000


# The caches of this process, started over at once by a change this process makes.
_local_caches: weakref.WeakSet[RegistryCache] = weakref.WeakSet()


def announce_change(client: redis.Redis) -> None:
    """Make every API process start its caches over: this one now, the others within
    SEGS_REGISTRY_CHECK_S."""
    client.set(GENERATION, uuid.uuid4().hex)
    for cache in list(_local_caches):
        cache.forget()


def announce_after_commit(session: Session, client: redis.Redis) -> None:
    """Announce a registry change once *session* has committed it (not before: a process
    reloading in between would cache the old state again)."""

    def announce(_session: Session) -> None:
        try:
            announce_change(client)
        except redis.RedisError:
            # The change is committed; the caches catch up within SEGS_INGESTION_CACHE_S.
            logger.warning("could not announce a registry change; caches expire on their own")

    event.listen(session, "after_commit", announce, once=True)


@dataclass(eq=False)
class RegistryCache:
    """One process's cached keys (by digest) and meter places, as fresh as the generation."""

    client: redis.Redis
    max_age_s: float
    meter_limit: int
    # How often the generation token is read; 0: at every sync.
    check_every_s: float = 1.0
    keys: dict[str, KeyScope] = field(default_factory=dict)
    unknown_keys: set[str] = field(default_factory=set)
    meters: dict[str, Place] = field(default_factory=dict)
    _token: bytes | None = None
    _since: float = float("-inf")
    _checked_at: float = float("-inf")

    def __post_init__(self) -> None:
        _local_caches.add(self)

    def sync(self) -> None:
        """Start over if the registry changed or the caches are too old; reads the generation
        token (one Redis GET) at most every ``check_every_s``.

        :raises redis.RedisError: Redis is unavailable.
        """
        now = time.monotonic()
        if now - self._checked_at < self.check_every_s:
            return
        token = self.client.get(GENERATION)
        self._checked_at = now
        if token != self._token or now - self._since > self.max_age_s:
            self.forget()
            self._token = token
            self._since = now

    def forget(self) -> None:
        self.keys.clear()
        self.unknown_keys.clear()
        self.meters.clear()

    def remember_key(self, digest: str, scope: KeyScope | None) -> None:
        if scope is not None:
            self.keys[digest] = scope
        elif len(self.unknown_keys) < _UNKNOWN_KEYS_LIMIT:
            self.unknown_keys.add(digest)

    def remember_meters(self, places: Mapping[str, Place]) -> None:
        if len(self.meters) + len(places) > self.meter_limit:
            self.meters.clear()
        self.meters.update(places)
