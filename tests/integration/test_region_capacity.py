"""Region capacities are operator data: PATCH /api/v1/regions/{region} and
``flask --app segs.web set-region-capacity``, both audited, tried as an attacker would."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest

from tests.accounts import create_account
from tests.support import MICRO
from tests.support import archive_in_process
from tests.support import execute
from tests.support import flush_now
from tests.support import query
from tests.support import reset_state
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGION = "Test-Capacity"
OTHER = "Test-Capacity-2"
URL = f"/api/v1/regions/{REGION}"


@pytest.fixture
def regions(clean_state):
    """Two regions of the tests' own (the seeded ten stay as migrated), at 2,250 kW."""
    for name in (REGION, OTHER):
        execute(
            "INSERT INTO regions (name, timezone, capacity_kw) VALUES (%s, 'Asia/Kolkata', 2250)",
            (name,),
        )
    yield
    reset_state()  # the meters and windows of the regions first
    execute("DELETE FROM regions WHERE name IN (%s, %s)", (REGION, OTHER))


@pytest.fixture
def admin(app, regions):
    return create_account(app, role="ADMIN", region=None)


def capacity(name: str = REGION) -> Decimal:
    return scalar("SELECT capacity_kw FROM regions WHERE name = %s", (name,))


def audit_rows() -> list[tuple]:
    return query(
        "SELECT actor_id, actor_role, action, entity_type, entity_id, details, ip_address "
        "FROM audit_log WHERE action = 'region.capacity' ORDER BY id"
    )


def patch_raw(client, headers, raw: str, url: str = URL):
    return client.patch(url, data=raw, headers={**headers, "Content-Type": "application/json"})


# --------------------------------------------------------------------------- the API


def test_an_admin_sets_a_capacity_and_the_change_is_audited(client, admin):
    changed = client.patch(URL, json={"capacityKw": 4090.909}, headers=admin.headers)

    assert changed.status_code == 200, changed.get_json()
    assert json.loads(changed.get_data(as_text=True), parse_float=Decimal) == {
        "name": REGION,
        "timezone": "Asia/Kolkata",
        "capacityKw": Decimal("4090.909"),
    }
    assert capacity() == Decimal("4090.909")
    assert capacity(OTHER) == Decimal("2250.000")
    assert audit_rows() == [
        (
            admin.id,
            "ADMIN",
            "region.capacity",
            "region",
            REGION,
            {"from": "2250.000", "to": "4090.909"},
            "127.0.0.1",
        )
    ]
    # Setting the value it has is no change, and no audit entry.
    again = client.patch(URL, json={"capacityKw": "4090.9090"}, headers=admin.headers)
    assert again.status_code == 200
    assert len(audit_rows()) == 1
    # A decimal string is as good as a number; every reader sees the new value.
    client.patch(URL, json={"capacityKw": "10000"}, headers=admin.headers)
    shown = client.get(URL, headers=admin.headers).get_json()
    assert shown["capacityKw"] == 10000
    assert [row[5] for row in audit_rows()] == [
        {"from": "2250.000", "to": "4090.909"},
        {"from": "4090.909", "to": "10000.000"},
    ]


def _reading(meter: str, power_kw: int, at: datetime) -> list:
    return [
        meter,
        REGION,
        str(uuid.uuid4()),
        int(at.timestamp() * MICRO),
        power_kw * MICRO,
        *[None] * 6,
    ]


def test_the_next_flushed_window_is_measured_against_the_new_capacity(client, admin):
    """Through the real fold and flush: 1,125 kW of 2,250 is 50 %, of 4,500 kW 25 %; the
    window written before the change keeps its own capacity and load."""
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    second = first + timedelta(minutes=1)
    archive_in_process([_reading("cap-1", 1125, first + timedelta(seconds=5))])
    flush_now()
    client.patch(URL, json={"capacityKw": 4500}, headers=admin.headers)
    archive_in_process([_reading("cap-1", 1125, second + timedelta(seconds=5))])
    flush_now()

    assert query(
        "SELECT window_start, capacity_kw, load_percentage FROM regional_aggregates_1m "
        "WHERE region = %s ORDER BY window_start",
        (REGION,),
    ) == [
        (first, Decimal("2250.000"), Decimal("50.0000")),
        (second, Decimal("4500.000"), Decimal("25.0000")),
    ]


def test_only_an_admin_may_set_a_capacity(app, client, regions):
    customer = create_account(app, region=REGION)
    operator = create_account(app, role="OPERATOR", region=None)
    body = {"capacityKw": 9999}
    assert client.patch(URL, json=body).status_code == 401
    for account in (customer, operator):
        refused = client.patch(URL, json=body, headers=account.headers)
        assert refused.status_code == 403
        assert refused.get_json()["error"]["code"] == "FORBIDDEN"
    # Everyone signed in may read it.
    assert client.get(URL, headers=customer.headers).get_json()["capacityKw"] == 2250
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


LOW = "must be at least 1 kW"
HIGH = "must be at most 100000000 kW"
NOT_SPECIAL = "Special numeric values (nan or infinity) are not permitted."


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"capacityKw": 0}', LOW),
        ('{"capacityKw": -2250}', LOW),
        ('{"capacityKw": 0.999}', LOW),
        ('{"capacityKw": 100000000.001}', HIGH),
        ('{"capacityKw": 1e12}', HIGH),
        ('{"capacityKw": "1e400"}', HIGH),
        ('{"capacityKw": "-1e400"}', LOW),
        ('{"capacityKw": 1e400}', NOT_SPECIAL),  # parsed as infinity
        ('{"capacityKw": NaN}', NOT_SPECIAL),
        ('{"capacityKw": "NaN"}', NOT_SPECIAL),
        ('{"capacityKw": "-Infinity"}', NOT_SPECIAL),
        ('{"capacityKw": 2250.0001}', "at most 3 decimal places"),
        ('{"capacityKw": "2250.000000000000000000000000000001"}', "at most 3 decimal places"),
        ('{"capacityKw": "2,250"}', "Not a valid number."),
        ('{"capacityKw": "lots"}', "Not a valid number."),
        ('{"capacityKw": ""}', "Not a valid number."),
        ('{"capacityKw": true}', "Not a valid number."),
        ('{"capacityKw": [2250]}', "Not a valid number."),
        ('{"capacityKw": {"kw": 2250}}', "Not a valid number."),
        ('{"capacityKw": null}', "Field may not be null."),
        ("{}", "Missing data for required field."),
        ('{"capacity_kw": 2250}', "Missing data for required field."),
    ],
)
def test_a_bad_capacity_is_a_422_naming_the_field(client, admin, raw, reason):
    refused = patch_raw(client, admin.headers, raw)

    assert refused.status_code == 422, refused.get_data(as_text=True)
    error = refused.get_json()["error"]
    assert (error["code"], error["message"]) == ("VALIDATION_ERROR", "the request is not valid")
    assert error["details"]["json"]["capacityKw"] == [reason]
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


def test_other_fields_and_bodies_of_the_wrong_shape_are_refused(client, admin):
    for raw, details in (
        # Only the capacity is writable: the name and time zone are not.
        (
            '{"capacityKw": 3000, "timezone": "UTC"}',
            {"json": {"timezone": ["Unknown field."]}},
        ),
        ('{"capacityKw": 3000, "name": "Renamed"}', {"json": {"name": ["Unknown field."]}}),
        ("[3000]", {"json": {"_schema": ["Invalid input type."]}}),
        ('"3000"', {"json": {"_schema": ["Invalid input type."]}}),
        ("3000", {"json": {"_schema": ["Invalid input type."]}}),
    ):
        refused = patch_raw(client, admin.headers, raw)
        assert (refused.status_code, refused.get_json()["error"]["details"]) == (422, details)
    # No body at all, or one that is not JSON.
    missing = client.patch(URL, headers=admin.headers)
    assert missing.status_code == 422
    assert missing.get_json()["error"]["details"] == {
        "json": {"capacityKw": ["Missing data for required field."]}
    }
    form = client.patch(URL, data={"capacityKw": "3000"}, headers=admin.headers)
    assert form.status_code == 422
    broken = patch_raw(client, admin.headers, '{"capacityKw": 3000')
    assert (broken.status_code, broken.get_json()["error"]["code"]) == (400, "INVALID_JSON")
    deep = patch_raw(client, admin.headers, "[" * 100_000 + "]" * 100_000)
    assert deep.status_code == 400
    # Python will not read an integer of more than 4,300 digits: invalid JSON, not a 500.
    huge = patch_raw(client, admin.headers, '{"capacityKw": 1' + "0" * 5000 + "}")
    assert (huge.status_code, huge.get_json()["error"]["code"]) == (400, "INVALID_JSON")
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


@pytest.mark.parametrize(
    "name",
    [
        "Nowhere",
        "test-capacity",  # names are exact
        f"{REGION} ",
        f" {REGION}",
        f"{REGION}\u2010",  # a Unicode hyphen
        "Test\u2010Capacity",
        "x" * 5000,
        "Test-Capacity' OR '1'='1",
        "%",
        "*",
        "..",
    ],
)
def test_an_unknown_region_is_a_404_and_no_region_is_created(client, admin, name):
    before = scalar("SELECT count(*) FROM regions")
    response = client.patch(
        f"/api/v1/regions/{quote(name, safe='')}", json={"capacityKw": 3000}, headers=admin.headers
    )

    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "NOT_FOUND"
    assert (
        client.get(f"/api/v1/regions/{quote(name, safe='')}", headers=admin.headers).status_code
        == 404
    )
    assert scalar("SELECT count(*) FROM regions") == before
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


def test_path_tricks_reach_no_region(client, admin):
    # A control character is refused before any query.
    nul = client.patch("/api/v1/regions/Test%00", json={"capacityKw": 3000}, headers=admin.headers)
    assert (nul.status_code, nul.get_json()["error"]["code"]) == (400, "INVALID_PATH_PARAMETER")
    # A slash, encoded or not, is another route, or none.
    for path in (f"/api/v1/regions/x%2F..%2F{REGION}", f"/api/v1/regions/x/../{REGION}/stats"):
        response = client.patch(path, json={"capacityKw": 3000}, headers=admin.headers)
        assert response.status_code in (404, 405)
    # A bad body wins over an unknown region: the body is checked first.
    assert (
        client.patch(
            "/api/v1/regions/Nowhere", json={"capacityKw": -1}, headers=admin.headers
        ).status_code
        == 422
    )
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def runner(app, regions):
    return app.test_cli_runner()


def test_the_cli_sets_capacities_audited_with_no_actor(runner):
    result = runner.invoke(args=["set-region-capacity", REGION, OTHER, "5625.5"])

    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{REGION}: 2250.000 kW -> 5625.500 kW\n{OTHER}: 2250.000 kW -> 5625.500 kW\n"
    )
    assert (capacity(), capacity(OTHER)) == (Decimal("5625.500"), Decimal("5625.500"))
    assert audit_rows() == [
        (
            None,
            None,
            "region.capacity",
            "region",
            name,
            {"from": "2250.000", "to": "5625.500"},
            None,
        )
        for name in (REGION, OTHER)
    ]
    again = runner.invoke(args=["set-region-capacity", REGION, "5625.500"])
    assert (again.exit_code, again.output) == (0, f"{REGION}: already 5625.500 kW, unchanged\n")
    assert len(audit_rows()) == 2


def test_the_cli_changes_nothing_when_one_region_is_unknown(runner):
    result = runner.invoke(args=["set-region-capacity", REGION, "Nowhere", OTHER, "5000"])

    assert result.exit_code == 1
    assert "region Nowhere not found" in result.output
    assert (capacity(), capacity(OTHER)) == (Decimal("2250.000"), Decimal("2250.000"))
    assert audit_rows() == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "must be at least 1 kW"),
        ("-5", "must be at least 1 kW"),
        ("100000001", "must be at most 100000000 kW"),
        ("nan", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        ("12.3456", "at most 3 decimal places"),
        ("lots", "is not a number of kW"),
        ("", "is not a number of kW"),
    ],
)
def test_the_cli_refuses_a_bad_capacity(runner, value, reason):
    result = runner.invoke(args=["set-region-capacity", REGION, value])

    assert result.exit_code == 2, result.output
    assert "Invalid value for 'KW'" in result.output
    assert reason in result.output
    assert capacity() == Decimal("2250.000")
    assert audit_rows() == []


def test_the_cli_help_says_how_to_size_a_region(runner):
    result = runner.invoke(args=["set-region-capacity", "--help"])

    assert result.exit_code == 0
    assert "set-region-capacity [OPTIONS] REGION... KW" in result.output
    assert "40-70 %" in result.output
    assert "Pune-West Mumbai-North Delhi-South Bangalore-East 10000" in result.output
