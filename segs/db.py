"""The one place that owns the database engine and sessions, for the web app and the workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import cast

import psycopg
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from segs.config import get_settings


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """Return the process-wide engine (recreated in each forked worker by :func:`reset_engine`)."""
    return create_engine(
        get_settings().database_url,
        pool_pre_ping=True,  # a PostgreSQL restart must not surface as one failed task per slot
        pool_size=5,
        max_overflow=5,
    )


@lru_cache(maxsize=1)
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def reset_engine() -> None:
    """Drop pooled connections inherited from a parent process (SQLAlchemy fork guidance)."""
    get_engine().dispose(close=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error."""
    session = _session_factory()()
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
