"""The closed loop's wait for the last reading counts rows only once no message waits."""

from __future__ import annotations

from bench.closed_loop import wait_archived


def test_rows_are_counted_only_once_the_queues_are_empty():
    depths = iter([3, 2, 0, 0])
    counted: list[int] = []
    counts = iter([7, 10])

    def count() -> int:
        counted.append(next(counts))
        return counted[-1]

    _, archived = wait_archived(count, 10, queued=lambda: next(depths))
    assert archived == 10
    assert counted == [7, 10]  # not one count while the queues held messages


def test_without_queues_the_count_is_polled_until_complete():
    counts = iter([4, 9, 12])
    _, archived = wait_archived(lambda: next(counts), 12)
    assert archived == 12
