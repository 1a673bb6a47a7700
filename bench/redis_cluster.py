"""A real Redis Cluster on this machine: three primaries on free loopback ports.

For the tests (``SEGS_TEST_REDIS=cluster`` makes tests/conftest.py start one before anything
reads the settings and point REDIS_URL at its first node; SEGS finds the others itself) and for
``python -m bench --redis-cluster``. Each node keeps its files in a temporary directory and is
stopped when the process that started it exits.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

NODES = 3
# A node also listens on its port + 10000, the cluster bus.
BUS_OFFSET = 10_000


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, first: int = 17000, last: int = 19999) -> list[int]:
    """*count* loopback ports whose cluster bus ports are free too."""
    ports: list[int] = []
    for port in range(first, last):
        if _port_is_free(port) and _port_is_free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"no {count} free port pairs between {first} and {last}")


@dataclass
class LocalRedisCluster:
    ports: list[int]
    directory: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for port in self.ports:
            node_dir = self.directory / str(port)
            node_dir.mkdir()
            self.processes.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--dir", str(node_dir),
                        "--save", "",
                        "--appendonly", "no",
                        "--logfile", str(node_dir / "redis.log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        for port in self.ports:
            self._wait(self._answers(port, "PONG", "PING"), f"node {port} up")
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in self.ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for port in self.ports:
            self._wait(
                self._answers(port, "cluster_state:ok", "CLUSTER", "INFO"),
                f"node {port} sees the cluster ok",
            )

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    @classmethod
    def _answers(cls, port: int, expected: str, *command: str) -> Callable[[], bool]:
        """Whether the node on *port* answers *command* with text holding *expected*."""
        return lambda: expected in cls._cli(port, *command)

    @staticmethod
    def _cli(port: int, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    @staticmethod
    def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise RuntimeError(f"Redis did not come up: {what}")


def start_cluster() -> LocalRedisCluster:
    """Start a three-node cluster, stopped when this process exits."""
    cluster = LocalRedisCluster(free_ports(NODES), Path(tempfile.mkdtemp(prefix="segs-cluster-")))
    atexit.register(cluster.stop)
    cluster.start()
    return cluster


@dataclass
class LocalRedis:
    """A single Redis on a free loopback port, without persistence unless *options* say
    otherwise, which can be killed (-9) and started again empty on the same port: a Redis
    losing its memory."""

    port: int
    directory: Path
    # More redis-server options, e.g. ("--appendonly", "yes").
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
                *("--save", "", "--appendonly", "no"),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        LocalRedisCluster._wait(
            LocalRedisCluster._answers(self.port, "PONG", "PING"), f"Redis on {self.port} up"
        )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(*options: str) -> LocalRedis:
    """Start a single Redis (with these redis-server *options*), stopped when this process
    exits."""
    [port] = free_ports(1, first=16000, last=16999)
    server = LocalRedis(port, Path(tempfile.mkdtemp(prefix="segs-redis-")), options)
    atexit.register(server.stop)
    server.start()
    return server
