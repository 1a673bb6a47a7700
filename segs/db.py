"""The one place that owns the database engine and sessions, for the web app and the workers.

A process's entry point (the app factory, the Celery worker, a script) calls
:func:`configure_database` with its settings; everything else takes sessions from here.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import cast

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from segs.config import ProcessPart
from segs.config import Settings


class _Database:
    """An engine and its session factory."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(
            url,
            pool_pre_ping=True,  # a PostgreSQL restart must not surface as one failed task per slot
            pool_size=5,
            max_overflow=5,
        )
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)


# One engine per database URL in a process, however often it is configured (an app per test).
@lru_cache(maxsize=4)
def _database_at(url: str) -> _Database:
    return _Database(url)


_DATABASE: ProcessPart[_Database] = ProcessPart("segs.db.configure_database")


def configure_database(settings: Settings) -> None:
    """Make the database of *settings* this process's (its engine is built once per URL)."""
    _DATABASE.set(_database_at(settings.database_url))


def get_engine() -> Engine:
    """Return the process's engine (its pool is renewed in each forked worker by
    :func:`reset_engine`)."""
    return _DATABASE.get().engine


def reset_engine() -> None:
    """Drop pooled connections inherited from a parent process (SQLAlchemy fork guidance)."""
    if _DATABASE.is_set:
        get_engine().dispose(close=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error."""
    session = _DATABASE.get().sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def raw_connection() -> Iterator[psycopg.Connection]:
    """Yield a pooled psycopg connection for COPY-heavy paths; the caller commits."""
    pooled = get_engine().raw_connection()
    try:
        yield cast(psycopg.Connection, pooled.driver_connection)
    except BaseException:
        pooled.rollback()
        raise
    finally:
        pooled.close()


_own = threading.local()


@contextmanager
def own_connection() -> Iterator[psycopg.Connection]:
    """Yield this process's (and thread's) own long-lived connection; the caller commits.

    For the reading path, which runs for every batch: checking a connection out of the pool
    costs a pre-ping and a reset on return, two round trips that took a third of a reading
    task's time when profiled. A connection that fails is dropped, and the next call (the
    task's retry) connects again, so a PostgreSQL restart costs one failed attempt.
    """
    conn: psycopg.Connection | None = getattr(_own, "conn", None)
    # After a fork the parent's connection is not ours to use, nor to close.
    if conn is None or conn.closed or getattr(_own, "pid", None) != os.getpid():
        url = get_engine().url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False))
        _own.conn, _own.pid = conn, os.getpid()
        atexit.register(conn.close)
    try:
        yield conn
    except BaseException:
        _discard_if_broken(conn)
        raise
    if conn.info.transaction_status != TransactionStatus.IDLE:
        conn.rollback()


def _discard_if_broken(conn: psycopg.Connection) -> None:
    try:
        conn.rollback()
    except psycopg.Error:
        _own.conn = None
        conn.close()
