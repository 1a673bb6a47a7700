"""``flask --app segs.web <command>``: database, partitions, accounts and demo data."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path

import click
import orjson
from alembic import command
from alembic.config import Config
from flask import Flask
from flask import current_app
from marshmallow import ValidationError
from marshmallow import validate

from segs.config import Settings
from segs.db import configure_database
from segs.db import raw_connection
from segs.db import session_scope
from segs.dbadmin import create_database_if_missing
from segs.domain.access import ADMIN
from segs.domain.access import ROLES
from segs.domain.access import USER
from segs.domain.accounts import DEFAULT_TIMEZONE
from segs.domain.capacity import capacity_problem
from segs.errors import SegsError
from segs.redis_client import get_redis
from segs.services.accounts import users
from segs.services.accounts.audit import SYSTEM
from segs.services.accounts.passwords import Passwords
from segs.services.grid import demo
from segs.services.grid import regions as region_settings
from segs.services.spine import dead_letters
from segs.services.spine import ingestion_keys
from segs.services.spine import quarantine
from segs.services.spine import recompute
from segs.services.spine.partitions import ensure_partitions
from segs.tasks.readings import publish_batches
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store
from segs.tasks.windows import flush_closed_windows
from segs.web.field_names import answering_with
from segs.web.ingestion_keys.schemas import KEY_REQUEST_FIELDS

_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _alembic_config() -> Config:
    config = Config(str(_ALEMBIC_INI))
    config.set_main_option("script_location", str(_ALEMBIC_INI.parent / "migrations"))
    return config


def _settings() -> Settings:
    """The settings of the app the command runs in."""
    settings: Settings = current_app.config["SEGS_SETTINGS"]
    return settings


def migrate_database(settings: Settings) -> None:
    """Create the database of *settings* if needed, apply every migration and create the current
    partitions."""
    if create_database_if_missing(settings.database_url):
        click.echo("created the database")
    configure_database(settings)
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
    passwords = Passwords(_settings())
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
    if _settings().is_production:
        raise click.ClickException("seed-demo does not run with SEGS_ENV=production")
    password = password or new_demo_password()
    try:
        with session_scope() as session:
            seeded = demo.seed_demo(session, Passwords(_settings()), password)
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


def create_ingestion_key(request: ingestion_keys.KeyRequest) -> str:
    """Create a key as the system (audited with no actor); return the plain key."""
    try:
        with answering_with(KEY_REQUEST_FIELDS), session_scope() as session:
            created = ingestion_keys.create_key(session, SYSTEM, request, datetime.now(UTC))
    except SegsError as exc:
        raise _failure(exc) from exc
    key = created.key
    scope = f"meter {key.meter_id}" if key.meter_id else ", ".join(key.regions or ["every region"])
    click.echo(f"created {key.kind} key {key.name!r} (id {key.id}) for {scope}")
    click.echo("the key is shown this once; store it now:")
    click.echo(created.plain)
    return created.plain


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Reading batches set aside after failing for a reason other than an outage."""


@dead_letters_group.command("list")
@click.option("--status", type=click.Choice(dead_letters.STATUSES), help="Only this status.")
def list_dead_letters(status: str | None) -> None:
    """List dead letters, newest first."""
    with session_scope() as session:
        page = dead_letters.list_dead_letters(session, status, page=1, page_size=10_000)
    for letter in page.items:
        click.echo(
            f"{letter.batch_id}  {letter.status:<9} {letter.reading_count:>5} readings  "
            f"{letter.dead_at:%Y-%m-%d %H:%M:%S}  {letter.error_type}: {letter.error[:80]}"
        )
    click.echo(f"{page.total} dead letter(s)")


@dead_letters_group.command("show")
@click.argument("batch_id", type=click.UUID)
def show_dead_letter(batch_id: uuid.UUID) -> None:
    """Show one dead letter, its error and its readings (as JSON lines)."""
    try:
        with session_scope() as session:
            letter = dead_letters.get_dead_letter(session, batch_id)
    except SegsError as exc:
        raise _failure(exc) from exc
    click.echo(f"batch {letter.batch_id}: {letter.status}, set aside {letter.times_dead} time(s)")
    click.echo(f"after {letter.attempts} attempts: {letter.error_type}: {letter.error}")
    for row in letter.rows or []:
        click.echo(orjson.dumps(row).decode())


@dead_letters_group.command("replay")
@click.argument("batch_id", type=click.UUID)
def replay_dead_letter(batch_id: uuid.UUID) -> None:
    """Publish a dead batch again under its own id (after fixing its cause)."""
    try:
        with session_scope() as session:
            dead_letters.replay(session, SYSTEM, batch_id, publish_batches, datetime.now(UTC))
    except SegsError as exc:
        raise _failure(exc) from exc
    click.echo(f"replayed {batch_id}; if it fails again it comes back as a dead letter")


@dead_letters_group.command("discard")
@click.argument("batch_id", type=click.UUID)
def discard_dead_letter(batch_id: uuid.UUID) -> None:
    """Give up on a dead batch: its readings are not counted."""
    try:
        with session_scope() as session:
            dead_letters.discard(session, SYSTEM, batch_id, datetime.now(UTC))
    except SegsError as exc:
        raise _failure(exc) from exc
    click.echo(f"discarded {batch_id}")


def _utc(_: click.Context, __: click.Parameter, value: datetime) -> datetime:
    """A date and time given without a zone is taken as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_INSTANT = click.DateTime(
    ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
)


@click.command("recompute-aggregates")
@click.option(
    "--since", type=_INSTANT, required=True, callback=_utc, help="From (UTC unless given)."
)
@click.option("--until", type=_INSTANT, required=True, callback=_utc, help="To, excluded.")
def recompute_aggregates_command(since: datetime, until: datetime) -> None:
    """Rebuild the aggregates of every quarter-hour from --since to --until from raw_readings.

    Safe while the spine runs, and idempotent: a quarter-hour with a window still in Redis is
    left for its flush (run again later), and readings of batches not folded yet are left for
    theirs. After Redis lost its memory SEGS rebuilds what it held by itself.
    """
    if until <= since:
        raise click.BadParameter("must be after --since", param_hint="--until")
    try:
        with raw_connection() as conn:
            report = recompute.recompute_aggregates(
                conn, get_redis(), get_window_store(), get_pending_ledger(), since, until
            )
    except recompute.FlushRunningError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = ", ".join(f"{table} {count}" for table, count in sorted(report.rows.items()))
    click.echo(f"rebuilt {report.quarters} quarter-hour(s) from raw_readings: {rows or 'no rows'}")
    if report.unfolded_batches:
        click.echo(f"left out the readings of {report.unfolded_batches} batch(es) not folded yet")
    if report.busy:
        starts = ", ".join(quarter.isoformat() for quarter in report.busy)
        click.echo(f"left for their flush (a window still in Redis): {starts}")


@click.command("flush-quarantined")
@click.option("--id", "window_ids", type=int, multiple=True, help="Only this window (repeat).")
def flush_quarantined(window_ids: tuple[int, ...]) -> None:
    """Release quarantined windows (every one by default) and flush them now."""
    now = datetime.now(UTC)
    store = get_window_store()
    try:
        with session_scope() as session:
            if window_ids:
                for window_id in window_ids:
                    quarantine.release(session, store, SYSTEM, window_id, now)
                released = len(window_ids)
            else:
                released = quarantine.release_all(session, store, SYSTEM, now)
    except SegsError as exc:
        raise _failure(exc) from exc
    report = flush_closed_windows.run()
    if report.get("skipped"):
        click.echo(f"released {released} window(s); a flush is running, the next one writes them")
        return
    click.echo(
        f"released {released} window(s); flushed {report['windows']} window(s), "
        f"{report['quarantined']} quarantined (again)"
    )


def _capacity(_ctx: click.Context, _param: click.Parameter, value: str) -> Decimal:
    try:
        capacity = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{value!r} is not a number of kW") from exc
    problem = capacity_problem(capacity)
    if problem is not None:
        raise click.BadParameter(f"{value}: {problem}")
    return capacity


# ignore_unknown_options: a negative KW reaches the check above instead of reading as an option.
@click.command("set-region-capacity", context_settings={"ignore_unknown_options": True})
@click.argument("regions", nargs=-1, required=True, metavar="REGION...")
@click.argument("capacity_kw", metavar="KW", callback=_capacity)
def set_region_capacity_command(regions: tuple[str, ...], capacity_kw: Decimal) -> None:
    """Set the capacity of each REGION to KW kilowatts (audited, with the CLI as the actor).

    A region's load is 100 x (the sum of its meters' mean power) / capacity: the load bands
    price on it and overload alerts fire on it (above 90 % by default). Size a region so its
    usual load sits in 40-70 %, e.g. capacity = expected total kW / 0.55. KW is from 1 to
    100,000,000 with at most 3 decimal places. Several regions are set in one transaction: an
    unknown name changes none of them. Windows flushed from now on use the new capacity;
    windows already stored keep the one they were computed with.

    \b
    The seed simulator's fleet (5,000 meters over 4 regions, mean 4.5 kW each: 5,625 kW per
    region) at about 56 %:
      flask --app segs.web set-region-capacity \\
          Pune-West Mumbai-North Delhi-South Bangalore-East 10000
    """
    try:
        with session_scope() as session:
            changes = [
                region_settings.set_capacity(session, SYSTEM, name, capacity_kw)
                for name in dict.fromkeys(regions)
            ]
    except SegsError as exc:
        raise _failure(exc) from exc
    for change in changes:
        now_kw = change.region.capacity_kw
        if change.changed:
            click.echo(f"{change.region.name}: {change.previous_kw} kW -> {now_kw} kW")
        else:
            click.echo(f"{change.region.name}: already {now_kw} kW, unchanged")


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
        migrate_database(_settings())

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

    @app.cli.command("create-ingestion-key")
    @click.option("--name", required=True, help="What the key is for, e.g. the head-end's name.")
    @click.option(
        "--region",
        "regions",
        multiple=True,
        help="A region a head-end key covers (repeat for more)  [default: every region]",
    )
    @click.option("--meter", help="Make a device key: the one meter it sends readings of.")
    @click.option(
        "--register-in",
        help="With --meter: register the meter in this region if it is not registered yet.",
    )
    @click.option("--rate-limit", help="The key's own request limit, e.g. '100 per second'.")
    def create_key(
        name: str,
        regions: tuple[str, ...],
        meter: str | None,
        register_in: str | None,
        rate_limit: str | None,
    ) -> None:
        """Create an ingestion key; the plain key is printed alone on the last line, once."""
        create_ingestion_key(
            ingestion_keys.KeyRequest(
                name=name,
                meter_id=meter,
                regions=regions,
                register_in=register_in,
                rate_limit=rate_limit,
            )
        )

    @app.cli.command("list-ingestion-keys")
    def list_keys() -> None:
        """List the ingestion keys, newest first (never the keys themselves)."""
        now = datetime.now(UTC)
        with session_scope() as session:
            page = ingestion_keys.list_keys(session, now, page=1, page_size=10_000)
        for key in page.items:
            scope = key.meter_id or ",".join(key.regions or ["*"])
            click.echo(
                f"{key.id}  {key.key_prefix}…  {key.status:<8} {key.kind:<8} {scope}  {key.name}"
            )

    @app.cli.command("revoke-ingestion-key")
    @click.argument("key_id", type=click.UUID)
    def revoke_key(key_id: uuid.UUID) -> None:
        """Revoke an ingestion key by its id: it stops working at once."""
        try:
            with session_scope() as session:
                key = ingestion_keys.revoke_key(
                    session, get_redis(), SYSTEM, key_id, datetime.now(UTC)
                )
        except SegsError as exc:
            raise _failure(exc) from exc
        click.echo(f"revoked {key.name!r} ({key.key_prefix}…)")

    app.cli.add_command(dead_letters_group)
    app.cli.add_command(flush_quarantined)
    app.cli.add_command(recompute_aggregates_command)
    app.cli.add_command(set_region_capacity_command)

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
