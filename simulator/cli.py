"""Command line of ``python -m simulator``: options, their SIM_* environment variables, checks."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import NoReturn
from typing import Protocol

from simulator.meters import DEFAULT_RAMP_S
from simulator.meters import MODES
from simulator.meters import REGIONS
from simulator.meters import SCENARIOS
from simulator.runner import Settings
from simulator.runner import run

TARGETS = ("http", "queue")
MAX_BATCH = 1000  # the ingestion endpoint refuses larger batches with 413

EPILOG = """\
scenarios (--scenario):
  steady    every meter follows --mode (the default)
  overload  meters of --scenario-region draw base x U(1.9, 2.3) instead of --mode; with the
            default 5000 meters this drives that region above 90 percent of its capacity. The
            draw climbs there in 6 steps over --ramp-s, so the baselines SEGS learned for the
            meters follow it and no meter reports a power spike
  outage    meters of --scenario-region are in outage mode, the other meters follow --mode
  flap      --scenario-region is overloaded in even UTC minutes and follows --mode in odd
            ones: the load crosses the overload threshold every minute but never stays above
            it for the 2 consecutive windows an overload alert needs

modes (--mode), per meter and cycle, base = the meter's base load (1.0-8.0 kW, drawn once):
  normal    base x U(0.8, 1.2)
  peak      base x U(1.5, 2.0)
  outage    30 in 100 report base x U(0, 0.3), the rest 0 kW; 1 in 10 report status ERROR

regions (--regions), all 10 by default:
  Mumbai-North, Mumbai-South, Delhi-North, Delhi-South, Bangalore-East, Bangalore-West,
  Pune-East, Pune-West, Hyderabad-Central, Chennai-North

targets (--target):
  http      POST JSON arrays to --url
  queue     call segs.ingestion_client.submit_batch in-process, on --concurrency threads
            (needs the backend installed and configured; skips HTTP entirely)

ingestion keys (--key):
  SEGS accepts readings only with an ingestion key. Create one with
    flask --app segs.web create-ingestion-key --name simulator
  and pass it as --key (or SIM_KEY), sent as "Authorization: Bearer <key>"; or put it in the
  URL instead: --url http://localhost:8000/api/v1/<key>/telemetry/batch

Cycles run at a fixed rate: cycle k starts at start + k x --interval; a late cycle starts at
once and counts as behind schedule. All readings of a cycle carry its scheduled time.
Every option can also be set through the environment variable named in its help; the
command line wins. Example: SIM_METERS=100000 SIM_INTERVAL=1 python -m simulator

Ctrl-C or SIGTERM stops after the batches in flight and prints the summary; a second
signal exits at once. Exit status: 0 normally, 1 if no batch got an answer (target down),
2 for invalid options.
"""


def _checked(
    convert: Callable[[str], Any], ok: Callable[[Any], bool], requirement: str
) -> Callable[[str], Any]:
    """An argparse type: convert the text, then require ok(value)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid number") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value

    return parse


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    """An argparse type restricted to *options*; also checks values that come from SIM_*."""

    def parse(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(options)}, got {text!r}")
        return text

    return parse


def _regions(text: str) -> tuple[str, ...]:
    regions = tuple(part.strip() for part in text.split(","))
    if not text.strip() or not all(regions):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of names, got {text!r}")
    return regions


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {text!r}")
    return text


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(text)


positive_int = _checked(int, lambda v: v > 0, "an integer > 0")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(float, lambda v: v > 0, "a number > 0")
non_negative_float = _checked(float, lambda v: v >= 0, "a number >= 0")
probability = _checked(float, lambda v: 0 <= v <= 1, "between 0 and 1")
batch_size = _checked(int, lambda v: 1 <= v <= MAX_BATCH, f"between 1 and {MAX_BATCH}")


def _env_name(flag: str) -> str:
    return "SIM_" + flag.removeprefix("--").upper().replace("-", "_")


class _Container(Protocol):
    """An argument parser or one of its groups."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        """Declare an option."""
        ...


def _option(
    parser: _Container,
    flag: str,
    *,
    default: str | None,
    text: str,
    shown: str | None = None,
    **kwargs: Any,
) -> None:
    """Add *flag* whose default can come from SIM_<FLAG>; argparse converts and checks either."""
    env = _env_name(flag)
    parser.add_argument(
        flag,
        # A string default goes through the option's type, so SIM_* values are validated too.
        default=os.environ.get(env, default),
        help=f"{text} (default: {shown or default}; env {env})",
        **kwargs,
    )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors point at SIM_* variables, which may hold the bad value."""

    def error(self, message: str) -> NoReturn:
        """Print usage and the message (plus the SIM_* variables set), then exit with status 2."""
        used = sorted(name for name in os.environ if name.startswith("SIM_"))
        if used:
            message = f"{message} (environment sets {', '.join(used)})"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, defaults read from SIM_* environment variables."""
    parser = _Parser(
        prog="python -m simulator",
        description="Simulate smart meters and send their readings to SEGS at a fixed rate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = parser.add_argument_group("load")
    _option(
        load, "--meters", metavar="N", default="5000", type=positive_int, text="number of meters"
    )
    _option(
        load,
        "--interval",
        metavar="SECONDS",
        default="10",
        type=positive_float,
        text="seconds between cycles",
    )
    _option(
        load,
        "--mode",
        default="normal",
        type=_choice(MODES),
        metavar="{normal,peak,outage}",
        text="load mode of every meter outside the scenario region",
    )
    _option(
        load,
        "--scenario",
        default="steady",
        type=_choice(SCENARIOS),
        metavar="{steady,overload,outage,flap}",
        text="load scenario, see below",
    )
    _option(
        load,
        "--scenario-region",
        metavar="NAME",
        default="Pune-West",
        text="region the overload/outage/flap scenario acts on; must be in --regions",
    )
    _option(
        load,
        "--ramp-s",
        metavar="SECONDS",
        default=str(DEFAULT_RAMP_S),
        type=non_negative_float,
        text="seconds the overload scenario takes to reach its full load (0: at once)",
    )
    _option(
        load,
        "--regions",
        metavar="LIST",
        default=",".join(REGIONS),
        type=_regions,
        shown="all 10",
        text="comma-separated regions, assigned to meters round-robin",
    )
    _option(
        load,
        "--duplicate-rate",
        metavar="P",
        default="0.01",
        type=probability,
        text="probability that a reading is followed by an exact copy",
    )
    _option(
        load,
        "--seed",
        metavar="INT",
        default=None,
        type=int,
        shown="random, printed in the summary",
        text="seed of every random draw; the same seed repeats the same payloads",
    )

    stop = parser.add_argument_group("when to stop")
    _option(
        stop,
        "--iterations",
        metavar="N",
        default="0",
        type=non_negative_int,
        text="stop after this many cycles; 0 = no limit",
    )
    _option(
        stop,
        "--duration",
        metavar="SECONDS",
        default="0",
        type=non_negative_float,
        text="stop after this many seconds; 0 = no limit",
    )

    send = parser.add_argument_group("sending")
    _option(
        send,
        "--target",
        default="http",
        type=_choice(TARGETS),
        metavar="{http,queue}",
        text="where readings go, see below",
    )
    _option(
        send,
        "--url",
        metavar="URL",
        default="http://localhost:8000/telemetry/batch",
        type=_url,
        text="ingestion endpoint for --target http",
    )
    _option(
        send,
        "--key",
        metavar="KEY",
        default=None,
        shown="none: the URL carries it",
        text="ingestion key, sent as 'Authorization: Bearer KEY'",
    )
    _option(
        send,
        "--batch-size",
        metavar="N",
        default="500",
        type=batch_size,
        text=f"readings per batch, 1 to {MAX_BATCH}",
    )
    _option(
        send,
        "--concurrency",
        metavar="N",
        default="10",
        type=positive_int,
        text="batches in flight at most",
    )
    _option(
        send,
        "--spread",
        default=None,
        action="store_true",
        shown="off",
        text="send each cycle's batches evenly over the interval instead of all at its start "
        "(the readings keep the cycle's timestamp)",
    )
    _option(
        send,
        "--retries",
        metavar="N",
        default="3",
        type=positive_int,
        text="attempts per batch in all, on no answer, 429 or 5xx",
    )
    _option(
        send,
        "--retry-delay",
        metavar="SECONDS",
        default="1.0",
        type=non_negative_float,
        text="backoff before retry n is this x 2^(n-1) seconds; a 503's Retry-After wins",
    )
    _option(
        send,
        "--timeout",
        metavar="SECONDS",
        default="30",
        type=positive_float,
        text="seconds to wait for an HTTP answer",
    )

    report = parser.add_argument_group("reporting")
    _option(
        report,
        "--json-summary",
        default=None,
        type=Path,
        metavar="PATH",
        shown="none",
        text="also write the summary as JSON to PATH",
    )
    _option(
        report,
        "--quiet",
        default=None,
        action="store_true",
        shown="off",
        text="no live progress line",
    )
    return parser


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """Check what one option cannot check alone and build the run's Settings."""
    if args.target == "queue" and not args.key:
        parser.error("--target queue needs --key (or SIM_KEY): readings need an ingestion key")
    if args.scenario != "steady" and args.scenario_region not in args.regions:
        parser.error(
            f"--scenario-region {args.scenario_region!r} is not one of --regions "
            f"({', '.join(args.regions)})"
        )
    return Settings(
        meters=args.meters,
        interval_s=args.interval,
        mode=args.mode,
        scenario=args.scenario,
        scenario_region=args.scenario_region,
        ramp_s=args.ramp_s,
        regions=args.regions,
        duplicate_rate=args.duplicate_rate,
        # Without --seed, pick one and report it so the run can be repeated.
        seed=args.seed if args.seed is not None else secrets.randbits(32),
        iterations=args.iterations,
        duration_s=args.duration,
        target=args.target,
        url=args.url,
        key=args.key,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        spread=_flag_option(args.spread, "SIM_SPREAD", parser),
        retries=args.retries,
        retry_delay_s=args.retry_delay,
        timeout_s=args.timeout,
        json_summary=args.json_summary,
        quiet=_flag_option(args.quiet, "SIM_QUIET", parser),
    )


def _flag_option(value: bool | str | None, env_name: str, parser: argparse.ArgumentParser) -> bool:
    """A store_true option: True when given, else the environment variable's text, if any."""
    if isinstance(value, bool):
        return value
    try:
        return _flag(value or "")
    except ValueError:
        parser.error(f"{env_name} must be 1/0, true/false, yes/no or on/off, got {value!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the simulator; returns the exit status."""
    parser = build_parser()
    return run(settings_from(parser.parse_args(argv), parser))
