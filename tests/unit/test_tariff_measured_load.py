"""A price set before any load was measured is re-based on the first measured load, even when
the number stays the same (the 50-75 % band is the same x1.0 as "no load data")."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from segs.domain.tariffs import CurrentTariff
from segs.domain.tariffs import next_price
from tests.unit.test_tariffs import RULES
from tests.unit.test_tariffs import SHOULDER
from tests.unit.test_tariffs import THRESHOLD

SINCE = SHOULDER - timedelta(minutes=5)


def priced(price: str, *, unmeasured: bool) -> CurrentTariff:
    return CurrentTariff(D(price), SINCE, None, D("1.0"), "shoulder", unmeasured=unmeasured)


def test_the_first_price_without_load_says_so():
    change = next_price(None, RULES, None, [], SINCE, THRESHOLD)
    assert (change.price, change.load_percent, change.triggered_by) == (
        D("6.000000"),
        None,
        "initial",
    )
    assert change.reason == "first automatic price (no load data: band x1.0, shoulder)"


def test_the_first_measured_load_is_published_at_the_same_price():
    change = next_price(
        priced("6.000000", unmeasured=True), RULES, D("59"), [], SHOULDER, THRESHOLD
    )

    assert (change.price, change.effective_from, change.triggered_by) == (
        D("6.000000"),
        SHOULDER,
        "load",
    )
    assert (change.load_percent, change.load_multiplier) == (D("59"), D("1.0"))
    assert change.reason == "first measured load 59%: band x1.0, shoulder"


def test_a_measured_price_in_the_same_band_stands():
    assert (
        next_price(priced("6.000000", unmeasured=False), RULES, D("59"), [], SHOULDER, THRESHOLD)
        is None
    )


def test_still_no_load_changes_nothing():
    assert (
        next_price(priced("6.000000", unmeasured=True), RULES, None, [], SHOULDER, THRESHOLD)
        is None
    )


def test_a_first_load_in_another_band_is_published_once_as_that_band():
    change = next_price(
        priced("6.000000", unmeasured=True), RULES, D("95"), [], SHOULDER, THRESHOLD
    )
    assert (change.price, change.triggered_by, change.reason) == (
        D("7.500000"),
        "load",
        "first measured load 95%: band x1.25, shoulder",
    )
    measured = CurrentTariff(D("7.500000"), SHOULDER, None, D("1.25"), "shoulder")
    later = SHOULDER + timedelta(minutes=1)
    assert next_price(measured, RULES, D("95"), [], later, THRESHOLD) is None


def test_the_re_basing_never_makes_an_empty_interval():
    # At the instant the current interval began, the change waits for the next run.
    current = priced("6.000000", unmeasured=True)
    assert next_price(current, RULES, D("59"), [], SINCE, THRESHOLD) is None
