"""Two workers on one host both serve their metrics: each takes the first free port of the range
from SEGS_WORKER_METRICS_PORT."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest

from tests.support import WorkerProcess

pytestmark = pytest.mark.integration


def free_port_range(count: int) -> int:
    """The first of *count* consecutive free loopback ports."""
    for first in range(21000, 29000, count):
        probes = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first
    raise RuntimeError("no free port range")


def served_port(worker: WorkerProcess) -> int:
    found = re.search(r"worker metrics on port (\d+)", worker.log())
    assert found, worker.log()
    return int(found.group(1))


def test_two_workers_on_one_host_serve_metrics_on_ports_of_their_own(
    clean_state, tmp_path, monkeypatch
):
    first = free_port_range(8)
    monkeypatch.setenv("SEGS_WORKER_METRICS_PORT", str(first))
    workers = [WorkerProcess(tmp_path / f"worker-{n}", concurrency=1) for n in (1, 2)]
    try:
        for worker in workers:
            worker.start()
        ports = [served_port(worker) for worker in workers]
        assert sorted(ports) == [first, first + 1]
        # Each port answers (before the range, the second worker served none).
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                assert page.status == 200
    finally:
        for worker in workers:
            worker.kill()
