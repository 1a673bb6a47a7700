"""Each Redis script outside the window fold, held to a Python specification of what it does.

A seeded random run drives the store method that calls the script, applies the specification
to a model of Redis (tests.redis_model) in lock step, and after every step compares what Redis
holds and what the call returned. The window scripts have theirs in test_window_scripts_spec,
and detection's rule in test_detection_script.
"""

from __future__ import annotations

import json
import random
import struct
import time
import uuid

import orjson
import pytest

from segs.domain.readings import MICRO
from segs.services.alerts import feed
from segs.services.alerts.feed_access import ACCOUNT_FULL
from segs.services.alerts.feed_access import ALL_FULL
from segs.services.alerts.feed_access import StreamSlot
from segs.services.alerts.feed_access import take_slot
from segs.services.alerts.outbox import claim_delivery
from segs.services.alerts.outbox import release_delivery
from segs.services.alerts.planning import Delivery
from segs.services.shared.keyspace import DOWNTIME
from segs.services.shared.keyspace import LAST_SWEEP
from segs.services.shared.keyspace import REFUSED_AT
from segs.services.shared.keyspace import shard_keys
from segs.services.spine.dedupe import BUCKET_SPAN_US
from segs.services.spine.dedupe import RedisDedupeMarks
from segs.services.spine.detection import STATE_LAYOUT
from segs.services.spine.detection import DetectionStore
from segs.services.spine.detection import SilentMeter
from segs.services.spine.detection import record_refusal
from segs.services.spine.pending import PendingLedger
from tests.redis_model import Model
from tests.redis_model import assert_holds
from tests.redis_model import b

pytestmark = [pytest.mark.integration, pytest.mark.scripts]

SHARDS = 4
SEEDS = [1, 2, 3]


def k(name: str) -> bytes:
    return name.encode()


# --------------------------------------------------------------------------- pending.record


@pytest.mark.parametrize("seed", SEEDS)
def test_the_ledger_records_each_batch_and_its_payload(script_redis, seed):
    rng = random.Random(seed)
    ledger = PendingLedger(script_redis, SHARDS)
    model = Model()
    ids = [f"task-{seed}-{n}" for n in range(30)]
    for step in range(40):
        now_s = 1_700_000_000 + step + rng.random()
        received_at_us = int(now_s * MICRO)
        chosen = rng.sample(ids, rng.randint(1, 8))
        batches = []
        for task_id in chosen:
            shard = rng.randrange(SHARDS)
            rows = None if rng.random() < 0.3 else [[task_id, "R", rng.randint(0, 9)]]
            batches.append((task_id, shard, rows))
        ledger.record(batches, received_at_us, now_s)

        # Spec: each batch scored its publish time; its payload kept unless it has none.
        for task_id, shard, rows in batches:
            names = shard_keys(shard)
            model.data.setdefault(k(names.pending_at), {})[b(task_id)] = float(repr(now_s))
            if rows is not None:
                payload = orjson.dumps([shard, received_at_us, rows])
                model.data.setdefault(k(names.pending), {})[b(task_id)] = payload
        assert_holds(script_redis, model)


# --------------------------------------------------------------------------- dedupe.mark


@pytest.mark.parametrize("seed", SEEDS)
def test_dedupe_marks_answer_new_or_seen_per_mark_in_order(script_redis, seed):
    rng = random.Random(seed)
    ttl_s = 600
    marks = RedisDedupeMarks(script_redis, ttl_s)
    model = Model()
    meters = [f"MTR-{seed}-{n}" for n in range(20)]
    base_us = 1_700_000_000 * MICRO
    for _ in range(40):
        # Unique marks per call, across shards, timestamps spread over a few buckets and given
        # out of order, some of them seen in earlier calls.
        keys: dict[int, list[tuple[str, int]]] = {}
        for meter, ts_us in {
            (rng.choice(meters), base_us + rng.randrange(0, 4 * BUCKET_SPAN_US, MICRO // 2))
            for _ in range(rng.randint(0, 30))
        }:
            keys.setdefault(rng.randrange(SHARDS), []).append((meter, ts_us))
        for listed in keys.values():
            rng.shuffle(listed)
        if rng.random() < 0.2:
            keys[rng.randrange(SHARDS)] = []  # a shard with nothing to mark

        answered = marks.mark_new(keys)

        # Spec: a mark is (meter, ts) in the shard's bucket of its 10 s; new unless there.
        expected: dict[int, list[bool]] = {}
        for shard, listed in keys.items():
            expected[shard] = []
            for meter, ts_us in listed:
                bucket = k(f"{shard_keys(shard).dedupe_prefix}{ts_us // BUCKET_SPAN_US}")
                field = meter.encode() + struct.pack("<q", ts_us)
                fields = model.data.setdefault(bucket, {})
                expected[shard].append(field not in fields)
                fields[field] = b"1"
                model.expiring.add(bucket)
        assert answered == expected
        assert_holds(script_redis, model)
    # A bucket lives its TTL plus its own span after its first mark.
    for bucket in model.data:
        assert ttl_s < script_redis.ttl(bucket) <= ttl_s + BUCKET_SPAN_US // MICRO


# --------------------------------------------------------------------------- feed.publish_once


@pytest.mark.parametrize("seed", SEEDS)
def test_a_feed_event_is_published_once_on_each_of_its_streams(script_redis, seed):
    rng = random.Random(seed)
    model = Model()
    streams = [feed.STAFF_FEED, feed.region_feed("Pune-West"), feed.user_feed(uuid.UUID(int=7))]
    subjects = [f"alert:{seed}:{n}" for n in range(10)]
    for step in range(30):
        subject = rng.choice(subjects)
        audience = rng.sample(streams, rng.randint(1, len(streams)))
        events = {stream: {"step": step, "for": stream} for stream in audience}

        published = feed.publish(script_redis, subject, events)

        # Spec: the first publish of a subject marks it and adds its event to each stream;
        # any later one changes nothing.
        mark = k(feed.PUBLISHED_PREFIX + subject)
        assert published == (mark not in model.data)
        if published:
            model.data[mark] = b"1"
            model.expiring.add(mark)
            for stream, event in events.items():
                model.data.setdefault(k(stream), []).append({b"data": b(json.dumps(event))})
        assert_holds(script_redis, model)


# --------------------------------------------------------------------------- feed_access.take_slot


@pytest.mark.parametrize("seed", SEEDS)
def test_a_feed_slot_is_taken_within_both_caps_after_expired_leases_go(script_redis, seed):
    rng = random.Random(seed)
    model = Model()
    accounts = [uuid.UUID(int=n) for n in range(1, 4)]
    all_key = k("segs:{feed}:slots")
    held: list[StreamSlot] = []
    now_ms = int(time.time() * 1000)  # leases end in the future: PEXPIREAT is absolute
    for _ in range(60):
        now_ms += rng.randint(0, 400)
        account = rng.choice(accounts)
        lease_ms = rng.randint(200, 1500)
        if held and rng.random() < 0.2:
            slot = held.pop(rng.randrange(len(held)))
            slot.release()
            for key in (all_key, k(f"segs:{{feed}}:slots:{slot.account_id}")):
                model.data.get(key, {}).pop(b(slot.slot_id), None)
                model.drop_if_empty(key)
            assert_holds(script_redis, model)
            continue

        taken = take_slot(
            script_redis, account, now_ms=now_ms, lease_ms=lease_ms, max_streams=5,
            max_per_account=2,
        )  # fmt: skip

        # Spec: drop the leases over by now, then refuse at either cap, else hold the slot in
        # both sets until its lease ends (the account's set expires then too).
        account_key = k(f"segs:{{feed}}:slots:{account}")
        for key in (all_key, account_key):
            if key in model.data:
                model.data[key] = {s: end for s, end in model.data[key].items() if end > now_ms}
                model.drop_if_empty(key)
        if len(model.data.get(account_key, {})) >= 2:
            assert taken == ACCOUNT_FULL
        elif len(model.data.get(all_key, {})) >= 5:
            assert taken == ALL_FULL
        else:
            assert isinstance(taken, StreamSlot)
            held.append(taken)
            for key in (all_key, account_key):
                model.data.setdefault(key, {})[b(taken.slot_id)] = float(now_ms + lease_ms)
            model.expiring.add(account_key)
        assert_holds(script_redis, model)


# --------------------------------------------------------------------------- notifications


@pytest.mark.parametrize("seed", SEEDS)
def test_a_delivery_claim_is_released_only_by_its_holder(script_redis, seed):
    rng = random.Random(seed)
    model = Model()
    deliveries = [
        Delivery(f"alert:{n}", rng.choice(["email", "webhook"]), "u", f"t{n}", "title", {})
        for n in range(4)
    ]
    tokens: list[str] = ["not-a-token"]
    for _ in range(40):
        delivery = rng.choice(deliveries)
        key = k(f"segs:delivering:{delivery.subject}:{delivery.channel}:{delivery.target}")
        if rng.random() < 0.5:
            token = claim_delivery(script_redis, delivery, ttl_s=60)
            assert (token is None) == (key in model.data)
            if token is not None:
                tokens.append(token)
                model.data[key] = b(token)
                model.expiring.add(key)
        else:
            # Mostly the current holder's token, sometimes a stale or foreign one.
            token = model.data[key].decode() if key in model.data and rng.random() < 0.6 else None
            token = token or rng.choice(tokens)
            release_delivery(script_redis, delivery, token)
            # Spec: the claim goes only if it still holds this token.
            if model.data.get(key) == b(token):
                model.drop(key)
        assert_holds(script_redis, model)


# --------------------------------------------------------------------------- detection


def _lua_number(value: float) -> bytes:
    """How Lua's tostring writes a number (LUAI_NUMFFORMAT)."""
    return b(f"{value:.14g}")


@pytest.mark.parametrize("seed", SEEDS)
def test_the_sweep_clock_counts_long_gaps_and_refusals_as_downtime(script_redis, seed):
    rng = random.Random(seed)
    gap_s = 30.0
    store = DetectionStore(script_redis, SHARDS, sweep_gap_s=gap_s)
    model = Model()
    now_s = 1_700_000_000.0
    for _ in range(40):
        now_s += rng.choice([5.0, 12.5, 29.75, 30.0, 30.5, 95.25, 0.0, -3.0])
        if rng.random() < 0.2:
            # Just before this sweep, long before it, or at the very instant of the last one.
            last_sweep = float(model.data.get(k(LAST_SWEEP), b"0"))
            refused_s = rng.choice([now_s - 1.0, now_s - 50.0, last_sweep])
            record_refusal(script_redis, refused_s)
            model.data[k(REFUSED_AT)] = b(repr(refused_s))
            model.expiring.add(k(REFUSED_AT))

        threshold = store.sweep_threshold(now_s)

        # Spec: the time since the last sweep is downtime when it was longer than the gap or
        # the API refused readings since; the total is copied to each shard.
        last = model.data.get(k(LAST_SWEEP))
        downtime = float(model.data.get(k(DOWNTIME), b"0"))
        refused = float(model.data.get(k(REFUSED_AT), b"-1"))
        if last is not None and now_s > float(last):
            since = now_s - float(last)
            if since > gap_s or refused >= float(last):
                downtime += since
                model.data[k(DOWNTIME)] = _lua_number(downtime)
        model.data[k(LAST_SWEEP)] = b(repr(now_s))
        for shard in range(SHARDS):
            model.data[k(shard_keys(shard).downtime)] = _lua_number(downtime)
        assert threshold == now_s - float(_lua_number(downtime))
        assert_holds(script_redis, model)


def _state(rng: random.Random, silent: int = 0) -> bytes:
    return STATE_LAYOUT.pack(
        rng.randint(0, 50),
        rng.randint(0, 9 * MICRO),
        1_700_000_000 * MICRO + rng.randint(0, 10**9),
        rng.randint(0, 900 * MICRO),
        rng.randint(0, 4),
        rng.randint(0, 9),
        silent,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_silent_meters_are_popped_by_deadline_and_marked_silent(script_redis, seed):
    rng = random.Random(seed)
    store = DetectionStore(script_redis, SHARDS, sweep_gap_s=30)
    model = Model()
    meters = [(f"MTR-{seed}-{n}", rng.choice(["North", "South"])) for n in range(40)]
    now_s = 1_700_000_000.0
    for _ in range(25):
        for meter, region in rng.sample(meters, 8):
            names = shard_keys(rng.randrange(SHARDS))
            # Scores collide on purpose: ties go by member.
            due = now_s + rng.choice([-5.0, 0.0, 0.0, 3.0, 20.0])
            script_redis.zadd(names.deadlines, {f"{region}\n{meter}": due})
            model.data.setdefault(k(names.deadlines), {})[b(f"{region}\n{meter}")] = due
            if rng.random() < 0.8:
                state = _state(rng)
                script_redis.hset(names.states, meter, state)
                model.data.setdefault(k(names.states), {})[b(meter)] = state
        now_s += rng.choice([0.0, 2.0, 10.0])
        limit = rng.choice([1, 3, 1000])

        silent = store.pop_silent(now_s, limit)

        # Spec: per shard in order, up to *limit* members due by now, by score then member,
        # leave the deadlines; each one's stored state gets its silent flag.
        expected: list[SilentMeter] = []
        for shard in range(SHARDS):
            names = shard_keys(shard)
            deadlines = model.data.get(k(names.deadlines), {})
            due_now = sorted(
                (score, member) for member, score in deadlines.items() if score <= now_s
            )[:limit]
            states = model.data.get(k(names.states), {})
            for _, member in due_now:
                del deadlines[member]
                region, meter = member.decode().split("\n", 1)
                packed = states.get(b(meter))
                if packed is not None:
                    states[b(meter)] = STATE_LAYOUT.pack(*STATE_LAYOUT.unpack(packed)[:6], 1)
                last_ts_us = STATE_LAYOUT.unpack(packed)[2] if packed is not None else None
                expected.append(SilentMeter(meter, region, last_ts_us))
            model.drop_if_empty(k(names.deadlines))
        assert silent == expected
        assert_holds(script_redis, model)


@pytest.mark.parametrize("seed", SEEDS)
def test_stale_states_are_forgotten_only_if_unchanged(script_redis, seed):
    rng = random.Random(seed)
    store = DetectionStore(script_redis, SHARDS, sweep_gap_s=30)
    model = Model()
    for _ in range(20):
        shard = rng.randrange(SHARDS)
        key = shard_keys(shard).states
        states = model.data.setdefault(k(key), {})
        for n in rng.sample(range(30), 10):
            states[b(f"MTR-{n}")] = _state(rng)
        script_redis.hset(key, mapping=states)
        read = {meter.decode(): packed for meter, packed in rng.sample(list(states.items()), 6)}
        # Meanwhile some meters report (their state changes) or are read stale twice.
        for meter in rng.sample(list(read), 2):
            states[b(meter)] = _state(rng)
            script_redis.hset(key, meter, states[b(meter)])

        forgotten = store.forget_states(shard, read)

        # Spec: a state goes only if it is still the one read.
        unchanged = [meter for meter, packed in read.items() if states.get(b(meter)) == packed]
        for meter in unchanged:
            del states[b(meter)]
        model.drop_if_empty(k(key))
        assert forgotten == len(unchanged)
        assert_holds(script_redis, model)
