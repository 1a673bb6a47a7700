"""Which readings a key may send, in which region (segs.domain.registry), and key basics."""

from __future__ import annotations

import pytest

from segs.domain.ingestion_keys import KeyScope
from segs.domain.ingestion_keys import is_well_formed
from segs.domain.ingestion_keys import key_digest
from segs.domain.ingestion_keys import looks_like_api_token
from segs.domain.ingestion_keys import new_plain_key
from segs.domain.ingestion_keys import rate_limit_problem
from segs.domain.ingestion_keys import shown_prefix
from segs.domain.readings import MICRO
from segs.domain.readings import ReadingError
from segs.domain.registry import MeterPlace
from segs.domain.registry import Move
from segs.domain.registry import check_places
from segs.domain.registry import earliest_move_us
from segs.domain.registry import move_time_problem
from segs.domain.registry import place_of
from segs.domain.registry import registrations

QUARTER = 900 * MICRO
T0 = 1_767_225_600 * MICRO  # 2026-01-01T00:00:00Z, a 15-minute boundary
EVERY = KeyScope("k1", "every region")
WEST = KeyScope("k2", "west", regions=frozenset({"West"}))
DEVICE = KeyScope("k3", "one meter", meter_id="M1")


def row(meter, region, ts_us=T0):
    return [meter, region, "r", ts_us, 1_000_000, None, None, None, None, None, None]


def indexed(*rows):
    return list(enumerate(rows))


def test_new_keys_are_well_formed_unique_and_stored_as_a_digest():
    first, second = new_plain_key(), new_plain_key()
    assert first != second
    assert is_well_formed(first) and len(first) == 48
    assert shown_prefix(first) == first[:12]
    assert key_digest(first) == key_digest(first) != key_digest(second)
    assert len(key_digest(first)) == 64 and first not in key_digest(first)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "segs_",
        "segs_short",
        "nope_" + "a" * 43,
        "segs_" + "a" * 42 + "/",
        "segs_" + "a" * 43 + "\n",
    ],
)
def test_malformed_keys_are_recognised_without_a_lookup(text):
    assert not is_well_formed(text)


def test_an_api_token_is_told_apart_from_a_key():
    assert looks_like_api_token("eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl")
    assert not looks_like_api_token(new_plain_key())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("500 per second", None),
        ("6000/minute", None),
        ("1 per day", None),
        ("lots", "e.g. '100 per second' or '6000/minute'"),
        ("1/second;100/minute", "one rate only, e.g. '100 per second'"),
        ("0 per second", "1 to 1,000,000,000 requests per period of at most a day"),
        ("1 per 2 days", "1 to 1,000,000,000 requests per period of at most a day"),
    ],
)
def test_a_keys_rate_limit_is_one_usable_rate(text, problem):
    assert rate_limit_problem(text) == problem


def test_an_expiring_key_stops_at_its_end():
    scope = KeyScope("k", "rotated", expires_at_us=T0)
    assert not scope.has_expired(T0 - 1)
    assert scope.has_expired(T0)
    assert not EVERY.has_expired(T0 * 2)


def test_a_meter_that_never_moved_or_retired_is_just_its_region():
    assert place_of("West") == "West"
    moved = place_of("East", [Move(T0, "West", "East")])
    assert moved == MeterPlace("East", (Move(T0, "West", "East"),))


def test_region_at_follows_the_moves():
    place = place_of("North", [Move(T0 + 4 * QUARTER, "East", "North"), Move(T0, "West", "East")])
    assert isinstance(place, MeterPlace)
    assert place.region_at(T0 - 1) == "West"
    assert place.region_at(T0) == "East"
    assert place.region_at(T0 + 4 * QUARTER - 1) == "East"
    assert place.region_at(T0 + 4 * QUARTER) == "North"


def test_a_head_end_key_registers_new_meters_of_the_regions_it_covers():
    rows = indexed(
        row("NEW1", "West", T0 + 5),
        row("NEW1", "East", T0 + 1),
        row("NEW1", "West", T0 + 2),
        row("NEW2", "East", T0 + 3),
        row("OLD", "West"),
    )
    # The region of a meter's first reading in the request, first seen at its earliest there.
    assert registrations(rows, {"OLD": "West"}, EVERY) == {
        "NEW1": ("West", T0 + 2),
        "NEW2": ("East", T0 + 3),
    }
    assert registrations(rows, {"OLD": "West"}, WEST) == {"NEW1": ("West", T0 + 2)}
    assert registrations(rows, {}, DEVICE) == {}


def test_check_places_keeps_what_the_key_may_send_in_the_registered_region():
    places = {"M1": "West", "M2": "East", "M3": place_of("West", retired_at_us=T0)}
    rows = indexed(
        row("M1", "West"),
        row("M1", "East"),
        row("M2", "East"),
        row("M3", "West", T0 - 1),
        row("M3", "West", T0),
        row("GONE", "West"),
    )
    kept, errors, _ = check_places(rows, places, EVERY)
    assert kept == [row("M1", "West"), row("M2", "East"), row("M3", "West", T0 - 1)]
    assert errors == [
        ReadingError(1, "region", "meter M1 is registered in region West"),
        ReadingError(4, "meterId", "meter M3 was retired at 2026-01-01T00:00:00Z"),
        ReadingError(5, "meterId", "meter GONE is not registered, and this key registers none"),
    ]


def test_a_first_pass_sets_aside_the_meters_it_does_not_hold():
    rows = indexed(row("M1", "West"), row("NEW", "West"), row("M1", "East"))
    kept, errors, unknown = check_places(rows, {"M1": "West"}, EVERY, final=False)
    assert kept == [row("M1", "West")]
    assert errors == [ReadingError(2, "region", "meter M1 is registered in region West")]
    assert unknown == [(1, row("NEW", "West"))]


def test_a_head_end_key_sends_only_for_its_regions():
    kept, errors, _ = check_places(
        indexed(row("M1", "West"), row("M2", "East"), row("M9", "East")),
        {"M1": "West", "M2": "East"},
        WEST,
    )
    assert kept == [row("M1", "West")]
    assert errors == [
        ReadingError(1, "region", "this key does not cover region East"),
        ReadingError(2, "region", "this key does not cover region East"),
    ]


def test_a_device_key_sends_only_its_own_meter():
    kept, errors, _ = check_places(
        indexed(row("M1", "West"), row("M2", "West")), {"M1": "West", "M2": "West"}, DEVICE
    )
    assert kept == [row("M1", "West")]
    assert errors == [ReadingError(1, "meterId", "this key sends readings of M1 only")]


def test_readings_around_a_move_name_the_region_of_their_time():
    places = {"M1": place_of("East", [Move(T0, "West", "East")])}
    rows = indexed(
        row("M1", "West", T0 - 1),
        row("M1", "East", T0 - 1),
        row("M1", "East", T0),
        row("M1", "West", T0),
    )
    kept, errors, _ = check_places(rows, places, EVERY)
    assert kept == [row("M1", "West", T0 - 1), row("M1", "East", T0)]
    assert errors == [
        ReadingError(1, "region", "meter M1 is registered in region West"),
        ReadingError(3, "region", "meter M1 is registered in region East"),
    ]


def test_a_move_starts_on_the_first_boundary_after_every_accepted_reading():
    assert earliest_move_us(T0 - 301 * MICRO, 300) == T0
    assert earliest_move_us(T0 - 300 * MICRO, 300) == T0
    assert earliest_move_us(T0 - 299 * MICRO, 300) == T0 + QUARTER
    now = T0 - 400 * MICRO
    assert move_time_problem(T0, now, 300, None) is None
    assert move_time_problem(T0 + QUARTER, now, 300, T0) is None
    assert "15-minute boundary" in move_time_problem(T0 + 60 * MICRO, now, 300, None)
    assert "must not be before 2026-01-01T00:00:00Z" in move_time_problem(
        T0 - QUARTER, now, 300, None
    )
    assert move_time_problem(T0, now, 300, T0) == "must be after the meter's latest move"
