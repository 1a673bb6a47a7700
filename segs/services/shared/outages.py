"""Which failures are outages (wait and retry) and which are not (set the work aside).

An outage is a dependency that is down, restarting, failing over or out of room: PostgreSQL,
Redis or the pool in front of them. Retrying with backoff is right, for as long as it lasts:
nothing accepted may be lost to it. Any other failure (a constraint, a value PostgreSQL refuses,
a script error, a bug) comes back every time the same work is retried, so the work is tried a
few times and then set aside for an operator (dead letters, quarantined windows), where it
cannot hold up the rest.
"""

from __future__ import annotations

import psycopg
import redis
from sqlalchemy import exc as sa_exc

OUTAGES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection lost, shutdown, deadlock, serialization, disk full
    psycopg.InterfaceError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    redis.ConnectionError,  # includes BusyLoadingError (Redis loading its data set)
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica during failover
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGES)
