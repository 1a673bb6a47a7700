"""Where each meter belongs: its region over time and its retirement, and the readings a key
may send for it.

A meter belongs to one region at a time. A move takes effect at a 15-minute boundary (the
largest window), so every window of a meter lies wholly in one region and the regional rows stay
exact across the move. It must also start after every reading the API may already have taken
(at most SEGS_MAX_FUTURE_SKEW_S ahead of now), so no accepted reading ever contradicts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

from segs.domain.ingestion_keys import KeyScope
from segs.domain.readings import MICRO
from segs.domain.readings import ROW_METER
from segs.domain.readings import ROW_REGION
from segs.domain.readings import ROW_TS
from segs.domain.readings import ReadingError
from segs.domain.readings import ReadingRow
from segs.domain.readings import from_epoch_us
from segs.domain.windows import WINDOW_SIZES

MOVE_ALIGNMENT_US = max(WINDOW_SIZES.values()) * MICRO


@dataclass(frozen=True, slots=True)
class Move:
    effective_from_us: int
    from_region: str
    to_region: str


@dataclass(frozen=True, slots=True)
class MeterPlace:
    """A meter that moved or retired; one that did neither is just its region's name."""

    region: str  # from its latest move on
    moves: tuple[Move, ...] = field(default=())  # oldest first
    retired_at_us: int | None = None

    def region_at(self, ts_us: int) -> str:
        for move in reversed(self.moves):
            if ts_us >= move.effective_from_us:
                return move.to_region
        return self.moves[0].from_region if self.moves else self.region


# What the API caches per meter: a bare region name in the usual case, which is cheap to keep
# for a million meters and to compare for every reading.
Place = str | MeterPlace


def place_of(region: str, moves: Iterable[Move] = (), retired_at_us: int | None = None) -> Place:
    ordered = tuple(sorted(moves, key=lambda move: move.effective_from_us))
    if not ordered and retired_at_us is None:
        return region
    return MeterPlace(region, ordered, retired_at_us)


def registrations(
    rows: list[tuple[int, ReadingRow]], places: Mapping[str, Place], scope: KeyScope
) -> dict[str, tuple[str, int]]:
    """The unregistered meters *scope* may register on first sight: each in the region its
    first reading in *rows* names, first seen at the earliest of its readings naming that
    region (epoch µs). Only a head-end key registers, and only in the regions it covers."""
    if scope.meter_id is not None:
        return {}
    new: dict[str, tuple[str, int]] = {}
    for _, row in rows:
        meter, region, ts_us = row[ROW_METER], row[ROW_REGION], row[ROW_TS]
        if meter in places:
            continue
        known = new.get(meter)
        if known is None:
            if scope.covers(region):
                new[meter] = (region, ts_us)
        elif known[0] == region and ts_us < known[1]:
            new[meter] = (region, ts_us)
    return new


def check_places(
    rows: list[tuple[int, ReadingRow]],
    places: Mapping[str, Place],
    scope: KeyScope,
    *,
    final: bool = True,
) -> tuple[list[ReadingRow], list[ReadingError], list[tuple[int, ReadingRow]]]:
    """Keep the readings *scope* may send for registered meters, in the region each meter
    belongs to at the reading's time; one error for every other reading.

    Unless *final*, the readings of meters *places* does not hold are neither kept nor refused
    but returned last, to be looked up (and maybe registered) and checked again.
    """
    kept: list[ReadingRow] = []
    errors: list[ReadingError] = []
    unknown: list[tuple[int, ReadingRow]] = []
    device = scope.meter_id
    every_region = scope.regions is None
    for index, row in rows:
        meter, region = row[ROW_METER], row[ROW_REGION]
        place = places.get(meter)
        # The usual case inline, as it runs for every reading.
        if (
            place.__class__ is str
            and place == region
            and (every_region or scope.covers(region))
            and (device is None or meter == device)
        ):
            kept.append(row)
            continue
        if place is None and not final:
            unknown.append((index, row))
            continue
        error = _place_error(index, row, place, scope)
        if error is None:
            kept.append(row)
        else:
            errors.append(error)
    return kept, errors, unknown


def _place_error(
    index: int, row: ReadingRow, place: Place | None, scope: KeyScope
) -> ReadingError | None:
    meter, region, ts_us = row[ROW_METER], row[ROW_REGION], row[ROW_TS]
    if scope.meter_id is not None and meter != scope.meter_id:
        return ReadingError(index, "meterId", f"this key sends readings of {scope.meter_id} only")
    if place is None:
        if not scope.covers(region):
            return ReadingError(index, "region", f"this key does not cover region {region}")
        return ReadingError(
            index, "meterId", f"meter {meter} is not registered, and this key registers none"
        )
    expected = place if isinstance(place, str) else place.region_at(ts_us)
    if region != expected:
        return ReadingError(index, "region", f"meter {meter} is registered in region {expected}")
    if not scope.covers(region):
        return ReadingError(index, "region", f"this key does not cover region {region}")
    if isinstance(place, MeterPlace) and place.retired_at_us is not None:
        if ts_us >= place.retired_at_us:
            retired = _utc_text(place.retired_at_us)
            return ReadingError(index, "meterId", f"meter {meter} was retired at {retired}")
    return None


def earliest_move_us(now_us: int, max_future_skew_s: int) -> int:
    """The first instant a move made now may take effect: the first 15-minute boundary after
    every reading already accepted (at most *max_future_skew_s* ahead of now)."""
    horizon = now_us + max_future_skew_s * MICRO
    return -(-horizon // MOVE_ALIGNMENT_US) * MOVE_ALIGNMENT_US


def move_time_problem(
    effective_from_us: int, now_us: int, max_future_skew_s: int, last_move_us: int | None
) -> str | None:
    """Why a move cannot take effect at *effective_from_us*, or None if it can."""
    if effective_from_us % MOVE_ALIGNMENT_US:
        return "must be on a 15-minute boundary (UTC), so no window spans two regions"
    earliest = earliest_move_us(now_us, max_future_skew_s)
    if effective_from_us < earliest:
        return (
            f"must not be before {_utc_text(earliest)}: readings up to {max_future_skew_s} s "
            "ahead of now may already be accepted in the current region"
        )
    if last_move_us is not None and effective_from_us <= last_move_us:
        return "must be after the meter's latest move"
    return None


def _utc_text(ts_us: int) -> str:
    return from_epoch_us(ts_us).isoformat().replace("+00:00", "Z")
