"""Tariff rules: load bands, the time-of-use grid, overrides, and when a new price is published.

A region's automatic price is ``base x load-band multiplier x time-of-use multiplier``, rounded
to 6 decimals per kWh. An override valid now beats it; when the override ends, pricing falls back
to automatic. A new automatic price is published only when it moves by at least the threshold
from the current one; a switch between override and automatic pricing is always published, and
so is the first measured load after a price set without one (even at the same price).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP
from decimal import Decimal
from zoneinfo import ZoneInfo

PRICE_QUANTUM = Decimal("0.000001")
TOU_PERIODS = {"O": "off_peak", "S": "shoulder", "P": "peak"}
DAY_TYPES = ("weekday", "weekend")


class TariffRuleError(ValueError):
    """A region's pricing settings cannot be used (the message names the setting)."""


def quantize_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LoadBand:
    """From this load percentage upwards (until the next band), prices are multiplied by this."""

    from_percent: Decimal
    multiplier: Decimal


@dataclass(frozen=True)
class TouGrid:
    """One letter per local hour (O/S/P) for weekdays and weekends, and each period's multiplier."""

    weekday: str
    weekend: str
    multipliers: Mapping[str, Decimal]

    def period_at(self, instant: datetime, zone: ZoneInfo) -> str:
        """The period in force at *instant*, read on the region's local clock."""
        local = instant.astimezone(zone)
        hours = self.weekend if local.isoweekday() >= 6 else self.weekday
        return TOU_PERIODS[hours[local.hour]]


@dataclass(frozen=True)
class PricingRules:
    region: str
    timezone: str
    base_price: Decimal
    bands: tuple[LoadBand, ...]
    tou: TouGrid

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_load_bands(raw: Sequence[Mapping[str, object]]) -> tuple[LoadBand, ...]:
    """Bands as stored (``[{"fromPercent": "0", "multiplier": "0.8"}, ...]``), validated."""
    try:
        bands = tuple(
            LoadBand(Decimal(str(item["fromPercent"])), Decimal(str(item["multiplier"])))
            for item in raw
        )
    except (KeyError, TypeError, ArithmeticError) as exc:
        raise TariffRuleError("loadBands: each band needs fromPercent and multiplier") from exc
    if any(not (band.from_percent.is_finite() and band.multiplier.is_finite()) for band in bands):
        raise TariffRuleError("loadBands: fromPercent and multiplier must be numbers")
    if not bands or bands[0].from_percent != 0:
        raise TariffRuleError("loadBands: the first band must start at 0 %")
    if any(b.from_percent <= a.from_percent for a, b in zip(bands, bands[1:], strict=False)):
        raise TariffRuleError("loadBands: fromPercent must increase from band to band")
    if any(band.multiplier <= 0 for band in bands):
        raise TariffRuleError("loadBands: every multiplier must be positive")
    return bands


def parse_tou(schedule: Mapping[str, str], multipliers: Mapping[str, object]) -> TouGrid:
    """The time-of-use grid as stored, validated."""
    for day_type in DAY_TYPES:
        hours = schedule.get(day_type)
        if not isinstance(hours, str) or len(hours) != 24 or set(hours) - set(TOU_PERIODS):
            raise TariffRuleError(f"touSchedule.{day_type}: 24 letters, each O, S or P")
    try:
        parsed = {period: Decimal(str(multipliers[period])) for period in TOU_PERIODS.values()}
    except (KeyError, ArithmeticError) as exc:
        raise TariffRuleError("touMultipliers: off_peak, shoulder and peak are required") from exc
    if any(not value.is_finite() or value <= 0 for value in parsed.values()):
        raise TariffRuleError("touMultipliers: every multiplier must be positive")
    return TouGrid(schedule["weekday"], schedule["weekend"], parsed)


def band_index(bands: Sequence[LoadBand], load_percent: Decimal) -> int:
    """The highest band whose lower edge the load has reached."""
    chosen = 0
    for index, band in enumerate(bands):
        if load_percent >= band.from_percent:
            chosen = index
    return chosen


def band_multiplier(bands: Sequence[LoadBand], load_percent: Decimal) -> Decimal:
    return bands[band_index(bands, load_percent)].multiplier


@dataclass(frozen=True)
class HeldBand:
    """The band the current price was set in, which a falling load leaves only once it is
    *hysteresis* percentage points below the band's lower edge: a load wavering at an edge
    would otherwise change the price at every recalculation."""

    index: int
    hysteresis: Decimal

    @classmethod
    def of(
        cls,
        bands: Sequence[LoadBand],
        multiplier: Decimal | None,
        load_percent: Decimal | None,
        hysteresis: Decimal,
    ) -> HeldBand | None:
        """The band of a price set at *multiplier* for *load_percent*: the highest band with that
        multiplier whose edge lies at most *hysteresis* above the load (it may have been held)."""
        if multiplier is None or load_percent is None:
            return None
        matching = [
            index
            for index, band in enumerate(bands)
            if band.multiplier == multiplier and band.from_percent <= load_percent + hysteresis
        ]
        return cls(matching[-1], hysteresis) if matching else None

    def band_for(self, bands: Sequence[LoadBand], load_percent: Decimal) -> int:
        index = band_index(bands, load_percent)
        if index < self.index and load_percent > bands[self.index].from_percent - self.hysteresis:
            return self.index
        return index


@dataclass(frozen=True)
class Quote:
    """The automatic price at one instant and what it was made of."""

    price: Decimal
    load_percent: Decimal | None
    load_multiplier: Decimal
    tou_period: str


# With no regional load measured yet, the region is priced at the 50-75 % band's x1.0.
NEUTRAL_MULTIPLIER = Decimal("1.0")


def automatic_price(
    rules: PricingRules, load_percent: Decimal | None, at: datetime, held: HeldBand | None = None
) -> Quote:
    """The automatic price at *at* for *load_percent*, staying in the *held* band if the load
    has not fallen far enough below it."""
    if load_percent is None:
        multiplier = NEUTRAL_MULTIPLIER
    elif held is None:
        multiplier = band_multiplier(rules.bands, load_percent)
    else:
        multiplier = rules.bands[held.band_for(rules.bands, load_percent)].multiplier
    period = rules.tou.period_at(at, rules.zone)
    price = quantize_price(rules.base_price * multiplier * rules.tou.multipliers[period])
    return Quote(price, load_percent, multiplier, period)


@dataclass(frozen=True)
class Override:
    id: int
    price: Decimal
    valid_from: datetime
    valid_to: datetime
    reason: str

    def is_valid_at(self, at: datetime) -> bool:
        return self.valid_from <= at < self.valid_to


@dataclass(frozen=True)
class CurrentTariff:
    """The open interval of a region's price history."""

    price: Decimal
    effective_from: datetime
    override_id: int | None
    load_multiplier: Decimal | None
    tou_period: str | None
    # The end of the override this price came from, if it came from one still on record.
    override_valid_to: datetime | None = None
    # An automatic price set while the region had no measured load (the neutral x1.0).
    unmeasured: bool = False
    # The load the current automatic price was set for.
    load_percent: Decimal | None = None


@dataclass(frozen=True)
class PriceChange:
    """A new interval to open in the price history (the current one closes where it starts)."""

    price: Decimal
    effective_from: datetime
    reason: str
    triggered_by: str
    load_percent: Decimal | None
    load_multiplier: Decimal | None
    tou_period: str | None
    override_id: int | None


def moved_enough(previous: Decimal, new: Decimal, threshold: Decimal) -> bool:
    """Has the price moved by at least *threshold* (a fraction, 0.02 = 2 %) of the previous one?"""
    return abs(new - previous) >= previous * threshold


def next_price(
    current: CurrentTariff | None,
    rules: PricingRules,
    load_percent: Decimal | None,
    overrides: Sequence[Override],
    now: datetime,
    threshold: Decimal,
    *,
    band_hysteresis: Decimal = Decimal(0),
) -> PriceChange | None:
    """The change to publish at *now*, or None when the current price stands. A falling load
    leaves the current price's band only *band_hysteresis* points below its edge (HeldBand)."""
    override = next((item for item in overrides if item.is_valid_at(now)), None)
    if override is not None:
        change = _override_change(current, override, now)
    else:
        change = _automatic_next(current, rules, load_percent, now, threshold, band_hysteresis)
    # History intervals are never empty: a change at the current interval's own start waits.
    if change is not None and current is not None:
        if change.effective_from <= current.effective_from:
            return None
    return change


def _override_change(
    current: CurrentTariff | None, override: Override, now: datetime
) -> PriceChange | None:
    """The change an override in force asks for (None once its price is the current one)."""
    if current is not None and current.override_id == override.id:
        return None
    # Start where the override starts, unless history already runs past that instant.
    start = override.valid_from
    if current is not None and start <= current.effective_from:
        start = now
    return PriceChange(
        override.price,
        start,
        f"override: {override.reason}",
        "override",
        None,
        None,
        None,
        override.id,
    )


def _automatic_next(
    current: CurrentTariff | None,
    rules: PricingRules,
    load_percent: Decimal | None,
    now: datetime,
    threshold: Decimal,
    band_hysteresis: Decimal,
) -> PriceChange | None:
    """The change automatic pricing asks for, with no override in force."""
    held = None
    if current is not None and current.override_id is None:
        held = HeldBand.of(
            rules.bands, current.load_multiplier, current.load_percent, band_hysteresis
        )
    quote = automatic_price(rules, load_percent, now, held)
    if current is not None and current.override_id is not None:
        # Fall back where the override ended, if that is after the current interval began.
        ended = current.override_valid_to
        start = ended if ended is not None and current.effective_from < ended <= now else now
        return _automatic_change(quote, start, "override ended; automatic pricing", "override_end")
    if current is None:
        return _automatic_change(quote, now, "first automatic price", "initial")
    if current.unmeasured and quote.load_percent is not None:
        # The first measured load replaces the assumed one even when the price stays: the
        # 50-75 % band is the same x1.0, and the price would otherwise keep saying
        # "no load data" until it moved by the threshold.
        return _automatic_change(quote, now, f"first measured {_describe(quote)}", "load")
    if not moved_enough(current.price, quote.price, threshold):
        return None
    trigger = "load" if quote.load_multiplier != current.load_multiplier else "time_of_use"
    return _automatic_change(quote, now, _describe(quote), trigger)


def _describe(quote: Quote) -> str:
    load = "no load data" if quote.load_percent is None else f"load {quote.load_percent}%"
    return f"{load}: band x{quote.load_multiplier}, {quote.tou_period}"


def _automatic_change(quote: Quote, start: datetime, reason: str, trigger: str) -> PriceChange:
    if trigger in ("initial", "override_end"):
        reason = f"{reason} ({_describe(quote)})"
    return PriceChange(
        quote.price,
        start,
        reason,
        trigger,
        quote.load_percent,
        quote.load_multiplier,
        quote.tou_period,
        None,
    )
