"""Decode and validate meter readings in the seed's camelCase format (CONTRACT §3).

Numbers are quantised to integer micro-units (1e-6 of the field's unit) as they enter, so that
every later sum, window and invoice is integer arithmetic that agrees exactly with PostgreSQL's
NUMERIC(·, 6) columns, whatever order readings arrive in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Annotated
from typing import Any
from typing import TypeVar

import msgspec

from segs.domain.identifiers import ID_RULE
from segs.domain.identifiers import all_valid_ids
from segs.domain.identifiers import is_valid_id

MICRO = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

# No plausibility bound may be set above this: a reading's micro-units then stay below 1e12,
# so a window's sums stay far inside int64 (the packed window layout) whatever the bounds.
HARD_MAX_QUANTITY = 1_000_000.0
TEMPERATURE_RANGE_C = (-273.15, 1000.0)


@dataclass(frozen=True)
class ReadingLimits:
    """The plausibility bounds of one reading (SEGS_MAX_* settings); every minimum is 0."""

    max_power_kw: float = 1_000.0
    max_energy_kwh: float = 100_000.0
    max_voltage_v: float = 1_000.0
    max_current_a: float = 10_000.0
    max_frequency_hz: float = 100.0

    def out_of_range(self) -> list[str]:
        """The names of the bounds that are not above 0 and at most HARD_MAX_QUANTITY."""
        return [
            name
            for name in (
                "max_power_kw",
                "max_energy_kwh",
                "max_voltage_v",
                "max_current_a",
                "max_frequency_hz",
            )
            if not 0 < getattr(self, name) <= HARD_MAX_QUANTITY
        ]


def _bounded(upper: float) -> Any:
    return Annotated[float, msgspec.Meta(ge=0, le=upper)]


REGION_MAX_LENGTH = 64
RegionName = Annotated[str, msgspec.Meta(min_length=1, max_length=REGION_MAX_LENGTH)]


def reading_type(limits: ReadingLimits) -> type[msgspec.Struct]:
    """The msgspec type of one reading under *limits*: msgspec checks every bound in C.

    Unknown fields (userId, seq, status, metadata...) are accepted and ignored.
    """
    optional = None
    return msgspec.defstruct(
        "ReadingIn",
        [
            # Checked against the id rule after decoding, for the whole batch at once.
            ("reading_id", str),
            ("meter_id", str),
            ("region", RegionName),
            ("timestamp", Annotated[datetime, msgspec.Meta(tz=True)]),
            ("power_kw", _bounded(limits.max_power_kw)),
            ("energy_kwh", _bounded(limits.max_energy_kwh) | None, optional),
            ("voltage", _bounded(limits.max_voltage_v) | None, optional),
            ("current", _bounded(limits.max_current_a) | None, optional),
            ("frequency", _bounded(limits.max_frequency_hz) | None, optional),
            ("power_factor", Annotated[float, msgspec.Meta(ge=0, le=1)] | None, optional),
            (
                "temperature",
                Annotated[
                    float,
                    msgspec.Meta(ge=TEMPERATURE_RANGE_C[0], le=TEMPERATURE_RANGE_C[1]),
                ]
                | None,
                optional,
            ),
        ],
        rename="camel",
    )


@dataclass(frozen=True, slots=True)
class ReadingError:
    """Why one reading of a batch was rejected."""

    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


# A validated reading as it travels to the workers: a plain list keeps task messages small.
# [meter_id, region, reading_id, ts_us, power, energy, voltage, current, frequency,
#  power_factor, temperature]; numbers in micro-units, absent optionals as None.
ReadingRow = list[Any]

ROW_METER, ROW_REGION, ROW_READING_ID, ROW_TS = 0, 1, 2, 3
ROW_POWER, ROW_ENERGY, ROW_VOLTAGE = 4, 5, 6

_Decoded = TypeVar("_Decoded")
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_raw_decoder = msgspec.json.Decoder(msgspec.Raw)

_MISSING = re.compile(r"missing required field `(?P<field>[^`]+)`")
_AT_PATH = re.compile(r"^(?P<reason>.*) - at `\$\.(?P<field>[A-Za-z0-9_]+)")
_TOO_DEEP = "JSON nests too deeply"


class BodyShapeError(ValueError):
    """The request body is not JSON, or not an object/array of the expected shape."""


def micro(value: float) -> int:
    """Quantise a number to integer micro-units (6 decimal places, half away from zero)."""
    scaled = value * MICRO
    return int(scaled + 0.5) if scaled >= 0 else -int(-scaled + 0.5)


def to_epoch_us(moment: datetime) -> int:
    """Return the exact number of microseconds since the Unix epoch."""
    return (moment - EPOCH) // ONE_MICROSECOND


def from_epoch_us(ts_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=ts_us)


def describe_validation_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Turn msgspec's message into (field, reason) with the camelCase field name."""
    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        return missing.group("field"), "is required"
    at_path = _AT_PATH.match(text)
    if at_path:
        return at_path.group("field"), at_path.group("reason")
    return "reading", text


def split_batch(body: bytes, *, max_items: int) -> list[msgspec.Raw]:
    """Split a JSON array body into raw items without validating them yet.

    :raises BodyShapeError: the body is not a JSON array.
    :raises BatchTooLargeError: the array holds more than *max_items* readings.
    """
    items = _decoded(_raw_list_decoder, body, "a JSON array of readings")
    _check_count(len(items), max_items)
    return items


def _decoded(decoder: msgspec.json.Decoder[_Decoded], body: bytes, shape: str) -> _Decoded:
    """Decode *body*; one that is malformed or nested too deeply is not *shape*."""
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BodyShapeError(f"body must be {shape}: {exc}") from exc
    except RecursionError as exc:
        raise BodyShapeError(f"body must be {shape}: {_TOO_DEEP}") from exc


def _check_count(count: int, max_items: int) -> None:
    if not count:
        raise BodyShapeError(f"body must hold between 1 and {max_items} readings")
    if count > max_items:
        raise BatchTooLargeError(f"a batch holds at most {max_items} readings, got {count}")


class BatchTooLargeError(ValueError):
    """More readings than one batch may hold."""


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A request's readings: the valid ones with their index in the request, and the errors."""

    readings: list[tuple[int, Any]]
    errors: list[ReadingError]
    size: int


def single_as_batch(body: bytes) -> list[msgspec.Raw]:
    """Wrap a one-reading body (a JSON object) as a batch of one.

    :raises BodyShapeError: the body is not a JSON object.
    """
    raw = _decoded(_raw_decoder, body, "a JSON object")
    if not bytes(raw).lstrip().startswith(b"{"):
        raise BodyShapeError("body must be a JSON object holding one reading")
    return [raw]


class ReadingCodec:
    """Decodes request bodies into readings checked against one set of :class:`ReadingLimits`."""

    def __init__(self, limits: ReadingLimits, *, max_items: int) -> None:
        self.limits = limits
        self.max_items = max_items
        self.item_type = reading_type(limits)
        self._item_decoder = msgspec.json.Decoder(self.item_type)
        self._batch_decoder = msgspec.json.Decoder(list.__class_getitem__(self.item_type))

    def decode_batch(self, body: bytes) -> DecodedBatch:
        """Decode a JSON array body of readings; one error per bad reading.

        :raises BodyShapeError: the body is not a JSON array (of any nesting depth).
        :raises BatchTooLargeError: the array holds more than ``max_items`` readings.
        """
        try:
            # One call for the whole array: the usual, all-valid batch costs a third less than
            # decoding item by item.
            readings = self._batch_decoder.decode(body)
        except (msgspec.MsgspecError, RecursionError):
            # Some reading is invalid, or the body is not an array: judge each item on its own.
            items = split_batch(body, max_items=self.max_items)
            valid, errors = self.decode_items(items)
            return DecodedBatch(valid, errors, len(items))
        _check_count(len(readings), self.max_items)
        id_errors: list[ReadingError] = []
        valid_ids = _with_valid_ids(list(enumerate(readings)), id_errors)
        return DecodedBatch(valid_ids, id_errors, len(readings))

    def decode_single(self, body: bytes) -> DecodedBatch:
        """Decode a one-reading body (a JSON object) as a batch of one.

        :raises BodyShapeError: the body is not a JSON object.
        """
        valid, errors = self.decode_items(single_as_batch(body))
        return DecodedBatch(valid, errors, 1)

    def decode_items(
        self, items: list[msgspec.Raw]
    ) -> tuple[list[tuple[int, Any]], list[ReadingError]]:
        """Validate each raw item, keeping its index; one error per bad reading."""
        valid: list[tuple[int, Any]] = []
        errors: list[ReadingError] = []
        for index, raw in enumerate(items):
            try:
                valid.append((index, self._item_decoder.decode(raw)))
            except msgspec.ValidationError as exc:
                field, reason = describe_validation_error(exc)
                errors.append(ReadingError(index, field, reason))
            except RecursionError:
                errors.append(ReadingError(index, "reading", _TOO_DEEP))
        valid = _with_valid_ids(valid, errors)
        errors.sort(key=lambda error: error.index)
        return valid, errors


def _with_valid_ids(
    readings: list[tuple[int, Any]], errors: list[ReadingError]
) -> list[tuple[int, Any]]:
    """The readings whose reading id and meter id follow the id rule; an error for each other."""
    ids = [reading.reading_id for _, reading in readings]
    ids.extend(reading.meter_id for _, reading in readings)
    if all_valid_ids(ids):
        return readings
    kept = []
    for index, reading in readings:
        if not is_valid_id(reading.reading_id):
            errors.append(ReadingError(index, "readingId", ID_RULE))
        elif not is_valid_id(reading.meter_id):
            errors.append(ReadingError(index, "meterId", ID_RULE))
        else:
            kept.append((index, reading))
    return kept


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The accepted event-time range of readings, as epoch microseconds."""

    oldest_us: int
    newest_us: int
    max_age_s: int
    max_skew_s: int

    @classmethod
    def around(cls, now: datetime, *, max_age_s: int, max_skew_s: int) -> TimeBounds:
        now_us = to_epoch_us(now)
        return cls(
            oldest_us=now_us - max_age_s * MICRO,
            newest_us=now_us + max_skew_s * MICRO,
            max_age_s=max_age_s,
            max_skew_s=max_skew_s,
        )


def to_row(reading: Any) -> ReadingRow:
    """Quantise a validated reading into the compact row the workers receive."""
    # Written out rather than calling micro() per field: this runs for every reading and the
    # calls were a tenth of the API's CPU per request. Only temperature may be negative.
    energy = reading.energy_kwh
    voltage = reading.voltage
    current = reading.current
    frequency = reading.frequency
    power_factor = reading.power_factor
    temperature = reading.temperature
    return [
        reading.meter_id,
        reading.region,
        reading.reading_id,
        (reading.timestamp - EPOCH) // ONE_MICROSECOND,
        int(reading.power_kw * MICRO + 0.5),  # validated >= 0
        None if energy is None else int(energy * MICRO + 0.5),
        None if voltage is None else int(voltage * MICRO + 0.5),
        None if current is None else int(current * MICRO + 0.5),
        None if frequency is None else int(frequency * MICRO + 0.5),
        None if power_factor is None else int(power_factor * MICRO + 0.5),
        None if temperature is None else micro(temperature),
    ]


def check_row(
    index: int, row: ReadingRow, *, known_regions: frozenset[str], bounds: TimeBounds
) -> ReadingError | None:
    """Apply the rules a schema cannot express: a known region and a timestamp in range."""
    if row[ROW_REGION] not in known_regions:
        return ReadingError(index, "region", f"unknown region {row[ROW_REGION]!r}")
    ts_us = row[ROW_TS]
    if ts_us > bounds.newest_us:
        return ReadingError(index, "timestamp", f"is more than {bounds.max_skew_s} s in the future")
    if ts_us < bounds.oldest_us:
        return ReadingError(
            index, "timestamp", f"is older than the maximum age of {bounds.max_age_s} s"
        )
    return None


def first_of_each_key(rows: list[ReadingRow]) -> list[ReadingRow]:
    """Keep the first reading of each (meter, instant); later ones in the same batch repeat it."""
    seen: set[tuple[str, int]] = set()
    unique: list[ReadingRow] = []
    for row in rows:
        key = (row[ROW_METER], row[ROW_TS])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique
