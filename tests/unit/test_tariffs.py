"""Tariff rules: bands, the time-of-use grid in a region's zone, overrides, the threshold."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from segs.domain.tariffs import CurrentTariff
from segs.domain.tariffs import Override
from segs.domain.tariffs import PricingRules
from segs.domain.tariffs import TariffRuleError
from segs.domain.tariffs import automatic_price
from segs.domain.tariffs import band_multiplier
from segs.domain.tariffs import moved_enough
from segs.domain.tariffs import next_price
from segs.domain.tariffs import parse_load_bands
from segs.domain.tariffs import parse_tou

BANDS = parse_load_bands(
    [
        {"fromPercent": "0", "multiplier": "0.8"},
        {"fromPercent": "25", "multiplier": "0.9"},
        {"fromPercent": "50", "multiplier": "1.0"},
        {"fromPercent": "75", "multiplier": "1.1"},
        {"fromPercent": "90", "multiplier": "1.25"},
    ]
)
GRID = parse_tou(
    {"weekday": "OOOOOOSSSSSSSSSSSPPPPPOO", "weekend": "OOOOOOOSSSSSSSSSSSSSSSSO"},
    {"off_peak": "0.9", "shoulder": "1.0", "peak": "1.2"},
)
RULES = PricingRules("Pune-West", "Asia/Kolkata", D("6.000000"), BANDS, GRID)
THRESHOLD = D("0.02")
# Wednesday 2026-10-14 18:00 in Kolkata (peak), 12:30 UTC.
PEAK = datetime(2026, 10, 14, 12, 30, tzinfo=UTC)
# Same day 12:00 in Kolkata (shoulder).
SHOULDER = datetime(2026, 10, 14, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("load", "multiplier"),
    [
        ("0", "0.8"),
        ("24.9999", "0.8"),
        ("25", "0.9"),
        ("49.99", "0.9"),
        ("50", "1.0"),
        ("74.9999", "1.0"),
        ("75", "1.1"),
        ("89.9999", "1.1"),
        ("90", "1.25"),
        ("140", "1.25"),
    ],
)
def test_load_bands_of_the_earlier_system(load, multiplier):
    assert band_multiplier(BANDS, D(load)) == D(multiplier)


def test_automatic_price_is_base_times_band_times_time_of_use():
    quote = automatic_price(RULES, D("80"), PEAK)
    assert (quote.price, quote.load_multiplier, quote.tou_period) == (
        D("7.920000"),
        D("1.1"),
        "peak",
    )
    assert automatic_price(RULES, D("10"), SHOULDER).price == D("4.800000")
    # No load measured yet: the x1.0 band.
    assert automatic_price(RULES, None, SHOULDER).price == D("6.000000")


def test_time_of_use_reads_the_local_clock_and_the_weekend_grid():
    zone = ZoneInfo("Asia/Kolkata")
    # 2026-10-17 is a Saturday: 18:00 local is shoulder on the weekend grid.
    assert GRID.period_at(datetime(2026, 10, 17, 12, 30, tzinfo=UTC), zone) == "shoulder"
    assert GRID.period_at(datetime(2026, 10, 17, 18, 0, tzinfo=UTC), zone) == "off_peak"
    london = ZoneInfo("Europe/London")
    # 16:30 UTC on a weekday is 17:30 BST in summer (peak) but 16:30 GMT in winter (shoulder).
    assert GRID.period_at(datetime(2026, 7, 15, 16, 30, tzinfo=UTC), london) == "peak"
    assert GRID.period_at(datetime(2026, 12, 16, 16, 30, tzinfo=UTC), london) == "shoulder"


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ([], "first band"),
        ([{"fromPercent": "10", "multiplier": "1"}], "first band"),
        (
            [{"fromPercent": "0", "multiplier": "1"}, {"fromPercent": "0", "multiplier": "2"}],
            "increase",
        ),
        ([{"fromPercent": "0", "multiplier": "-1"}], "positive"),
        ([{"fromPercent": "0"}], "fromPercent and multiplier"),
        ([{"fromPercent": "NaN", "multiplier": "1"}], "must be numbers"),
        (["not a band"], "fromPercent and multiplier"),
    ],
)
def test_bad_load_bands_are_refused(bands, message):
    with pytest.raises(TariffRuleError, match=message):
        parse_load_bands(bands)


def test_bad_time_of_use_grid_is_refused():
    with pytest.raises(TariffRuleError, match="weekday"):
        parse_tou({"weekday": "P" * 23, "weekend": "O" * 24}, GRID.multipliers)
    with pytest.raises(TariffRuleError, match="touMultipliers"):
        parse_tou({"weekday": "P" * 24, "weekend": "O" * 24}, {"peak": "1"})


def test_threshold_is_relative_to_the_previous_price():
    assert moved_enough(D("6.00"), D("6.12"), THRESHOLD)
    assert not moved_enough(D("6.00"), D("6.119999"), THRESHOLD)
    assert moved_enough(D("6.00"), D("5.88"), THRESHOLD)


def current(price, since, **extra):
    fields = {"override_id": None, "load_multiplier": D("1.0"), "tou_period": "shoulder"}
    fields.update(extra)
    return CurrentTariff(D(price), since, **fields)


def test_first_price_is_published():
    change = next_price(None, RULES, D("60"), [], SHOULDER, THRESHOLD)
    assert (change.price, change.triggered_by, change.effective_from) == (
        D("6.000000"),
        "initial",
        SHOULDER,
    )


def test_small_moves_are_not_published_and_band_crossings_are():
    since = datetime(2026, 10, 14, 6, 0, tzinfo=UTC)
    now_price = current("6.000000", since)
    assert next_price(now_price, RULES, D("74"), [], SHOULDER, THRESHOLD) is None
    change = next_price(now_price, RULES, D("76"), [], SHOULDER, THRESHOLD)
    assert (change.price, change.triggered_by) == (D("6.600000"), "load")
    assert change.reason == "load 76%: band x1.1, shoulder"


def test_a_time_of_use_boundary_is_published_as_such():
    since = datetime(2026, 10, 14, 6, 0, tzinfo=UTC)
    change = next_price(current("6.000000", since), RULES, D("60"), [], PEAK, THRESHOLD)
    assert (change.price, change.triggered_by) == (D("7.200000"), "time_of_use")


def test_override_beats_automatic_from_its_own_start_and_falls_back_at_its_end():
    since = datetime(2026, 10, 14, 6, 0, tzinfo=UTC)
    starts = datetime(2026, 10, 14, 6, 20, tzinfo=UTC)
    ends = datetime(2026, 10, 14, 12, 0, tzinfo=UTC)
    override = Override(7, D("3.500000"), starts, ends, "festival")
    change = next_price(current("6.000000", since), RULES, D("95"), [override], SHOULDER, THRESHOLD)
    assert (change.price, change.effective_from, change.override_id, change.triggered_by) == (
        D("3.500000"),
        starts,
        7,
        "override",
    )
    assert change.reason == "override: festival"
    during = current("3.500000", starts, override_id=7, override_valid_to=ends)
    assert next_price(during, RULES, D("95"), [override], SHOULDER, THRESHOLD) is None
    # Past its end (the engine ran late): automatic again, from the override's end.
    fallback = next_price(during, RULES, D("95"), [], PEAK, THRESHOLD)
    assert (fallback.price, fallback.effective_from, fallback.triggered_by) == (
        D("9.000000"),
        ends,
        "override_end",
    )
    # A removed override (no end on record) falls back now.
    removed = current("3.500000", starts, override_id=7)
    assert next_price(removed, RULES, D("95"), [], PEAK, THRESHOLD).effective_from == PEAK


def test_a_change_never_makes_an_empty_interval():
    assert next_price(current("6.000000", PEAK), RULES, D("95"), [], PEAK, THRESHOLD) is None


HYSTERESIS = D("5")


def _in_band(multiplier: str, load: str) -> CurrentTariff:
    """A price set in a band at a load, at shoulder time (x1.0)."""
    since = datetime(2026, 10, 14, 6, 0, tzinfo=UTC)
    price = (D("6") * D(multiplier)).quantize(D("0.000001"))
    return current(str(price), since, load_multiplier=D(multiplier), load_percent=D(load))


@pytest.mark.parametrize(
    ("load", "published"),
    [
        ("74.9", None),  # just under the 75 % edge: the x1.1 band holds
        ("70.0001", None),  # still within the 5 points
        ("70", "6.000000"),  # 5 points under: back to x1.0
        ("40", "5.400000"),  # far below: straight to its own band (x0.9)
    ],
)
def test_a_falling_load_leaves_its_band_only_past_the_hysteresis(load, published):
    change = next_price(
        _in_band("1.1", "76"), RULES, D(load), [], SHOULDER, THRESHOLD, band_hysteresis=HYSTERESIS
    )
    assert (None if change is None else str(change.price)) == published


def test_a_rising_load_enters_the_next_band_at_its_edge():
    change = next_price(
        _in_band("1.0", "74"), RULES, D("75"), [], SHOULDER, THRESHOLD, band_hysteresis=HYSTERESIS
    )
    assert change is not None and change.price == D("6.600000")


def test_a_load_wavering_at_an_edge_publishes_one_price():
    """Load swinging 73-77 % every minute: without hysteresis the price flips each time."""
    loads = ["76", "73", "77", "74", "76", "73", "77"]

    def published(hysteresis: D) -> list[D]:
        price = _in_band("1.0", "60")
        prices = []
        for load in loads:
            change = next_price(
                price, RULES, D(load), [], SHOULDER, THRESHOLD, band_hysteresis=hysteresis
            )
            if change is not None:
                prices.append(change.price)
                price = CurrentTariff(
                    change.price,
                    price.effective_from,
                    None,
                    change.load_multiplier,
                    "shoulder",
                    load_percent=change.load_percent,
                )
        return prices

    assert published(D("0")) == [D("6.600000"), D("6.000000")] * 3 + [D("6.600000")]
    assert published(HYSTERESIS) == [D("6.600000")]


def test_a_held_band_is_found_again_from_the_price_it_was_held_at():
    """A time-of-use change while held publishes the held band with the lower load; the next
    recalculation must still see the held band, not the band of that load."""
    held = _in_band("1.1", "72")  # x1.1 published at 72 % (held above 70)
    assert (
        next_price(held, RULES, D("71"), [], SHOULDER, THRESHOLD, band_hysteresis=HYSTERESIS)
        is None
    )
