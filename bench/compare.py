"""``python -m bench.compare``: ``make bench`` on this checkout and on another commit, in turns.

The host's speed drifts during a day, so a figure is only worth comparing with one taken in the
same run. This command checks the other commit (``--baseline``, e.g. the commit before a change)
out into a worktree of its own, installs it, then runs ``make bench`` with the same arguments
there and here, alternating (baseline, current, baseline, current...), and prints, per run and
as medians: readings accepted per second, whether the load was sustained, and the CPU spent per
accepted reading, in all and by the API. On this 2-core host every process shares the same two
cores, so the CPU a reading costs bounds the throughput: the ratio of the medians is how much
of the baseline's throughput the current code keeps.

    python -m bench.compare --baseline 636188e -- --duration 60
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_DATABASE = "postgresql+psycopg:///segs_bench_baseline"

_ACCEPTED = re.compile(r"accepted readings/s\s+: ([\d,]+)\s+\(([\d,]+) in ([\d.]+) s\)")
_SUSTAINED = re.compile(r"sustained \(kept up\)\s+: (.*)")
_CPU_TOTAL = re.compile(r"CPU during the load \(([\d.]+) CPU-s")
_CPU_API = re.compile(r"^\s+api \(gunicorn\)\s+([\d.]+) CPU-s", re.MULTILINE)
_TOTALS = re.compile(r"totals check\s+: (\w+)")
# The closed loop's report (make bench's default shape, issue 16).
_CLOSED_RATE = re.compile(r"readings/s end to end\s+: ([\d,]+)\s+\(([\d,]+) accepted")
# Each process's CPU-s follow, largest first, so the API's may come anywhere in the list.
_CLOSED_CPU = re.compile(r"CPU\s+: [\d.]+ CPU-s, ([\d.]+) µs per reading: (.*)")
_PROCESS_CPU_S = re.compile(r"api \(gunicorn\) ([\d.]+)")
# The ratios a report ends with ("8 shards / 1: 0.80x", "SEGS / peer: 0.28x (goal >= 0.5x)").
_RATIO = re.compile(r"^([^:\n]+ / [^:\n]+): ([\d.]+)x", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    label: str
    rate: float
    accepted: int
    sustained: str
    cpu_us_per_reading: float
    api_cpu_us_per_reading: float
    totals: str
    ratios: dict[str, float] = field(default_factory=dict)


def parse_report(label: str, text: str) -> Run:
    """The figures of one ``make bench`` report: the closed loop (the default) or a fixed-rate
    run (``--fixed-rate``). With several stacks in one report, the first one's figures, and
    the ratios the report ends with."""
    totals = _TOTALS.search(text)
    closed_rate, closed_cpu = _CLOSED_RATE.search(text), _CLOSED_CPU.search(text)
    api_cpu_s = _PROCESS_CPU_S.search(closed_cpu.group(2)) if closed_cpu else None
    if closed_rate and closed_cpu and api_cpu_s and totals:
        taken = max(int(closed_rate.group(2).replace(",", "")), 1)
        return Run(
            label=label,
            rate=float(closed_rate.group(1).replace(",", "")),
            accepted=taken,
            sustained="closed loop",
            cpu_us_per_reading=float(closed_cpu.group(1)),
            api_cpu_us_per_reading=float(api_cpu_s.group(1)) * 1e6 / taken,
            totals=totals.group(1),
            ratios={name: float(value) for name, value in _RATIO.findall(text)},
        )
    accepted = _ACCEPTED.search(text)
    cpu_total = _CPU_TOTAL.search(text)
    cpu_api = _CPU_API.search(text)
    sustained = _SUSTAINED.search(text)
    if not (accepted and cpu_total and cpu_api and sustained and totals):
        raise ValueError(f"not a complete make bench report:\n{text[-3000:]}")
    count = max(int(accepted.group(2).replace(",", "")), 1)
    return Run(
        label=label,
        rate=float(accepted.group(1).replace(",", "")),
        accepted=count,
        sustained=sustained.group(1).strip(),
        cpu_us_per_reading=float(cpu_total.group(1)) * 1e6 / count,
        api_cpu_us_per_reading=float(cpu_api.group(1)) * 1e6 / count,
        totals=totals.group(1),
    )


def _checkout(ref: str) -> Path:
    """A worktree of *ref* with its own .venv, made once and reused by later comparisons."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"segs-baseline-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    subprocess.run(["make", "install", f"PYTHON={sys.executable}"], cwd=path, check=True)
    return path


def _bench(label: str, checkout: Path, bench_args: list[str]) -> Run:
    print(f"--- {label}: make bench {' '.join(bench_args)} (in {checkout})", flush=True)
    done = subprocess.run(
        ["make", "--no-print-directory", "bench", f"BENCH_ARGS={' '.join(bench_args)}"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    print(done.stdout[-2500:], flush=True)
    if done.returncode not in (0, 1):  # 1: the report says the totals failed; still a report
        raise SystemExit(f"make bench failed in {checkout}:\n{done.stderr[-3000:]}")
    return parse_report(label, done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Arguments after -- go to make bench (BENCH_ARGS) on both sides.",
    )
    parser.add_argument("--baseline", required=True, help="git commit or ref to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    args, rest = parser.parse_known_args(argv)
    bench_args = rest[1:] if rest[:1] == ["--"] else rest
    baseline = _checkout(args.baseline)
    # A database of its own: the two sides' schemas (migrations) may differ.
    baseline_args = [*bench_args, "--database-url", BASELINE_DATABASE]
    runs: list[Run] = []
    for round_number in range(1, args.rounds + 1):
        runs.append(_bench(f"baseline #{round_number}", baseline, baseline_args))
        runs.append(_bench(f"current #{round_number}", ROOT, bench_args))
    print(f"\ncomparison with {args.baseline}, make bench {' '.join(bench_args)}")
    print(
        f"{'run':<14} {'readings/s':>11} {'CPU µs/reading':>15} {'API µs/reading':>15}  sustained"
    )
    for run in runs:
        print(
            f"{run.label:<14} {run.rate:>11,.0f} {run.cpu_us_per_reading:>15.1f} "
            f"{run.api_cpu_us_per_reading:>15.1f}  {run.sustained} (totals {run.totals})"
        )
    sides = {
        side: [run for run in runs if run.label.startswith(side)]
        for side in ("baseline", "current")
    }
    cpu = {
        side: statistics.median(r.cpu_us_per_reading for r in group)
        for side, group in sides.items()
    }
    api = {
        side: statistics.median(r.api_cpu_us_per_reading for r in group)
        for side, group in sides.items()
    }
    print(
        f"median CPU per reading: baseline {cpu['baseline']:.1f} µs, "
        f"current {cpu['current']:.1f} µs (API {api['baseline']:.1f} -> {api['current']:.1f} µs)"
    )
    print(f"throughput kept (CPU-bound): {cpu['baseline'] / cpu['current']:.3f}x the baseline")
    rate = {side: statistics.median(r.rate for r in group) for side, group in sides.items()}
    print(
        f"median readings/s: baseline {rate['baseline']:,.0f}, current {rate['current']:,.0f} "
        f"({rate['current'] / rate['baseline']:.3f}x)"
    )
    for name in sorted({name for run in runs for name in run.ratios}):
        medians = {
            side: statistics.median(r.ratios[name] for r in group if name in r.ratios)
            for side, group in sides.items()
            if any(name in r.ratios for r in group)
        }
        print(
            f"median {name}: "
            + ", ".join(f"{side} {value:.2f}x" for side, value in medians.items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
