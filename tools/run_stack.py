"""``make run``: the API, the feed, a worker, beat, Flower, a mail sink and the simulator in the
foreground.

Ctrl-C (or SIGTERM) stops every process; ``DURATION=N`` stops them after N seconds. Then the
windows that have closed are flushed and a summary of what reached PostgreSQL is printed.

Each process logs warnings only, so the simulator's progress line (every 10 s) stands out:
``SEGS_RUN_LOGLEVEL=info`` makes every process say more, and ``SEGS_RUN_LOGLEVEL_<NAME>`` one of
them (NAME: API, FEED, WORKER, BEAT, FLOWER).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

from honcho import manager as honcho_manager
from honcho.compat import ProcessManager
from honcho.printer import Printer

from tools import commands

ROOT = Path(__file__).resolve().parents[1]
BIN = commands.BIN
VAR = ROOT / "var"
MAIL_PORT = 1025
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Signalled as a whole process group: the simulator runs behind a shell (it waits for the API).
# Every other process is its group's leader and stops its own children: a Celery worker given
# one SIGTERM finishes the tasks it is running (a warm shutdown), whereas a SIGTERM reaching
# its pool processes too kills them mid-task (WorkerLostError).
_SIGNAL_GROUP = {"simulator"}


def _log_level(name: str) -> str:
    level = (
        os.environ.get(f"SEGS_RUN_LOGLEVEL_{name.upper()}")
        or os.environ.get("SEGS_RUN_LOGLEVEL")
        or "warning"
    ).lower()
    if level not in LOG_LEVELS:
        raise SystemExit(f"make run: log level {level!r} for {name}: use one of {LOG_LEVELS}")
    return level


def _commands(api_port: int, feed_port: int, flower_port: int) -> dict[str, str]:
    # The simulator's key comes in SIM_KEY (_env_for), not on its command line, which the
    # process list would show.
    api_url = f"http://127.0.0.1:{api_port}"
    # Honcho runs each command through sh; exec makes the process itself the one it signals.
    return {
        "api": _exec(commands.api(f"127.0.0.1:{api_port}", "--log-level", _log_level("api"))),
        "feed": _exec(commands.feed(f"127.0.0.1:{feed_port}", "--log-level", _log_level("feed"))),
        "worker": _exec(commands.celery("worker", "--loglevel", _log_level("worker"))),
        "beat": _exec(
            commands.celery(
                "beat",
                *("--loglevel", _log_level("beat")),
                *("--schedule", f"{VAR}/celerybeat-schedule"),
            )
        ),
        "flower": _exec(
            commands.celery(
                "flower",
                f"--port={flower_port}",
                "--address=127.0.0.1",
                f"--logging={_log_level('flower')}",
            )
        ),
        # A local mail sink: verification and reset codes are printed here instead of sent.
        "mail": f"exec {BIN}/python -m aiosmtpd -n -l 127.0.0.1:{MAIL_PORT}",
        "simulator": f"{BIN}/python tools/wait_http.py {api_url}/ready 60 && "
        + _exec(commands.simulator(f"{api_url}/telemetry/batch")),
    }


def _exec(command: list[str]) -> str:
    return f"exec {shlex.join(command)}"


def _simulator_key() -> str:
    """The ingestion key of ``make run``'s simulator: kept in var/ between runs, and created
    (a head-end key for every region) when there is none or it no longer works."""
    # Imported here: the stack's processes must not inherit a connection pool from this one.
    from segs.config import get_settings
    from segs.db import configure_database
    from segs.db import get_engine
    from segs.db import session_scope
    from segs.domain.ingestion_keys import is_well_formed
    from segs.domain.ingestion_keys import key_digest
    from segs.services.accounts.audit import SYSTEM
    from segs.services.spine.ingestion_keys import KeyRequest
    from segs.services.spine.ingestion_keys import create_key
    from segs.services.spine.ingestion_keys import scope_by_digest

    configure_database(get_settings())
    path = VAR / "simulator.key"
    key = path.read_text().strip() if path.exists() else ""
    now = datetime.now(UTC)
    with session_scope() as session:
        usable = is_well_formed(key) and scope_by_digest(session, key_digest(key), now) is not None
        if not usable:
            request = KeyRequest(name="make run simulator")
            key = create_key(session, SYSTEM, request, now).plain
    if not usable:
        path.write_text(key + "\n")
        path.chmod(0o600)
        print(f"created an ingestion key for the simulator, kept in {path}")
    get_engine().dispose()
    return key


def _env_for(name: str, signing_key: str, simulator_key: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["JWT_SECRET_KEY"] = signing_key
    # Mail goes to the stack's own sink unless an SMTP server is configured.
    if "SEGS_SMTP_HOST" not in env:
        env["SEGS_SMTP_HOST"] = "127.0.0.1"
        env["SEGS_SMTP_PORT"] = str(MAIL_PORT)
    if name == "simulator":
        env["SIM_KEY"] = simulator_key
        # The same fleet every run: each meter keeps its base load, so the baselines anomaly
        # detection learned in the last run still hold and a new run raises no false spikes.
        env.setdefault("SIM_SEED", "1")
    if name in ("api", "worker"):
        # Each multiprocess metrics directory starts empty (gunicorn's hook and the worker's
        # init wipe it); separate ones keep the API's /metrics to the API's processes.
        env["PROMETHEUS_MULTIPROC_DIR"] = str(VAR / "prometheus" / name)
    return env


class _LeaderSignals(ProcessManager):
    """Honcho's signals, but SIGTERM goes to a process's group only for _SIGNAL_GROUP; SIGKILL
    (after honcho's KILL_WAIT) still goes to every group."""

    def __init__(self, stack: honcho_manager.Manager) -> None:
        self._stack = stack

    def terminate(self, pid: int) -> None:
        names = [name for name, p in self._stack._processes.items() if p.get("pid") == pid]
        if names and names[0] in _SIGNAL_GROUP:
            super().terminate(pid)
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _print_summary(started_at: datetime, stopped_at: datetime) -> None:
    # Imported late: the stack's processes must not inherit a connection pool from here.
    from sqlalchemy import text

    from segs.config import get_settings
    from segs.db import configure_database
    from segs.db import get_engine
    from segs.redis_client import configure_redis
    from segs.tasks.windows import flush_closed_windows

    configure_database(get_settings())
    configure_redis(get_settings())
    flushed = flush_closed_windows.run()
    with get_engine().connect() as conn:
        raw = conn.execute(
            text("SELECT count(*) FROM raw_readings WHERE received_at >= :t"), {"t": started_at}
        ).scalar_one()
        # Windows that began during this run (the first may also hold the previous run's
        # readings); windows left open by an earlier run are flushed now but not counted here.
        run_windows = {"start": started_at.replace(second=0, microsecond=0), "end": stopped_at}
        agg = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(reading_count), 0) FROM aggregates_1m "
                "WHERE window_start >= :start AND window_start < :end"
            ),
            run_windows,
        ).one()
        loads = conn.execute(
            text(
                "SELECT DISTINCT ON (region) region, window_start, load_percentage "
                "FROM regional_aggregates_1m WHERE window_start >= :start AND window_start < :end "
                "ORDER BY region, window_start DESC"
            ),
            run_windows,
        ).all()
        alerts = conn.execute(
            text(
                "SELECT type, severity, status, count(*), string_agg(DISTINCT region, ', ') "
                "FROM alerts WHERE last_seen_at >= :t GROUP BY type, severity, status "
                "ORDER BY type, severity, status"
            ),
            {"t": started_at},
        ).all()
    print("\n=== SEGS run summary ===")
    print(f"Readings archived        {raw:>12,}")
    print(f"1-minute meter windows   {agg[0]:>12,}  holding {agg[1]:,} readings")
    print(f"Final flush              {_flush_line(flushed)}")
    print("Windows still open stay in Redis; the next run flushes them.")
    print("\nLoad per region, in its last closed 1-minute window:")
    for region, window_start, load in loads:
        print(f"  {region:<18} {float(load):6.1f} %   ({window_start:%H:%M} UTC)")
    if not loads:
        print("  none closed yet: run longer (DURATION=90) to see loads")
    print("\nAlerts seen this run (GET /api/v1/alerts as an operator for details):")
    for kind, severity, status, count, regions in alerts:
        print(f"  {count:>6,}  {kind:<17} {severity:<8} {status:<12} in {regions}")
    if not alerts:
        print("  none (SIM_SCENARIO=overload make run drives Pune-West into overload)")


def _flush_line(flushed: dict[str, int]) -> str:
    if flushed.get("skipped"):
        return "skipped: beat's flush was running; it writes the same windows"
    line = f"{flushed['windows']:,} windows, {flushed['rows']:,} meter rows"
    if flushed["late_readings"]:
        line += f", {flushed['late_readings']:,} late readings merged"
    if flushed["quarantined"]:
        line += f", {flushed['quarantined']:,} quarantined (GET /api/v1/quarantined-windows)"
    return line


def main() -> int:
    duration = float(os.environ.get("DURATION") or 0)
    api_port = int(os.environ.get("SEGS_API_PORT") or 8000)
    feed_port = int(os.environ.get("SEGS_FEED_PORT") or 8001)
    flower_port = int(os.environ.get("SEGS_FLOWER_PORT") or 5555)
    # A fresh random signing key for each run, unless one is given: tokens of an earlier run
    # stop working, and no key is written anywhere.
    signing_key = os.environ.get("JWT_SECRET_KEY") or secrets.token_urlsafe(32)
    for name in ("api", "worker"):
        shutil.rmtree(VAR / "prometheus" / name, ignore_errors=True)
        (VAR / "prometheus" / name).mkdir(parents=True)
    simulator_key = _simulator_key()

    # Give the worker time for a warm shutdown: it finishes the batches it is running.
    honcho_manager.KILL_WAIT = 20
    stack = honcho_manager.Manager(Printer(sys.stdout))
    stack._procmgr = _LeaderSignals(stack)
    for name, command in _commands(api_port, feed_port, flower_port).items():
        env = _env_for(name, signing_key, simulator_key)
        stack.add_process(name, command, env=env, cwd=str(ROOT))

    if duration > 0:
        timer = threading.Timer(duration, os.kill, args=(os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
        print(f"SEGS stack running for {duration:g} s (Ctrl-C stops it sooner)")
    else:
        print("SEGS stack running; Ctrl-C stops it")
    print(
        f"API http://127.0.0.1:{api_port}  live feed http://127.0.0.1:{feed_port}/api/v1/feed  "
        f"Flower http://127.0.0.1:{flower_port}"
    )

    started_at = datetime.now(UTC)
    began = time.monotonic()
    stack.loop()
    stopped_by_us = stack.returncode in (130, 143, -signal.SIGTERM, -signal.SIGINT)
    _print_summary(started_at, datetime.now(UTC))
    print(f"\nRan for {time.monotonic() - began:.0f} s.")
    return 0 if stopped_by_us else (stack.returncode or 0)


if __name__ == "__main__":
    sys.exit(main())
