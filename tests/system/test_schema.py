"""The OpenAPI document against the real service: schemathesis over real HTTP.

Every operation is generated from the schema (valid and invalid requests), sent to
uvicorn, and each answer is checked: no 5xx, a status and body the schema declares,
valid requests accepted and invalid ones refused. The admin routes run with the bearer
token and without it. Examples per operation are bounded so the suite stays fast;
``RECSVC_SCHEMA_EXAMPLES`` raises them for a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from recsvc.config import Settings
from tests.conftest import uvicorn_server
from training.publish import ModelPayload, Publisher

TOKEN = "schema-test-admin-token-0123456789"
EXAMPLES = int(os.environ.get("RECSVC_SCHEMA_EXAMPLES", "25"))


@pytest.fixture
def service_url(
    settings: Settings, publisher: Publisher, shop_model: ModelPayload
) -> Iterator[str]:
    publisher.publish(shop_model)
    with uvicorn_server(settings.model_copy(update={"admin_token": SecretStr(TOKEN)})) as url:
        yield url


def fuzz(url: str, path_regex: str, headers: dict[str, str]) -> dict[str, int]:
    """Every matching operation, valid then invalid requests; returns cases per mode.

    A failing check raises with schemathesis's report of the case (and a curl line)."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=CONFIG).include(
        path_regex=path_regex
    )
    cases = {"operations": 0, "positive": 0, "negative": 0}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        cases["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run(operation.as_strategy(generation_mode=mode), mode.value, cases, headers)
    return cases


def run(
    strategy: SearchStrategy[Case[Any]], mode: str, cases: dict[str, int], headers: dict[str, str]
) -> None:
    @given(case=strategy)
    @LIMITS
    def check(case: Case[Any]) -> None:
        cases[mode] += 1
        case.call_and_validate(headers=headers)

    try:
        check()
    except Unsatisfiable:
        # No parameters or body to violate (``/healthz``): there is no invalid request.
        assert mode == GenerationMode.NEGATIVE.value


CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # 413 refuses too: a body over RECSVC_MAX_BODY_BYTES is refused before it is read.
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 413, 422],
            }
        }
    }
)
LIMITS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def test_every_operation_conforms_with_the_token(service_url: str) -> None:
    cases = fuzz(service_url, ".*", {"Authorization": f"Bearer {TOKEN}"})
    print(f"schemathesis cases: {cases}")
    assert cases["operations"] >= 12


def test_admin_operations_conform_without_a_token(service_url: str) -> None:
    cases = fuzz(service_url, "^/v1/admin/", {})
    assert cases["operations"] == 7  # stock (2), catalog (3), erasure, audit


INGEST = "schema-test-ingest-token-0123456789"


def test_the_order_event_operation_conforms_with_the_ingest_token(
    settings: Settings, publisher: Publisher, shop_model: ModelPayload
) -> None:
    """Valid and invalid order events with the ingest token: each invalid one refused
    (duplicate keys, integer dates, control characters in ids among what is generated)."""
    publisher.publish(shop_model)
    with uvicorn_server(settings.model_copy(update={"ingest_token": SecretStr(INGEST)})) as url:
        cases = fuzz(url, "^/v1/events/", {"Authorization": f"Bearer {INGEST}"})
    print(f"schemathesis cases on the events endpoint: {cases}")
    assert cases["operations"] == 1 and cases["negative"] > 0
