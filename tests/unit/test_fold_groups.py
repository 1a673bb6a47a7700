"""How a worker cuts the reading batch messages it gathered into fold groups."""

from __future__ import annotations

from segs.services.spine.archive import Batch
from segs.tasks.readings import Message
from segs.tasks.readings import _groups


def message(batch_id: str, readings: int) -> Message:
    rows = [["M", "R", "id", n, 0, None, None, None, None, None, None] for n in range(readings)]
    return Message(Batch(batch_id, rows, 0, 0), 0, 0)


def sizes(groups: list[list[Message]]) -> list[list[int]]:
    return [[len(item.batch.rows) for item in group] for group in groups]


def test_groups_hold_at_most_the_readings_allowed():
    messages = [message(str(n), size) for n, size in enumerate([60, 60, 60, 500, 20, 20])]
    assert sizes(_groups(messages, 200)) == [[60, 60, 60], [500], [20, 20]]


def test_everything_in_one_group_when_it_fits():
    messages = [message(str(n), 62) for n in range(8)]
    assert sizes(_groups(messages, 5000)) == [[62] * 8]


def test_no_messages_no_groups():
    assert _groups([], 5000) == []
