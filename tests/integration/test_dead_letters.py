"""No reading can stop the pipeline: poison batches become dead letters (a real worker)."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager

import orjson
import pytest

from segs.domain.sharding import shard_for
from segs.tasks.readings import publish_batches
from segs.tasks.readings import requeue_stalled_batches
from segs.tasks.stores import get_pending_ledger
from tests import support
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import REPO
from tests.support import assert_stored_equals_recomputed
from tests.support import execute
from tests.support import flush_now
from tests.support import now_us
from tests.support import past_15m_window
from tests.support import post_batch
from tests.support import query
from tests.support import raw_count
from tests.support import reading
from tests.support import scalar
from tests.support import to_rows
from tests.support import wait_folded
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Pune-West"
S = MICRO


def dead_letter(batch_id: str) -> tuple | None:
    rows = query(
        "SELECT status, attempts, times_dead, error_type, reading_count, rows_json "
        "FROM dead_letter_batches WHERE batch_id = %s",
        (batch_id,),
    )
    return rows[0] if rows else None


@contextmanager
def refused_meter(table: str, meter_id: str):
    """A CHECK constraint that makes PostgreSQL refuse one meter's rows: a data error that
    retrying cannot cure, until the constraint (the cause) is dropped."""
    execute(f"ALTER TABLE {table} ADD CONSTRAINT test_poison CHECK (meter_id <> '{meter_id}')")
    try:
        yield
    finally:
        execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS test_poison")


def test_a_poison_batch_becomes_a_dead_letter_without_delaying_others(client, worker, published):
    """Put straight into a reading queue, bypassing the API: a NUL in a meter id, which
    PostgreSQL cannot store. It is tried SEGS_DATA_ERROR_ATTEMPTS times, never copied by the
    stalled-batch re-publisher, and the batches behind it in its queue go on."""
    shards = support.settings().shards
    start = past_15m_window(45)
    poison_meter = "POISON\x00"
    shard = shard_for(poison_meter, shards)
    poison_rows = to_rows([reading("GOOD-P", REGION, start, 1.0)])
    poison_rows[0][0] = poison_meter
    publish_batches({shard: poison_rows}, now_us())
    [poison_id] = published.snapshot()

    # Honest batches, including ones for the poisoned shard, posted right behind it.
    honest = [reading(f"HONEST-{n}", REGION, start + n * S, 2.0) for n in range(40)]
    assert any(shard_for(item["meterId"], shards) == shard for item in honest)
    posted_at = time.monotonic()
    assert post_batch(client, honest)[1]["accepted"] == 40
    wait_folded(40, log=worker.log)
    honest_delay = time.monotonic() - posted_at

    # Beat's re-publisher runs meanwhile; it must never send the poison batch again.
    def dead() -> bool:
        requeue_stalled_batches.run()
        return dead_letter(poison_id) is not None

    wait_for(dead, timeout=30, message=lambda: worker.log()[-3000:])
    for _ in range(5):
        requeue_stalled_batches.run()
        time.sleep(0.2)
    assert published.snapshot().count(poison_id) == 1

    status, attempts, times_dead, error_type, count, rows_json = dead_letter(poison_id)
    assert (status, attempts, times_dead, count) == ("dead", 4, 1, 1)
    assert error_type == "CharacterNotInRepertoire"
    assert orjson.loads(rows_json) == poison_rows
    every_shard = range(support.settings().shards)
    assert get_pending_ledger().rows_of_many([(shard, poison_id) for shard in every_shard]) == {}
    # The honest readings did not wait for the poison batch's attempts (1, 2 and 4 s apart).
    assert honest_delay < 3.0, honest_delay
    assert raw_count() == 40
    assert worker.metric("segs_dead_letters_total") == 1


def test_a_dead_letter_replayed_after_the_fix_folds_exactly_once(app, client, worker):
    """A batch put straight into its reading queue, which PostgreSQL refuses until a cause
    (here a constraint) is fixed; honest readings of every shard are posted beside it."""
    operator = create_account(app, role="OPERATOR", region=None)
    start = past_15m_window(45)
    batch = [reading(f"REPLAY-{n}", REGION, start + n * S, 1.0 + n, energy=0.1) for n in range(20)]
    poisoned = batch[7]["meterId"]
    shard = shard_for(poisoned, support.settings().shards)
    same_shard = [
        item for item in batch if shard_for(item["meterId"], support.settings().shards) == shard
    ]
    honest = [item for item in batch if item not in same_shard]

    with refused_meter("raw_readings", poisoned):
        publish_batches({shard: to_rows(same_shard)}, now_us())
        assert post_batch(client, honest)[1]["accepted"] == len(honest)
        wait_for(
            lambda: scalar("SELECT count(*) FROM dead_letter_batches") == 1,
            timeout=30,
            message=lambda: worker.log()[-3000:],
        )
        wait_folded(len(honest), log=worker.log)
    [(batch_id,)] = query("SELECT batch_id::text FROM dead_letter_batches")
    listed = client.get("/api/v1/dead-letters", headers=operator.headers).get_json()
    assert [item["batchId"] for item in listed["items"]] == [batch_id]
    shown = client.get(f"/api/v1/dead-letters/{batch_id}", headers=operator.headers).get_json()
    assert shown["errorType"] == "CheckViolation" and "test_poison" in shown["error"]
    assert sorted(row[0] for row in shown["rows"]) == sorted(i["meterId"] for i in same_shard)

    # The constraint (the cause) is gone: one replay folds the batch, a second is refused.
    replayed = client.post(f"/api/v1/dead-letters/{batch_id}/replay", headers=operator.headers)
    assert (replayed.status_code, replayed.get_json()["status"]) == (200, "replayed")
    wait_folded(20, log=worker.log)
    again = client.post(f"/api/v1/dead-letters/{batch_id}/replay", headers=operator.headers)
    assert again.status_code == 409
    assert query(
        "SELECT DISTINCT batch_id::text FROM raw_readings WHERE meter_id = %s", (poisoned,)
    ) == [(batch_id,)]
    flush_now()
    assert_stored_equals_recomputed()
    assert scalar("SELECT sum(reading_count) FROM aggregates_1m") == 20
    assert query("SELECT action, entity_id FROM audit_log WHERE entity_type = 'dead_letter'") == [
        ("dead_letter.replay", batch_id)
    ]


def test_the_cli_lists_and_discards_dead_letters(worker, published):
    rows = to_rows([reading("CLI-P", REGION, past_15m_window(45), 1.0)])
    rows[0][0] = "CLI\x00P"
    publish_batches({0: rows}, now_us())
    [batch_id] = published.snapshot()
    wait_for(lambda: dead_letter(batch_id) is not None, timeout=30, message=worker.log)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / ".venv" / "bin" / "flask"), "--app", "segs.web", "dead-letters", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
        )

    listed = cli("list")
    assert listed.returncode == 0 and batch_id in listed.stdout
    assert "1 dead letter(s)" in listed.stdout
    assert cli("discard", batch_id).returncode == 0
    assert dead_letter(batch_id)[0] == "discarded"
    refused = cli("replay", batch_id)
    assert refused.returncode == 1 and "discarded" in refused.stderr
    assert raw_count() == 0
