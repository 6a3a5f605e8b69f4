"""The relay's HTTP contract as an OpenAPI 3.1 document, served at GET /api/openapi.json.

Built from the same constants the webhook answers with, and filled in with this deployment's tenant and
audience, so an integration engineer imports exactly what this relay takes. The test suite validates the
document and checks every answer its tests receive against it.

Longer than 400 lines: it is one document, mostly data, read top to bottom as the contract is.
"""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from .contract import (
    ALREADY_HEADER,
    IGNORED_HEADER,
    NEGATED_HEADER,
    OUTCOMES,
    PROBLEM,
    PROBLEM_JSON,
    PROBLEM_TYPES,
)

VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(length: int, about: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "maxLength": length, "description": about}


GUID = {"type": "string", "format": "uuid"}
AMOUNT = {
    "description": "Exact decimal: a JSON number, or a string of digits with an optional sign and '.'; "
    "never rounded (more places than PAYMENTS_AMOUNT_DECIMALS are refused)",
    "oneOf": [{"type": "number"}, {"type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]+)?|\.[0-9]+)$"}],
}

SCHEMAS: dict[str, Any] = {
    "CustomerPayment": {
        "type": "object",
        "description": "A Business Central customerPayment (API v2.0 / Graph financials). Read-only "
        "properties (id, lastModifiedDateTime, journalDisplayName) are ignored and named in the "
        f"{IGNORED_HEADER} header; any other unknown property is an error.",
        "required": ["amount"],
        "properties": {
            "lineNumber": {"type": ["integer", "null"], "minimum": -(2**31), "maximum": 2**31 - 1},
            "customerId": {**GUID, "type": ["string", "null"]},
            "customerNumber": _text(20, "Code[20]; customerId or customerNumber identifies the customer"),
            "contactId": _text(250, "Text[250]"),
            "postingDate": {"type": ["string", "null"], "format": "date"},
            "documentNumber": _text(20, "Code[20]"),
            "externalDocumentNumber": _text(35, "Code[35]"),
            "amount": AMOUNT,
            "appliesToInvoiceId": {**GUID, "type": ["string", "null"]},
            "appliesToInvoiceNumber": _text(20, "Code[20]"),
            "description": _text(100, "Text[100]"),
            "comment": _text(250, "Text[250]"),
            "id": {"description": "read-only: ignored"},
            "lastModifiedDateTime": {"description": "read-only: ignored"},
            "journalDisplayName": {"description": "read-only: ignored"},
            "@odata.type": {"type": "string"},
        },
    },
    "PaymentBatch": {
        "description": "Several payments in one call: an array, or an OData collection",
        "oneOf": [
            {"type": "array", "items": _ref("CustomerPayment")},
            {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"type": "array", "items": _ref("CustomerPayment")},
                    "@odata.context": {"type": "string"},
                },
                "additionalProperties": False,
            },
        ],
    },
    "CreatedPayment": {
        "type": "object",
        "description": "The customerPayment as the target holds it (its id, lineNumber, amount...). For a "
        "payment found already posted (its journal was posted meanwhile) only what the posted entries say: "
        "documentNumber, amount and postedEntries",
        "properties": {
            "id": GUID,
            "documentNumber": {"type": "string"},
            "amount": {"type": ["number", "string"]},
            "postedEntries": {"type": "array"},
        },
        "anyOf": [{"required": ["id"]}, {"required": ["documentNumber", "postedEntries"]}],
    },
    "FieldError": {
        "type": "object",
        "properties": {
            "pointer": {"type": "string", "description": "JSON Pointer (RFC 6901) into the body"},
            "parameter": {"type": "string"},
            "detail": {"type": "string"},
        },
        "required": ["detail"],
    },
    "Summary": {
        "type": "object",
        "required": ["total"],
        "properties": {"total": {"type": "integer"}},
        "additionalProperties": {"type": "integer"},
        "propertyNames": {"enum": ["total", *OUTCOMES]},
    },
    "Result": {
        "type": "object",
        "description": "One payment of a batch, in the order sent",
        "required": ["index", "outcome", "status"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "outcome": {"enum": list(OUTCOMES)},
            "status": {"type": "integer", "description": "the status a single call would have had"},
            "payment": {"oneOf": [_ref("CreatedPayment"), {"type": "null"}]},
            "clientRequestId": {"type": ["string", "null"]},
            "note": {"type": ["string", "null"]},
            "problem": _ref("Problem"),
            "ignoredProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "BatchAnswer": {
        "type": "object",
        "required": ["summary", "results"],
        "properties": {"summary": _ref("Summary"), "results": {"type": "array", "items": _ref("Result")}},
    },
    "Accepted": {
        "type": "object",
        "description": "Accepted and queued; follow statusUrl (the Location header) until completed",
        "required": ["id", "status", "summary"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"const": "running"},
            "summary": _ref("Summary"),
            "statusUrl": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
    "BatchStatus": {
        "type": "object",
        "required": ["id", "status", "summary", "results"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "status": {"enum": ["running", "completed"]},
            "summary": _ref("Summary"),
            "results": {"type": "array", "items": _ref("Result")},
        },
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details. mayExist true: the payment may have been created; do "
        "not send it again until it has been checked at the target",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"enum": [PROBLEM + slug for slug in PROBLEM_TYPES]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": _ref("FieldError"),
                "maxItems": 100,
                "description": "The first 100 problems, in body order",
            },
            "errorCount": {"type": "integer", "minimum": 1, "description": "Problems found"},
            "unchecked": {
                "type": "integer",
                "minimum": 1,
                "description": "Items of the batch not checked: validation stops once 100 problems are found",
            },
            "errorsNotShown": {
                "type": "integer",
                "minimum": 1,
                "description": "Problems beyond the first 100, counted but not listed",
            },
            "clientRequestId": {"type": ["string", "null"]},
            "targetStatus": {"type": ["integer", "null"]},
            "targetCode": {"type": ["string", "null"]},
            "mayExist": {"type": "boolean"},
            "attempted": {"type": "boolean"},
            "ignoredProperties": {"type": "array", "items": {"type": "string"}},
            "summary": _ref("Summary"),
            "results": {"type": "array", "items": _ref("Result")},
        },
    },
}


def _header(about: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": about, "schema": schema or {"type": "string"}}


HEADERS: dict[str, Any] = {
    "Retry-After": _header(
        "Seconds to wait before trying again (or polling)", {"type": "string", "pattern": "^[0-9]+$"}
    ),
    "client-request-id": _header("The id of the relay's request to the target, for support cases"),
    "Location": _header("The batch's status URL"),
    "Preference-Applied": _header("respond-async when the Prefer header was honoured"),
    "Idempotent-Replayed": _header("true: answered from an earlier call with this Idempotency-Key"),
    ALREADY_HEADER: _header("true: the same payment was posted before; it was not posted again"),
    IGNORED_HEADER: _header("Read-only properties that were in the body and were ignored"),
    NEGATED_HEADER: _header("true: amounts are written as money received and were negated"),
    "WWW-Authenticate": _header(
        "How to authenticate (401, 403): RFC 6750's challenge, with error (invalid_token, "
        "invalid_request, insufficient_scope) and error_description when a credential was sent"
    ),
}


def _response(
    about: str, schema: str, media: str = "application/json", headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": about, "content": {media: {"schema": _ref(schema)}}}
    if headers:
        answer["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return answer


def _problem(about: str, *extra: str) -> dict[str, Any]:
    return _response(about, "Problem", PROBLEM_JSON, ("Retry-After", NEGATED_HEADER, *extra))


COMMON_HEADERS = ("client-request-id", IGNORED_HEADER, NEGATED_HEADER)
POST_RESPONSES: dict[str, Any] = {
    "200": _response(
        "A batch whose payments were all posted before (or one such payment)",
        "PostAnswer",
        headers=(ALREADY_HEADER, "Idempotent-Replayed", *COMMON_HEADERS),
    ),
    "201": _response(
        "Created: the payment, or a batch whose payments were all created",
        "PostAnswer",
        headers=("Idempotent-Replayed", *COMMON_HEADERS),
    ),
    "202": _response(
        "Accepted and queued: poll the Location",
        "Accepted",
        headers=("Location", "Retry-After", "Preference-Applied", NEGATED_HEADER),
    ),
    "207": _response(
        "A batch with mixed outcomes: each result says",
        "BatchAnswer",
        headers=("Retry-After", NEGATED_HEADER),
    ),
    "400": _problem("The route, body or Idempotency-Key is malformed"),
    "401": _problem("No credential this route accepts, or an invalid one", "WWW-Authenticate"),
    "403": _problem(
        "The caller is authenticated but lacks the app role or is not allowed", "WWW-Authenticate"
    ),
    "404": _problem("The target does not know the company, journal or customer"),
    "409": _problem("This payment is being posted by another request right now, or the target refused it"),
    "413": _problem("The body is too large: split the batch"),
    "415": _problem("Not application/json in UTF-8"),
    "422": _problem(
        "Invalid payments (nothing was posted), a reused Idempotency-Key, or refused by the target"
    ),
    "500": _problem("The relay is misconfigured or failed unexpectedly"),
    "502": _problem("The outcome is unknown: the payment may exist (mayExist); do not resend it"),
    "503": _problem("The target, the relay's storage, or the key check is unavailable; nothing was created"),
}
STATUS_RESPONSES: dict[str, Any] = {
    "200": _response("The batch's outcomes so far", "BatchStatus", headers=("Retry-After",)),
    "401": POST_RESPONSES["401"],
    "403": POST_RESPONSES["403"],
    "404": _problem("No such batch for this caller"),
    "500": POST_RESPONSES["500"],
    "503": POST_RESPONSES["503"],
}


def _parameters(*names: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/components/parameters/{name}"} for name in names]


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document for this deployment (its tenant and audience in the security scheme)."""
    tenant = settings.auth_tenant_id or "{tenant}"
    audience = settings.audiences[0] if settings.audiences else "api://{relay client id}"
    post_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_ref("CustomerPayment"), _ref("PaymentBatch")]},
            }
        },
    }
    payments_route = "/companies/{companyId}/customerPaymentJournals/{journalId}/customerPayments"
    entra = [{"entra": [f"{audience}/.default"]}]
    signed = [{"webhookId": [], "webhookTimestamp": [], "webhookSignature": []}]
    paths = {
        payments_route: {
            "post": {
                "operationId": "postCustomerPayments",
                "summary": "Post one customer payment, or a batch, exactly once",
                "security": entra,
                "parameters": _parameters("companyId", "journalId", "Idempotency-Key", "Prefer"),
                "requestBody": post_body,
                "responses": POST_RESPONSES,
            }
        },
        "/webhooks/{sender}" + payments_route: {
            "post": {
                "operationId": "postSignedCustomerPayments",
                "summary": "The same, from a Standard Webhooks sender; webhook-id is the idempotency key",
                "security": signed,
                "parameters": _parameters("sender", "companyId", "journalId", "Idempotency-Key", "Prefer"),
                "requestBody": post_body,
                "responses": POST_RESPONSES,
            }
        },
        "/batches/{batchId}": {
            "get": {
                "operationId": "getBatchStatus",
                "summary": "A batch answered 202 Accepted: each payment's outcome (its sender only)",
                "security": entra,
                "parameters": _parameters("batchId"),
                "responses": STATUS_RESPONSES,
            }
        },
        "/webhooks/{sender}/batches/{batchId}": {
            "get": {
                "operationId": "getSignedBatchStatus",
                "summary": "The same for a signed sender: sign the GET over an empty body",
                "security": signed,
                "parameters": _parameters("sender", "batchId"),
                "responses": STATUS_RESPONSES,
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "summary": "This document",
                "security": entra,
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": POST_RESPONSES["401"],
                    "403": POST_RESPONSES["403"],
                    "500": POST_RESPONSES["500"],
                    "503": POST_RESPONSES["503"],
                },
            }
        },
    }

    def path_param(name: str, schema: dict[str, Any], about: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": schema, "description": about}

    def header_param(name: str, about: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "in": "header",
            "required": False,
            "schema": schema or {"type": "string"},
            "description": about,
        }

    parameters = {
        "companyId": path_param("companyId", GUID, "The Business Central company"),
        "journalId": path_param("journalId", GUID, "The customer payment journal (batch)"),
        "sender": path_param(
            "sender",
            {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$"},
            "The signed sender's name",
        ),
        "batchId": path_param(
            "batchId", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "From the 202 answer's Location"
        ),
        "Idempotency-Key": header_param(
            "Idempotency-Key",
            "Posts the payment (each payment of a batch) at most once per key; a retry with the key answers "
            "the first outcome (Idempotent-Replayed)",
            {"type": "string", "minLength": 1, "maxLength": 257},
        ),
        "Prefer": header_param("Prefer", "respond-async: answer 202 at once and post in the background"),
    }
    components = {
        "schemas": {**SCHEMAS, "PostAnswer": {"oneOf": [_ref("CreatedPayment"), _ref("BatchAnswer")]}},
        "headers": HEADERS,
        "parameters": parameters,
        "securitySchemes": {
            "entra": {
                "type": "oauth2",
                "description": "A Microsoft Entra ID application token (client credentials or a managed "
                f"identity) for {audience}, holding the app role {settings.auth_role}",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": f"{settings.auth_authority}/{tenant}/oauth2/v2.0/token",
                        "scopes": {f"{audience}/.default": f"post payments (app role {settings.auth_role})"},
                    }
                },
            },
            "webhookId": {
                "type": "apiKey",
                "in": "header",
                "name": "webhook-id",
                "description": "Standard Webhooks 1.0: the delivery's id, kept by retries",
            },
            "webhookTimestamp": {
                "type": "apiKey",
                "in": "header",
                "name": "webhook-timestamp",
                "description": f"Unix seconds; within {settings.webhook_tolerance_seconds} s of the relay's "
                "clock",
            },
            "webhookSignature": {
                "type": "apiKey",
                "in": "header",
                "name": "webhook-signature",
                "description": "v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}' with the "
                "sender's secret>; several space-separated while a secret is rotated",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payments relay",
            "version": VERSION,
            "description": "Customer payments in, posted exactly once to Business Central's "
            "customerPayments API.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": components,
    }
