"""bench.compare reads make bench's closed-loop report, the shape make bench prints by default."""

from __future__ import annotations

import pytest

from bench.compare import parse_report

CLOSED_LOOP_REPORT = """\
SEGS
  readings/s end to end : 30,844  (2,042,000 accepted, the last archived 66.2 s after the first request; load 60.1 s)
  archived              : 2,042,000
  CPU                   : 123.0 CPU-s, 60.2 µs per reading: postgres 35.0, api (gunicorn) 30.63, worker (celery) 30.0
  totals check          : PASS (raw and all four aggregate tables exact)
SEGS with SEGS_SHARDS=1
  readings/s end to end : 38,578  (2,339,000 accepted, the last archived 60.6 s after the first request; load 60.1 s)
  CPU                   : 109.6 CPU-s, 46.9 µs per reading: api (gunicorn) 30.9, postgres 30.2
  totals check          : PASS (raw and all four aggregate tables exact)
8 shards / 1: 0.80x
peer (bare PostgreSQL)
  readings/s end to end : 140,042  (8,402,000 accepted, the last archived 60.0 s after the first request; load 60.0 s)
  CPU                   : 80.0 CPU-s, 9.5 µs per reading: api (gunicorn) 5.1, postgres 4.4
SEGS / peer: 0.22x (goal >= 0.5x)
"""  # noqa: E501


def test_the_closed_loop_figures_are_the_first_stacks():
    run = parse_report("current #1", CLOSED_LOOP_REPORT)
    assert (run.rate, run.accepted) == (30_844, 2_042_000)
    # The API's CPU-s over the readings accepted, wherever the API comes in the list.
    assert run.cpu_us_per_reading == 60.2
    assert run.api_cpu_us_per_reading == pytest.approx(15.0)
    assert (run.sustained, run.totals) == ("closed loop", "PASS")
    assert run.ratios == {"8 shards / 1": 0.80, "SEGS / peer": 0.22}


def test_a_report_without_figures_is_refused():
    with pytest.raises(ValueError, match="not a complete make bench report"):
        parse_report("current #1", "SEGS\n  totals check : PASS\n")
