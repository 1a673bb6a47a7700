"""What a Redis restart would lose, as told by /ready and the start-up logs, against real Redis
servers started here with each persistence setting."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

import pytest

from bench.redis_cluster import LocalRedis
from bench.redis_cluster import start_redis
from segs.services.spine.durability import redis_broker_risk

pytestmark = pytest.mark.integration

RABBIT = "amqp://guest:guest@localhost:5672//"


@pytest.fixture
def private_redis() -> Iterator[Callable[[str, str], str]]:
    """Start a Redis with the given append-only settings; returns its URL."""
    started: list[LocalRedis] = []

    def start(appendonly: str, appendfsync: str) -> str:
        server = start_redis("--appendonly", appendonly, "--appendfsync", appendfsync)
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


def test_rabbitmq_keeps_accepted_readings_whatever_redis_does(private_redis):
    bare = private_redis("no", "everysec")
    assert redis_broker_risk(RABBIT, bare) is None


def test_a_redis_broker_without_an_append_only_file_is_named(private_redis):
    bare = private_redis("no", "everysec")
    synced = private_redis("yes", "always")
    risk = redis_broker_risk(bare, synced)
    assert risk is not None
    assert f"the Redis at {bare.removeprefix('redis://')} keeps no append-only file" in risk
    assert "appendfsync always" in risk


def test_a_second_of_writes_at_risk_is_named_too(private_redis):
    every_second = private_redis("yes", "everysec")
    synced = private_redis("yes", "always")
    risk = redis_broker_risk(synced, every_second)
    assert risk is not None
    assert "syncs its append-only file everysec, not always" in risk
    assert redis_broker_risk(synced, synced) is None
