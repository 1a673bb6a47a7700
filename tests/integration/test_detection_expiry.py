"""Detection states of meters gone for SEGS_DETECTION_STATE_TTL_DAYS are forgotten, unless an open
alert still needs the meter's next reading to resolve it."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from segs.db import session_scope
from segs.domain import alerts as rules
from segs.redis_client import get_redis
from segs.services.alerts.lifecycle import Condition
from segs.services.alerts.lifecycle import raise_alert
from segs.services.shared.keyspace import all_shard_keys
from segs.services.spine.detection import STATE_LAYOUT
from segs.tasks.alerts import expire_detection_states
from segs.tasks.alerts import get_detection_store
from tests import support
from tests.support import MICRO
from tests.support import keys_of
from tests.support import now_us
from tests.support import shard_of

pytestmark = pytest.mark.integration

REGION = "Pune-East"
DAY = 86_400 * MICRO


def put_state(meter: str, last_ts_us: int, silent: bool = False) -> bytes:
    """A learned state (6 samples, 3 kW baseline, 2 s apart), last reading at *last_ts_us*."""
    packed = STATE_LAYOUT.pack(6, 3_000_000, last_ts_us, 2 * MICRO, 0, 0, int(silent))
    get_redis().hset(keys_of(meter).states, meter, packed)
    return packed


def stored_meters() -> set[str]:
    """The meters holding a state, in every shard."""
    return {
        meter.decode()
        for names in all_shard_keys(support.settings().shards)
        for meter in get_redis().hkeys(names.states)
    }


def test_states_silent_past_the_ttl_are_forgotten_unless_an_alert_is_open(clean_state):
    now = now_us()
    put_state("GONE", now - 31 * DAY)
    put_state("GONE-WITH-ALERT", now - 31 * DAY, silent=True)
    put_state("RECENT", now - 29 * DAY)
    with session_scope() as session:
        condition = Condition(rules.METER_OUTAGE, REGION, "GONE-WITH-ALERT")
        raise_alert(session, condition, "medium", "silent", datetime.now(UTC))

    assert expire_detection_states.apply().get() == 1
    assert stored_meters() == {"GONE-WITH-ALERT", "RECENT"}
    assert expire_detection_states.apply().get() == 0


def test_the_scan_visits_every_state_in_steps(clean_state):
    now = now_us()
    for index in range(2500):
        put_state(f"OLD-{index:04d}", now - 40 * DAY)
    put_state("NEW", now)

    assert expire_detection_states.apply().get() == 2500
    assert stored_meters() == {"NEW"}


def test_a_reading_between_the_scan_and_the_delete_keeps_the_state(clean_state):
    store = get_detection_store()
    now = now_us()
    put_state("BACK", now - 31 * DAY)
    put_state("STILL-GONE", now - 31 * DAY)
    shard = shard_of("BACK")
    assert shard_of("STILL-GONE") == shard
    _, stale = store.stale_states(shard, now - 30 * DAY)
    assert set(stale) == {"BACK", "STILL-GONE"}
    put_state("BACK", now)  # its reading is folded meanwhile

    assert store.forget_states(shard, stale) == 1
    assert stored_meters() == {"BACK"}
