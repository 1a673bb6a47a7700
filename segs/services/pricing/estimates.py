"""Cost estimates: what a number of kWh would cost at the current price.

An estimate is priced and taxed by the invoice's own arithmetic
(``segs.domain.billing.compute_invoice``), rounded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from segs.domain.billing import EnergyUse
from segs.domain.billing import compute_invoice
from segs.services.pricing.price_cache import CurrentPrice


@dataclass(frozen=True)
class CostEstimate:
    region: str
    kwh: Decimal
    price_per_kwh: Decimal
    energy_minor: int
    tax_rate: Decimal
    tax_minor: int
    total_minor: int


def estimate_cost(price: CurrentPrice, kwh: Decimal, tax_rate: Decimal) -> CostEstimate:
    """What *kwh* would cost at the current price, billed the way an invoice line is."""
    amounts = compute_invoice(
        [EnergyUse(price.tariff_id, "current", price.price_per_kwh, kwh, price.effective_from)],
        None,
        None,
        tax_rate,
    )
    return CostEstimate(
        price.region,
        kwh,
        price.price_per_kwh,
        amounts.energy_minor,
        tax_rate,
        amounts.tax_minor,
        amounts.total_minor,
    )
