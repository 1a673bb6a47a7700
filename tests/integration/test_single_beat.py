"""Beat runs once: of two `celery -A segs beat` processes, one sends the periodic tasks and the
other waits; when the first dies, the second takes over within the lock's timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support import redis_client
from tests.support import wait_for
from tools import commands

pytestmark = pytest.mark.integration

LOCK_TIMEOUT_S = 3
# The flush is the job these tests count; every second instead of every 5 s, so they wait less.
FLUSH_INTERVAL_S = 1


def start_beat(log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        SEGS_BEAT_LOCK_TIMEOUT_S=str(LOCK_TIMEOUT_S),
        SEGS_FLUSH_INTERVAL_S=str(FLUSH_INTERVAL_S),
    )
    with open(log, "wb") as out:
        return subprocess.Popen(
            commands.celery("beat", "--loglevel", "INFO"),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def sent(log: Path) -> int:
    """Periodic tasks this beat has sent."""
    return log.read_text().count("Sending due task flush-closed-windows")


def test_a_second_beat_waits_and_takes_over_when_the_first_dies(clean_state, tmp_path):
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_beat(first_log)
    second = None
    try:
        wait_for(lambda: "Acquired lock" in first_log.read_text(), timeout=20)
        second = start_beat(second_log)
        # Once the standby is up, it sends nothing while the first holds the lock and sends.
        # (Waiting for it: on a busy machine its start can take longer than two flush periods.)
        wait_for(lambda: "beat: Starting..." in second_log.read_text(), timeout=30)
        before = sent(first_log)
        wait_for(lambda: sent(first_log) >= before + 2, timeout=30, message=first_log.read_text)
        assert sent(second_log) == 0
        assert "Acquired lock" not in second_log.read_text()

        os.killpg(first.pid, signal.SIGKILL)  # no chance to release the lock
        first.wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(
            lambda: sent(second_log) >= 1,
            timeout=LOCK_TIMEOUT_S + 15,
            message=second_log.read_text,
        )
        assert time.monotonic() - killed_at < LOCK_TIMEOUT_S + 10
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_beat_carries_on_after_redis_loses_its_memory(clean_state, tmp_path):
    """Redis restarted empty: the lock and the schedule are gone. Beat takes the lock again,
    writes its schedule back and goes on sending (the healing of segs.services.spine.healing runs
    from beat, so beat must outlive the loss)."""
    log = tmp_path / "beat.log"
    beat = start_beat(log)
    try:
        wait_for(lambda: sent(log) >= 1, timeout=30, message=log.read_text)
        redis_client().flushdb()
        before = sent(log)
        wait_for(lambda: sent(log) >= before + 2, timeout=30, message=log.read_text)
        assert "writing the schedule back" in log.read_text()
        assert beat.poll() is None
    finally:
        os.killpg(beat.pid, signal.SIGKILL)
        beat.wait(timeout=10)
