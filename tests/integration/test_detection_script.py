"""The detection script in Redis against its specification, segs.domain.alerts.observe.

Random meters send random batches (out of order, repeated, with readings exactly on every
threshold, long spikes and drops that get learned, outages that do not): the script must leave
the same state and report the same findings, in the same order, as the Python rule.
"""

from __future__ import annotations

import random

import pytest

from segs.domain import alerts as rules
from segs.domain.alerts import MeterState
from segs.redis_client import get_redis
from segs.services.shared.keyspace import all_shard_keys
from segs.services.spine.detection import MeterFinding
from segs.services.spine.detection import pack_readings
from segs.services.spine.detection import unpack_findings
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from segs.tasks.alerts import get_detection_store
from segs.tasks.stores import get_window_store
from tests import support
from tests.support import MICRO
from tests.support import reset_state
from tests.support import shard_of

# No window counts as late here (they are old test windows, flushed on their end).
NEVER_LATE = LateWindows(cutoff_us=0, hold_us=0)

pytestmark = [pytest.mark.integration, pytest.mark.scripts]

MISSED = 3


def next_power(rng: random.Random, state: MeterState | None) -> int:
    """A power chosen to land on, or next to, the rule's edges for this meter's state."""
    base = (state.baseline if state else 0) or rules.FLOOR_BASELINE
    return rng.choice(
        [
            rng.randint(base * 7 // 10, base * 13 // 10),  # normal
            rng.randint(base * 7 // 10, base * 13 // 10),
            2 * base,
            2 * base + 1,
            3 * base,
            3 * base + 1,
            rng.randint(2 * base + 1, 5 * base),
            base // 2,
            (base + 1) // 2 - 1,
            base // 5,
            rng.randint(0, base // 2),
            0,
            rules.OUTAGE_POWER_BELOW - 1,
            rules.OUTAGE_POWER_BELOW,
            rng.randint(0, 10 * MICRO),
        ]
    )


def expected_findings(
    states: dict[str, MeterState | None], rows: list[list], relearn_after: int
) -> list[MeterFinding]:
    """Run the Python rule over a batch the way the script does: by meter, then time."""
    found: list[MeterFinding] = []
    for row in sorted(rows, key=lambda row: (row[0], row[3])):
        meter, region, ts_us, power = row[0], row[1], row[3], row[4]
        state, findings = rules.observe(states.get(meter), ts_us, power, relearn_after)
        states[meter] = state
        found.extend(MeterFinding(meter, region, finding, ts_us) for finding in findings)
    return found


@pytest.mark.parametrize(("seed", "relearn_after"), [(1, 4), (2, 0), (3, 1), (4, 30)])
def test_the_script_judges_exactly_as_the_rule(database, seed, relearn_after):
    reset_state()
    rng = random.Random(seed)
    regions = ["Pune-West", "Delhi-North"]
    meters = [(f"SCRIPT-{seed}-{index}", rng.choice(regions)) for index in range(12)]
    # From batch 20 on, some meters hold a level far from their baseline (21 kW or nothing),
    # so that long spikes get learned and outages do not.
    held = {meter: rng.choice([None, None, 21 * MICRO, 0]) for meter, _ in meters}
    clock = {meter: 1_700_000_000 * MICRO for meter, _ in meters}
    model: dict[str, MeterState | None] = {}
    deadlines: dict[str, float] = {}
    seen: list[MeterFinding] = []
    for batch_index in range(60):
        rows: list[list] = []
        preview = dict(model)  # the rule's view while choosing powers near its edges
        for _ in range(rng.randint(1, 25)):
            meter, region = rng.choice(meters)
            clock[meter] += rng.choice([2, 2, 2, 5, 0, -3]) * MICRO  # repeats and late ones too
            power = held[meter] if batch_index >= 20 and held[meter] is not None else None
            if power is None:
                power = next_power(rng, preview.get(meter))
            preview[meter], _ = rules.observe(preview.get(meter), clock[meter], power)
            rows.append([meter, region, "id", clock[meter], power, 0, 0, 0, 0, 0, 0])
        received = 1_800_000_000 * MICRO + batch_index * MICRO
        before = dict(model)
        expected = expected_findings(model, rows, relearn_after)
        # As the API sends them: one batch per shard, each judged by its shard's script call.
        by_shard: dict[int, list[list]] = {}
        for row in rows:
            by_shard.setdefault(shard_of(row[0]), []).append(row)
        findings: list[MeterFinding] = []
        for shard, listed in sorted(by_shard.items()):
            judged = Judged(pack_readings(listed), received, MISSED, relearn_after)
            found = get_window_store().fold(
                shard, [f"script-{seed}-{batch_index}"], {}, judged, 60, NEVER_LATE
            )
            assert not found.applied_before
            findings.extend(unpack_findings(found.findings))

        # Each shard's findings come by meter, then time: in that order, the rule's.
        assert sorted(findings, key=lambda found: found.meter_id) == expected
        seen.extend(expected)
        for meter, region in {(row[0], row[1]) for row in rows}:
            state = model[meter]
            assert state is not None
            assert get_detection_store().state(meter) == state
            if state != before.get(meter) and state.interval_us > 0:
                deadlines[f"{region}\n{meter}"] = (received + MISSED * state.interval_us) / MICRO
        stored = {
            member: score
            for names in all_shard_keys(support.settings().shards)
            for member, score in get_redis().zrange(names.deadlines, 0, -1, withscores=True)
        }
        assert stored == {member.encode(): score for member, score in deadlines.items()}

    # The data reached every rule: each anomaly raised, and cleared again.
    raised = {found.finding.type for found in seen if isinstance(found.finding, rules.Raise)}
    cleared = {found.finding.type for found in seen if isinstance(found.finding, rules.Clear)}
    if relearn_after == 1:  # every spike or drop is the new normal at once
        assert (raised, cleared) == ({rules.POWER_OUTAGE}, {rules.POWER_OUTAGE})
    else:
        assert raised == {rules.POWER_SPIKE, rules.POWER_DROP, rules.POWER_OUTAGE}
        assert cleared >= {rules.POWER_SPIKE, rules.POWER_DROP}
    learned = [meter for meter, _ in meters if model[meter] and model[meter].baseline == 21 * MICRO]
    assert bool(learned) == (relearn_after > 0)
