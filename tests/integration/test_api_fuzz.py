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
from tests.support import reset_state

pytestmark = [pytest.mark.integration, pytest.mark.api]

# Building the app needs no database, so the schema (and one test per operation) is made at
# import; the accounts the requests use are made by the fixture below.
FUZZ_APP = create_app()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", FUZZ_APP)


@pytest.fixture(scope="module")
def admin_id(database):
    reset_state()
    admin = create_account(FUZZ_APP, role="ADMIN", region=None)
    create_account(FUZZ_APP, role="USER", region="Pune-West", meters=("MTR-00000001",))
    return admin.id


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
