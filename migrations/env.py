"""Alembic environment: migrations run online against DATABASE_URL."""

from alembic import context

from segs.db import get_engine
from segs.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
