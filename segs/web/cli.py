"""``flask --app segs.web <command>``: database creation, migrations and partitions."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask

from segs.config import get_settings
from segs.db import raw_connection
from segs.dbadmin import create_database_if_missing
from segs.services.partitions import ensure_partitions

_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _alembic_config() -> Config:
    config = Config(str(_ALEMBIC_INI))
    config.set_main_option("script_location", str(_ALEMBIC_INI.parent / "migrations"))
    return config


def migrate_database() -> None:
    """Create the database if needed, apply every migration and create the current partitions."""
    settings = get_settings()
    if create_database_if_missing(settings.database_url):
        click.echo("created the database")
    command.upgrade(_alembic_config(), "head")
    with raw_connection() as conn:
        created = ensure_partitions(conn, settings, datetime.now(UTC))
    click.echo(f"database is at the latest migration; {created} partitions created")


def register_commands(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate() -> None:
        """Create the database if missing, migrate it to the latest schema, seed the regions."""
        migrate_database()
