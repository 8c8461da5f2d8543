"""A bounded schemathesis run against the OpenAPI schema: no input makes the service answer 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from api.app import create_app
from api.services import Services


@pytest.fixture(scope="module")
def api_schema(service: Services):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service.settings, service))


@pytest.mark.slow
def test_no_input_gives_a_server_error(api_schema) -> None:
    """Every operation, a dozen generated requests each, with an admin and an agent key."""
    from schemathesis.checks import not_a_server_error

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case: schemathesis.Case) -> None:
            for key in ("admin-key-1-0123456789abcdef", "agent-key-1-0123456789abcdef"):
                case.call_and_validate(headers={"X-API-Key": key}, checks=[not_a_server_error])

        check()


def test_the_schema_lists_every_endpoint(service: Services) -> None:
    paths = create_app(service.settings, service).openapi()["paths"]
    for path in ("/v1/route", "/v1/cases", "/v1/cases/{case_id}", "/v1/cases/{case_id}/similar",
                 "/v1/cases/{case_id}/label", "/v1/hotspots", "/v1/episodes", "/v1/events", "/v1/forecast", "/v1/reports/hotspots",
                 "/v1/models", "/v1/models/train", "/v1/models/{version}/promote", "/v1/models/rollback",
                 "/health", "/metrics", "/open311/v2/services.{fmt}", "/open311/v2/requests.{fmt}",
                 "/open311/v2/requests/{request_id}.{fmt}", "/open311/v2/services/{code}.{fmt}",
                 "/open311/discovery.{fmt}"):
        assert path in paths, path


def test_stateful_runs_create_label_get_find_no_server_error(api_schema) -> None:
    """Sequences that follow the schema's links (create → label → get, history, changes, similar) with
    schemathesis' generated (often hostile) bodies: no 5xx anywhere. As an admin, so that every link is
    followable (the roles have their own matrix in test_api_access)."""
    from schemathesis.checks import not_a_server_error

    from tests.api_support import ADMIN_KEY

    calls: list[str] = []

    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict:
            calls.append(f"{case.method} {case.path}")
            return {"headers": {"X-API-Key": ADMIN_KEY}}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(response, checks=[not_a_server_error], transport_kwargs=kwargs)

    # Generation only: the service's state changes with every call, so replaying a sequence to shrink it
    # cannot draw the same rules again (hypothesis would call that flaky); a failure still names its calls.
    Workflow.run(settings=settings(max_examples=25, stateful_step_count=6, deadline=None, derandomize=True,
                                   phases=[Phase.generate], suppress_health_check=list(HealthCheck), database=None))
    # Links were followed: a created case was labelled and read back by id (itself, its labels or its changes).
    assert len(calls) >= 50 and "POST /v1/cases/{case_id}/label" in calls
    assert any(c.startswith("GET /v1/cases/{case_id}") and not c.endswith("/similar") for c in calls), sorted(set(calls))
