"""What a Redis restart would lose, as told by /ready and the start-up logs, against real Redis
servers started here with each persistence setting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterator

import pytest
import redis

from bench.redis_cluster import free_ports
from segs.services.durability import redis_broker_risk

pytestmark = pytest.mark.integration

RABBIT = "amqp://guest:guest@localhost:5672//"


@pytest.fixture
def private_redis(tmp_path) -> Iterator[Callable[[str, str], str]]:
    """Start a Redis with the given append-only settings; returns its URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(appendonly: str, appendfsync: str) -> str:
        [port] = free_ports(1, first=20000, last=20999)
        node_dir = tmp_path / str(port)
        node_dir.mkdir()
        started.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--dir", str(node_dir), "--appendonly", appendonly,
                 "--appendfsync", appendfsync],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


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
