"""bench.compare reads make bench's closed-loop report, the shape make bench prints by default."""

from __future__ import annotations

import pytest

from bench.compare import parse_report

CLOSED_LOOP_REPORT = """\
SEGS
  readings/s end to end : 30,844  (2,042,000 accepted, the last archived 66.2 s after the first request; load 60.1 s)
  archived              : 2,042,000
  CPU                   : 123.0 CPU-s, 60.2 µs per reading: api (gunicorn) 33.5, postgres 31.5
  totals check          : PASS (raw and all four aggregate tables exact)
peer (bare PostgreSQL)
  readings/s end to end : 140,042  (8,402,000 accepted, the last archived 60.0 s after the first request; load 60.0 s)
  CPU                   : 80.0 CPU-s, 9.5 µs per reading: api (gunicorn) 5.1, postgres 4.4
"""  # noqa: E501


def test_the_closed_loop_figures_are_the_first_stacks():
    run = parse_report("current #1", CLOSED_LOOP_REPORT)
    assert (run.rate, run.accepted) == (30_844, 2_042_000)
    assert (run.cpu_us_per_reading, run.api_cpu_us_per_reading) == (60.2, 33.5)
    assert (run.sustained, run.totals) == ("closed loop", "PASS")


def test_a_report_without_figures_is_refused():
    with pytest.raises(ValueError, match="not a complete make bench report"):
        parse_report("current #1", "SEGS\n  totals check : PASS\n")
