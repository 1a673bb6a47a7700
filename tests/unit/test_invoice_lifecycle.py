"""The invoice lifecycle table and its one check (segs.domain.billing)."""

from __future__ import annotations

import pytest

from segs.domain.billing import CANCELLED
from segs.domain.billing import DISPUTED
from segs.domain.billing import INVOICE_STATUSES
from segs.domain.billing import INVOICE_TRANSITIONS
from segs.domain.billing import OVERDUE
from segs.domain.billing import PAID
from segs.domain.billing import RESOLVED
from segs.domain.billing import InvoiceTransitionError
from segs.domain.billing import check_transition
from segs.domain.billing import may_become
from segs.domain.billing import statuses_that_may_become


def test_every_status_has_its_moves_and_they_lead_to_statuses():
    assert set(INVOICE_TRANSITIONS) == set(INVOICE_STATUSES)
    for targets in INVOICE_TRANSITIONS.values():
        assert targets <= set(INVOICE_STATUSES)


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        (PAID, ("pending", "overdue", "resolved")),
        (DISPUTED, ("pending", "overdue")),
        (CANCELLED, ("pending", "overdue", "disputed")),
        (RESOLVED, ("disputed",)),
        (OVERDUE, ("pending",)),
    ],
)
def test_who_may_move_where(target, allowed):
    assert statuses_that_may_become(target) == allowed


def test_paid_and_cancelled_are_final():
    for status in (PAID, CANCELLED):
        assert not any(may_become(status, target) for target in INVOICE_STATUSES)


def test_a_refused_move_names_the_statuses_that_could():
    check_transition("overdue", PAID)
    with pytest.raises(InvoiceTransitionError) as refused:
        check_transition("paid", DISPUTED)
    assert str(refused.value) == "a paid invoice cannot be disputed"
    assert (refused.value.status, refused.value.allowed) == ("paid", ("pending", "overdue"))
