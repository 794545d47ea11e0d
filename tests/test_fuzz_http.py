"""Schemathesis against the HTTP API's published OpenAPI schema (bounded, so that it runs in CI): whatever
the generated body, the answer is no 5xx, has a documented status and content type, and matches the schema;
a body the schema allows is answered (or refused with 400 when its question has no words), one it does not
allow is refused with a 4xx. The real chatbot answers (the trained reader, the demo corpus)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatbot.serve.http_api import create_app  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 100  # per operation and mode: about a minute in all
CASES = [("POST /search", "valid"), ("POST /search", "invalid"), ("POST /ask", "valid"), ("POST /ask", "invalid"),
         ("GET /health", "valid")]  # /health takes no input, so none can break its schema
MODES = {"valid": GenerationMode.POSITIVE, "invalid": GenerationMode.NEGATIVE}


@pytest.fixture(scope="module")
def api_schema(real_bot, local_servers):
    base_url = local_servers.http(create_app(real_bot))
    return schemathesis.openapi.from_url(base_url + "/openapi.json")


@pytest.mark.parametrize("operation, mode", CASES)
def test_the_http_api_never_fails_whatever_the_body(api_schema, operation, mode):
    method, path = operation.split()

    @given(case=api_schema[path][method].as_strategy(generation_mode=MODES[mode]))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call_and_validate(checks=CHECKS, timeout=120)
        # Valid bodies are answered, or refused (400) when the question has no words; others are refused (4xx).
        expected = {200, 400} if mode == "valid" else set(range(400, 500))
        assert response.status_code in expected, (case.body, response.status_code, response.text[:300])

    fuzz()
