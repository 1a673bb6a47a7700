"""Creating the database itself, which needs a connection to another database first."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def libpq_conninfo(database_url: str, database: str | None = None) -> str:
    """Turn a SQLAlchemy URL into a libpq connection string, optionally for another database."""
    url = make_url(database_url)
    parts = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": database or url.database,
    }
    present = {key: value for key, value in parts.items() if value}
    return psycopg.conninfo.make_conninfo("", **present)


def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database when it does not exist; True if it was created."""
    name = make_url(database_url).database
    if not name:
        raise ValueError("DATABASE_URL names no database")
    with psycopg.connect(libpq_conninfo(database_url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
