"""A region's capacity: the kW its load percentage is measured against, set by operators.

The load of a 1-minute or 15-minute regional window is ``100 x total / capacity``; load bands
price on it and overload alerts fire on it. The bounds keep a typing slip from turning every
percentage into nonsense: below 1 kW a handful of households reads as thousands of percent,
and 100,000,000 kW (100 GW) is beyond any distribution region.
"""

from __future__ import annotations

from decimal import Decimal

MIN_CAPACITY_KW = 1
MAX_CAPACITY_KW = 100_000_000
# regions.capacity_kw is numeric(14, 3): a value with more places would be rounded silently.
CAPACITY_PLACES = 3


def capacity_problem(value: Decimal) -> str | None:
    """Why *value* cannot be a region's capacity in kW, or None when it can."""
    if not value.is_finite():
        return "must be a finite number"
    if value < MIN_CAPACITY_KW:
        return f"must be at least {MIN_CAPACITY_KW} kW"
    if value > MAX_CAPACITY_KW:
        return f"must be at most {MAX_CAPACITY_KW} kW"
    if value != value.quantize(Decimal(1).scaleb(-CAPACITY_PLACES)):
        return f"at most {CAPACITY_PLACES} decimal places"
    return None
