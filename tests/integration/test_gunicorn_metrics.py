"""The plain ``gunicorn "segs.web:create_app()"`` serves one /metrics for all its workers.

gunicorn is started as a user starts it, from the repository root with no --config (so it reads
./gunicorn.conf.py) and no PROMETHEUS_MULTIPROC_DIR, with two sync workers. Each worker is made
to serve a known share of the ingestion requests and one of the scrapes, for certain: a sync
worker serves one connection at a time, so a connection that has sent half a request holds
that worker, and the next connections go to the other one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.mailbox import free_port
from tests.support import REPO
from tests.support import ingestion_key
from tests.support import now_us
from tests.support import reading
from tests.support import settings
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Pune-West"
GUNICORN = Path(sys.executable).parent / "gunicorn"


class Server:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.proc = proc
        self.log = log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def post_batch(self, readings: list[dict], key: str) -> int:
        request = urllib.request.Request(
            f"{self.base}/telemetry/batch",
            data=json.dumps(readings).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status

    def scrape(self) -> dict[str, float]:
        """Every sample of one /metrics answer, by name (labels dropped: these have none)."""
        request = urllib.request.Request(
            f"{self.base}/metrics",
            headers={"Authorization": f"Bearer {settings().metrics_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read().decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if not sample.labels
        }

    def waiting_connections(self) -> int:
        """Connections the kernel holds for the listening socket that no worker accepted yet."""
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == self.port:  # LISTEN
                    return int(queues.split(":")[1], 16)
        raise AssertionError(f"nothing listens on port {self.port}")

    def hold_a_worker(self) -> socket.socket:
        """Keep a free worker busy reading a request that never ends, until the socket closes.

        Returns once a worker has accepted the connection: the next ones go to another worker.
        """
        held = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        held.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        wait_for(
            lambda: self.waiting_connections() == 0,
            timeout=10,
            message="no worker accepted the held connection",
        )
        return held

    def scrape_each_worker(self) -> list[dict[str, float]]:
        """Two scrapes: one answered by each worker."""
        first = self.hold_a_worker()  # worker A
        from_b = self.scrape()
        second = self.hold_a_worker()  # worker B
        first.close()
        from_a = self.scrape()
        second.close()
        return [from_b, from_a]


@pytest.fixture
def server(clean_state, tmp_path) -> Iterator[Server]:
    port = free_port()
    env = dict(os.environ)
    # This process's own directory (segs.metrics made it): the server must make its own.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(GUNICORN),
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "segs.web:create_app()",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = Server(port, proc, log)

    def both_workers_up() -> bool:
        assert proc.poll() is None, log.read_text()
        if len(running.worker_pids()) != 2:
            return False
        try:
            with urllib.request.urlopen(f"{running.base}/health", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        # A worker still loading the app is no harm: connections wait in the queue for it.
        wait_for(both_workers_up, timeout=30, message=lambda: log.read_text())
        yield running
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def batch(count: int, meter: str) -> list[dict]:
    now = now_us()
    return [reading(meter, REGION, now - n * 1_000_000, 1.0 + n) for n in range(count)]


def test_every_worker_counts_into_one_metrics_page(server):
    key = ingestion_key()
    first = server.hold_a_worker()  # worker X
    assert server.post_batch(batch(3, "GM-1"), key) == 202  # Y
    assert server.post_batch(batch(4, "GM-2"), key) == 202  # Y
    second = server.hold_a_worker()  # Y
    first.close()
    assert server.post_batch(batch(5, "GM-3"), key) == 202  # X
    second.close()

    # Split per worker, the pages would say 7 and 5.
    for page in server.scrape_each_worker():
        assert page["segs_readings_accepted_total"] == 12
        assert page["segs_ingest_batch_size_count"] == 3
        assert page["segs_ingest_batch_size_sum"] == 12

    # A worker that dies is replaced, and what it counted stays counted.
    before = server.worker_pids()
    os.kill(min(before), signal.SIGKILL)
    wait_for(
        lambda: len(server.worker_pids()) == 2 and server.worker_pids() != before,
        timeout=20,
        message="gunicorn did not replace the killed worker",
    )
    pages = server.scrape_each_worker()
    assert [page["segs_readings_accepted_total"] for page in pages] == [12, 12]
