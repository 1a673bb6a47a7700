"""Property-based fuzzing of the whole OpenAPI surface with schemathesis: no 5xx, ever.

Every documented operation gets generated requests (valid and invalid, per its schemas) from
an admin, the role that reaches the most code. A fresh token per request keeps a fuzzed
logout or password change from locking the rest of the run out.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from schemathesis.checks import not_a_server_error

from segs.web import create_app
from tests.accounts import create_account
from tests.accounts import mint_token
from tests.support import redis_client
from tests.support import reset_state

pytestmark = [pytest.mark.integration, pytest.mark.api]

# Building the app needs no database, so the schema (and one test per operation) is made at
# import; the accounts the requests use are made by the fixture below.
FUZZ_APP = create_app()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", FUZZ_APP)


@pytest.fixture(scope="module")
def accounts(database):
    reset_state()
    admin = create_account(FUZZ_APP, role="ADMIN", region=None)
    customer = create_account(FUZZ_APP, role="USER", region="Pune-West", meters=("MTR-00000001",))
    return {"admin": admin.id, "customer": customer.id}


@pytest.fixture(scope="module")
def admin_id(accounts):
    return accounts["admin"]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_answers_a_server_error(case, admin_id):
    token = mint_token(FUZZ_APP, admin_id, str(uuid.uuid4()))
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
    )


# --------------------------------------------------------------------------- hostile input cases

DEEP_JSON = "[" * 100_000 + "]" * 100_000
SAMPLE_PATH_VALUES = {"int": "1", "uuid": str(uuid.UUID(int=1)), "default": "MTR-00000001"}


def _rules_with(predicate) -> list[tuple[str, str]]:
    return sorted(
        (method, rule.rule)
        for rule in FUZZ_APP.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and predicate(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def _path(rule: str, replace_strings_with: str | None = None) -> str:
    import re

    def value(match) -> str:
        converter = match.group(1) or "default"
        if converter == "default" and replace_strings_with is not None:
            return replace_strings_with
        return SAMPLE_PATH_VALUES.get(converter, "x")

    return re.sub(r"<(?:(\w+):)?\w+>", value, rule)


def _json_body_operations() -> list[tuple[str, str]]:
    spec = FUZZ_APP.test_client().get("/api/v1/openapi.json").get_json()
    with_body = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }
    # The ingestion routes take an ingestion key, not the token sent here, and answer 401 before
    # reading the body: test_ingest_api sends deep JSON to ingestion with a key.
    return [
        (method, rule)
        for method, rule in _rules_with(lambda rule: rule.endpoint.split(".")[0] != "telemetry")
        if (method, _openapi_path(rule)) in with_body
    ]


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


@pytest.fixture
def fresh_limits():
    """The fuzzing above spends the auth routes' rate limits; these cases start afresh."""
    client = redis_client()
    for key in client.scan_iter("*segs:limits*"):
        client.delete(key)


@pytest.mark.parametrize(("method", "rule"), _json_body_operations())
def test_json_nested_100000_deep_is_a_400_on_every_json_route(accounts, fresh_limits, method, rule):
    for caller in ("admin", "customer"):  # customer-only routes refuse the admin first
        token = mint_token(FUZZ_APP, accounts[caller], str(uuid.uuid4()))
        response = FUZZ_APP.test_client().open(
            _path(rule),
            method=method,
            data=DEEP_JSON,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 403:
            break
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "INVALID_JSON"


# The ingestion routes' path parameter is an ingestion key: a malformed one is a 401, also
# refused before any query (tests/integration/test_ingestion_keys.py).
STRING_PARAMETER_ROUTES = _rules_with(
    lambda rule: (
        rule.endpoint.split(".")[0] != "telemetry"
        and any(
            converter.__class__.__name__ in ("UnicodeConverter", "PathConverter")
            for converter in rule._converters.values()
        )
    )
)


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1f", "\x7f", "\u0085"])
@pytest.mark.parametrize(("method", "rule"), STRING_PARAMETER_ROUTES)
def test_control_characters_in_path_parameters_are_a_400_before_any_query(
    admin_id, fresh_limits, method, rule, character
):
    token = mint_token(FUZZ_APP, admin_id, str(uuid.uuid4()))
    response = FUZZ_APP.test_client().open(
        _path(rule, replace_strings_with=f"MTR{character}1"),
        method=method,
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400, (rule, response.get_json())
    assert response.get_json()["error"]["code"] == "INVALID_PATH_PARAMETER"
