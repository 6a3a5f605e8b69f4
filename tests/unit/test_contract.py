"""The OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), complete (every HTTP function, every
problem type the code can answer), and a checker that does fail on an answer it does not describe (the
session-end check in tests/conftest.py relies on it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from payments.settings import Settings
from payments.webhook.openapi import PROBLEM_TYPES, document
from tests.support.contract import Exchange, violations
from tests.support.host import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
DOC = document(Settings(inbound_auth="none"))
PAYMENTS = "/api/companies/5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01/customerPaymentJournals/9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02/customerPayments"


def test_the_document_is_valid_openapi_3_1():
    assert DOC["openapi"] == "3.1.0"
    validate(DOC)  # openapi-spec-validator: raises on any violation of the OpenAPI 3.1 specification


def test_every_http_function_has_its_operation_with_an_id():
    routes = {
        "/" + f.get_bindings_dict()["bindings"][0]["route"]
        for f in FUNCTIONS.values()
        if f.get_bindings_dict()["bindings"][0]["type"] == "httpTrigger"
    }
    assert routes == set(DOC["paths"])
    ids = [op["operationId"] for path in DOC["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) == 5


def test_every_problem_type_the_code_answers_is_in_the_document():
    sources = sorted((ROOT / "payments" / "webhook").glob("*.py")) + sorted((ROOT / "payments" / "inbound").glob("*.py"))
    text = "\n".join(p.read_text() for p in sources)
    slugs = set(re.findall(r'problem\(\s*\d{3},\s*"([a-z-]+)"', text))
    slugs |= set(re.findall(r'CallerRefused\(\s*\d{3},\s*"([a-z-]+)"', text))
    slugs |= set(re.findall(r'slug="([a-z-]+)"', text))
    slugs |= {"unauthenticated"}  # entra._refused's default
    assert slugs and slugs <= set(PROBLEM_TYPES), sorted(slugs - set(PROBLEM_TYPES))


def test_the_headers_integrators_use_are_described():
    params = DOC["components"]["parameters"]
    assert {"Idempotency-Key", "Prefer"} <= set(params)
    assert {"Retry-After", "client-request-id", "Location", "Preference-Applied"} <= set(
        DOC["components"]["headers"]
    )
    schemes = DOC["components"]["securitySchemes"]
    assert {"entra", "webhookId", "webhookTimestamp", "webhookSignature"} == set(schemes)


@pytest.mark.parametrize(
    ("status", "body", "media"),
    [
        (201, b'{"summary": {"total": 1}, "results": "not a list"}', "application/json"),
        (418, b"{}", "application/json"),
        (
            422,
            b'{"type": "urn:payments-relay:problem:made-up", "title": "t", "status": 422, "detail": "d"}',
            "application/problem+json",
        ),
        (422, b'{"title": "no type", "status": 422, "detail": "d"}', "application/problem+json"),
        (202, b'{"id": "nothex", "status": "running", "summary": {"total": 1}}', "application/json"),
    ],
)
def test_the_checker_fails_on_an_answer_the_document_does_not_describe(status, body, media):
    found = violations(DOC, [Exchange("POST", PAYMENTS, status, {}, body, media)])
    assert len(found) == 1, found


def test_the_checker_passes_a_described_answer():
    body = b'{"type": "urn:payments-relay:problem:validation-failed", "title": "t", "status": 422, "detail": "d"}'
    assert violations(DOC, [Exchange("POST", PAYMENTS, 422, {}, body, "application/problem+json")]) == []
