"""``flask --app segs.web <command>``: database, partitions, accounts and demo data."""

from __future__ import annotations

import secrets
from datetime import UTC
from datetime import datetime
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask
from marshmallow import ValidationError
from marshmallow import validate

from segs.config import get_settings
from segs.db import raw_connection
from segs.db import session_scope
from segs.dbadmin import create_database_if_missing
from segs.domain.access import ADMIN
from segs.domain.access import ROLES
from segs.domain.access import USER
from segs.domain.accounts import DEFAULT_TIMEZONE
from segs.errors import SegsError
from segs.services import demo
from segs.services import users
from segs.services.audit import SYSTEM
from segs.services.partitions import ensure_partitions
from segs.services.passwords import Passwords

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


def _failure(exc: SegsError) -> click.ClickException:
    """A one-line error naming each field's problem; click exits with status 1."""
    reasons = exc.details if isinstance(exc.details, dict) else {}
    parts = [
        f"{field}: {'; '.join(problems) if isinstance(problems, list) else problems}"
        for field, problems in reasons.items()
    ]
    return click.ClickException(" - ".join([exc.message, *parts]))


def _email(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return str(validate.Email()(value))
    except ValidationError as exc:
        raise click.BadParameter(f"{value!r} is not an email address") from exc


def create_account(new: users.NewAccount) -> users.AccountView:
    """Create a verified account as the system (audited with no actor)."""
    passwords = Passwords(get_settings())
    try:
        with session_scope() as session:
            account = users.create_user(session, passwords, SYSTEM, new)
    except SegsError as exc:
        raise _failure(exc) from exc
    click.echo(f"created {account.role} {account.email} (id {account.id})")
    return account


def new_demo_password() -> str:
    """A random password that meets the rule ("demo-" gives a letter, the end a digit)."""
    return f"demo-{secrets.token_urlsafe(9)}{secrets.randbelow(10)}"


def seed_demo(password: str | None) -> None:
    """Create or refresh the demo accounts and print how to log in with them."""
    if get_settings().is_production:
        raise click.ClickException("seed-demo does not run with SEGS_ENV=production")
    password = password or new_demo_password()
    try:
        with session_scope() as session:
            seeded = demo.seed_demo(session, Passwords(get_settings()), password)
    except SegsError as exc:
        raise _failure(exc) from exc
    click.echo(f"demo accounts, all with the password {password}")
    for item in seeded:
        plan = item.account
        line = f"  {plan.role:<8} {plan.email:<28} {'created' if item.created else 'refreshed'}"
        if item.meter_ids:
            line += f"  {plan.region}: {', '.join(item.meter_ids)}"
        click.echo(line)
        for meter_id, reason in item.skipped.items():
            click.echo(f"    not assigned {meter_id}: {reason}")
    click.echo('log in with POST /api/v1/auth/login {"email": "...", "password": "..."}')


_PASSWORD = click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 10 characters with a letter and a digit; asked for when not given.",
)


def register_commands(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate() -> None:
        """Create the database if missing, migrate it to the latest schema, seed the regions."""
        migrate_database()

    @app.cli.command("create-admin")
    @click.option("--email", required=True, callback=_email, help="The admin's login.")
    @click.option("--name", default="Administrator", show_default=True)
    @_PASSWORD
    def create_admin(email: str, name: str, password: str) -> None:
        """Create an ADMIN account that can log in at once (the first admin, typically)."""
        create_account(users.NewAccount(email=email, name=name, password=password, role=ADMIN))

    @app.cli.command("create-user")
    @click.option("--email", required=True, callback=_email, help="The account's login.")
    @click.option("--role", type=click.Choice(ROLES), default=USER, show_default=True)
    @click.option("--name", help="Display name  [default: the part of the email before @]")
    @click.option("--region", help="A known region; a USER needs one to own meters.")
    @click.option("--timezone", default=DEFAULT_TIMEZONE, show_default=True)
    @_PASSWORD
    def create_user(
        email: str,
        role: str,
        name: str | None,
        region: str | None,
        timezone: str,
        password: str,
    ) -> None:
        """Create an account of any role that can log in at once."""
        create_account(
            users.NewAccount(
                email=email,
                name=name or email.split("@", 1)[0],
                password=password,
                role=role,
                region=region,
                timezone=timezone,
            )
        )

    @app.cli.command("seed-demo")
    @click.option(
        "--password",
        help="Password of every demo account  [default: a new random one, printed]",
    )
    def seed(password: str | None) -> None:
        """Create (or refresh) demo accounts: an admin, an operator, customers with meters.

        The customers own meters the default simulator sends readings for. Running it again
        creates nothing twice and sets every demo account's password to the one printed.
        """
        seed_demo(password)
