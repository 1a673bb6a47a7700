"""The scope rules of the three roles (segs.domain.access)."""

from __future__ import annotations

import uuid

import pytest

from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.domain.access import ROLES
from segs.domain.access import STAFF
from segs.domain.access import USER
from segs.domain.access import can_own_meter
from segs.domain.access import can_see_meter

ME = uuid.UUID("00000000-0000-4000-8000-000000000001")
SOMEONE_ELSE = uuid.UUID("00000000-0000-4000-8000-000000000002")


def test_roles_are_the_three_of_the_contract() -> None:
    assert ROLES == ("USER", "OPERATOR", "ADMIN")
    assert STAFF == ("OPERATOR", "ADMIN")


def test_a_user_sees_only_their_own_meters() -> None:
    assert can_see_meter(USER, ME, ME) is True
    assert can_see_meter(USER, ME, SOMEONE_ELSE) is False
    assert can_see_meter(USER, ME, None) is False


@pytest.mark.parametrize("role", [OPERATOR, ADMIN])
@pytest.mark.parametrize("owner", [ME, SOMEONE_ELSE, None])
def test_staff_see_every_meter(role: str, owner: uuid.UUID | None) -> None:
    assert can_see_meter(role, ME, owner) is True


def test_an_unknown_role_sees_only_its_own_meters() -> None:
    assert can_see_meter("user", ME, SOMEONE_ELSE) is False
    assert can_see_meter("admin", ME, None) is False


def test_a_meter_is_owned_only_within_its_region() -> None:
    assert can_own_meter("Pune-West", "Pune-West") is True
    assert can_own_meter("Pune-East", "Pune-West") is False
    assert can_own_meter(None, "Pune-West") is False
    # Region names are exact: no case folding.
    assert can_own_meter("pune-west", "Pune-West") is False
