"""Shared fixtures: test settings, the test database, a clean slate, a real Celery worker.

The test settings are built here once, as a real deployment's are: from variables, the tests'
values below under whatever the environment sets itself (DATABASE_URL, REDIS_URL... keep runs
apart). This process hands them to what it configures, before anything imports the tasks: the
Celery app, the database, Redis and ingestion; the app fixture hands them to the app factory.
A worker or beat subprocess is configured as a real one is, through its environment, and gets
the same variables: they are exported to this process's environment, which those subprocesses
copy. A test reads an expected value from support.settings(), the settings handed out here.
Unit tests use none of the service fixtures, so they run without PostgreSQL, Redis or a broker.
"""

from __future__ import annotations

import os

from segs.config import load_settings

# Each broker's run keeps its data in a database and a Redis database of its own, so that
# make test can run the two side by side.
BROKER_RUNS = {
    "redis": {
        "CELERY_BROKER_URL": "redis://localhost:6379/15",
        "DATABASE_URL": "postgresql+psycopg:///segs_test",
        "REDIS_URL": "redis://localhost:6379/14",
    },
    "amqp": {
        "CELERY_BROKER_URL": "amqp://guest:guest@localhost:5672//",
        "DATABASE_URL": "postgresql+psycopg:///segs_test_amqp",
        "REDIS_URL": "redis://localhost:6379/12",
    },
}
TEST_BROKER = os.environ.get("SEGS_TEST_BROKER", "redis")
if TEST_BROKER not in BROKER_RUNS:
    raise RuntimeError(
        f"SEGS_TEST_BROKER must be one of {', '.join(BROKER_RUNS)}, got {TEST_BROKER!r}"
    )

TEST_VALUES = {
    "SEGS_ENV": "testing",
    **BROKER_RUNS[TEST_BROKER],
    "SEGS_SHARDS": "4",
    "SEGS_WORKER_METRICS_PORT": "0",
    "SEGS_WINDOW_GRACE_S": "1",
    # Tests fold readings into windows that ended long ago and flush at once; test_late_windows
    # holds them as the default does.
    "SEGS_LATE_WINDOW_HOLD_S": "0",
    "SEGS_VISIBILITY_TIMEOUT_S": "5",
    # The Redis broker's safety net re-publishes a batch still unfolded after this long.
    "SEGS_REQUEUE_AFTER_S": "3",
    # Cheap password hashing and no general rate limit, unless a test sets its own.
    "SEGS_ARGON2_TIME_COST": "1",
    "SEGS_ARGON2_MEMORY_KIB": "1024",
    "SEGS_RATE_LIMIT_DEFAULT": "100000 per minute",
    # A poison batch is tried 4 times, 1 + 2 + 4 s apart: longer than SEGS_REQUEUE_AFTER_S, so
    # a re-publisher that copied a retrying batch would be caught doing it.
    "SEGS_DATA_ERROR_ATTEMPTS": "4",
    # Several tests drive a region's whole load with one meter, above a real meter's 1,000 kW.
    "SEGS_MAX_POWER_KW": "100000",
    # Short live-feed connections and notification retries, so tests do not wait long for them.
    "SEGS_FEED_MAX_S": "0.5",
    "SEGS_FEED_HEARTBEAT_S": "0.25",
    "SEGS_DELIVERY_BACKOFF_S": "0.2",
    # Webhooks go to the tests' own receivers on loopback (any high port, plain http), and names
    # resolve from this table only: no test makes a DNS query or reaches past this machine.
    "SEGS_WEBHOOK_ALLOW_LOOPBACK": "1",
    "SEGS_WEBHOOK_ALLOW_HTTP": "1",
    "SEGS_WEBHOOK_PORTS": "443,1024-65535",
    "SEGS_WEBHOOK_TEST_HOSTS": "receiver.segs.test=127.0.0.1",
    "SEGS_PAYMENT_CALLBACK_SECRET": "test-provider-secret",
    "SEGS_METRICS_TOKEN": "test-metrics-token",
}
TEST_VARIABLES = {**TEST_VALUES, **os.environ}

# SEGS_TEST_REDIS=cluster runs the tests against a real three-node Redis Cluster started here.
TEST_REDIS = os.environ.get("SEGS_TEST_REDIS", "single")
if TEST_REDIS == "cluster":
    from bench.redis_cluster import start_cluster

    TEST_VARIABLES["REDIS_URL"] = start_cluster().url
elif TEST_REDIS != "single":
    raise RuntimeError(f"SEGS_TEST_REDIS must be single or cluster, got {TEST_REDIS!r}")

TEST_SETTINGS = load_settings(TEST_VARIABLES)
os.environ.update(TEST_VARIABLES)


def _configure_this_process() -> None:
    from segs.celery_app import app

    # First: the task modules read the Celery app's settings when they are imported.
    app.configure_from(TEST_SETTINGS)
    from segs.ingestion_client import configure_ingestion

    configure_ingestion(TEST_SETTINGS)


_configure_this_process()

import pytest  # noqa: E402

from tests import support  # noqa: E402


@pytest.fixture(scope="session")
def database():
    """Create and migrate the test database once per session (creates partitions too)."""
    from segs.db import get_engine
    from segs.web.cli import migrate_database

    migrate_database(TEST_SETTINGS)
    yield
    # Close this process's pooled connections before the interpreter does it noisily.
    from segs.celery_app import app
    from segs.redis_client import get_redis

    app.close()
    get_redis().close()
    get_engine().dispose()


@pytest.fixture
def clean_state(database: None) -> None:
    """Empty every data table, the test Redis database and the task queues."""
    support.reset_state()


@pytest.fixture
def script_redis():
    """The test Redis alone, emptied before and after: a script's specification test
    (tests.redis_model) needs no other service."""
    from segs.redis_client import get_redis

    client = get_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def worker(clean_state: None, tmp_path):
    """A real Celery worker subprocess (prefork, concurrency 2), stopped at teardown."""
    proc = support.WorkerProcess(tmp_path / "worker")
    proc.start()
    try:
        yield proc
    finally:
        # Killed, not stopped: a warm shutdown costs seconds, and the next test's clean_state
        # purges whatever it left in the queues.
        proc.kill()


@pytest.fixture
def app(database: None):
    from segs.web import create_app

    return create_app(TEST_SETTINGS)


@pytest.fixture
def client(app):
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def published():
    """Ids of every task this process publishes while the test runs."""
    with support.PublishedTasks() as tasks:
        yield tasks


@pytest.fixture(scope="module")
def mailbox():
    """A real SMTP server for the module; the tasks of this process and of a worker started
    meanwhile (SEGS_SMTP_HOST/PORT) send their mail there."""
    from tests.mailbox import running_mailbox

    with running_mailbox() as box, support.task_settings(smtp_host=box.host, smtp_port=box.port):
        yield box


@pytest.fixture(scope="module")
def mail_worker(mailbox, database, tmp_path_factory):
    """One worker for the module, started once the mailbox's address is in the environment so
    it sends its mail there (a worker start costs seconds); each test uses data of its own."""
    support.reset_state()
    proc = support.WorkerProcess(tmp_path_factory.mktemp("mail-worker"))
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()
