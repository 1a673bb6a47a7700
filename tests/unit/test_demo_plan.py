"""The demo customers own meters the default simulator really sends readings for."""

from __future__ import annotations

import random

from segs.domain.accounts import password_problems
from segs.services.grid.demo import DEMO_ACCOUNTS
from segs.web.cli import new_demo_password
from simulator.meters import REGIONS
from simulator.meters import build_fleet
from simulator.runner import Settings as RunSettings


def test_each_demo_meter_is_in_its_owners_region_in_the_default_fleet() -> None:
    defaults = RunSettings()
    assert defaults.regions == REGIONS
    fleet = build_fleet(defaults.meters, defaults.regions, random.Random(1))
    region_of = dict(zip(fleet.meter_ids, fleet.regions, strict=True))
    planned = [(meter, plan.region) for plan in DEMO_ACCOUNTS for meter in plan.meter_ids]
    assert len(planned) == 6
    for meter_id, region in planned:
        assert region_of[meter_id] == region, meter_id


def test_demo_accounts_cover_every_role_once_per_staff_role() -> None:
    roles = [plan.role for plan in DEMO_ACCOUNTS]
    assert roles == ["ADMIN", "OPERATOR", "USER", "USER", "USER"]
    assert len({plan.email for plan in DEMO_ACCOUNTS}) == len(DEMO_ACCOUNTS)
    assert all(plan.meter_ids == () for plan in DEMO_ACCOUNTS if plan.role != "USER")


def test_the_passwords_the_cli_generates_meet_the_rule_and_differ() -> None:
    generated = [new_demo_password() for _ in range(200)]
    assert all(
        password_problems(password, "demo.admin@example.com") == [] for password in generated
    )
    assert len(set(generated)) == 200
