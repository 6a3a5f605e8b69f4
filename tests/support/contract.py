"""Every answer the test suite gets from the relay's HTTP functions, recorded, then checked against the
OpenAPI document the relay serves (tests/conftest.py does that once the session ends)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import azure.functions as func

from devtools.invocation import context

from .host import FUNCTIONS


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str


RECORDED: list[Exchange] = []


def invoke(function: str, req: func.HttpRequest, traceparent: str | None = None) -> func.HttpResponse:
    """Call a registered HTTP function as the Python worker does (with the host's trace context), and
    record its answer."""
    resp = FUNCTIONS[function].get_user_function()(req, context=context(function, traceparent))
    # The path as the route template and the route values make it (a hostile value such as "../x" stays
    # one segment, as the host's routing keeps it).
    route = FUNCTIONS[function].get_bindings_dict()["bindings"][0]["route"]
    for name, value in req.route_params.items():
        route = route.replace("{" + name + "}", quote(value, safe=""))
    path = "/api/" + route
    RECORDED.append(
        Exchange(req.method, path, resp.status_code, dict(resp.headers), resp.get_body(), resp.mimetype or "")
    )
    return resp


def violations(document: dict, exchanges: list[Exchange]) -> list[str]:
    """What in `exchanges` the document does not describe (status, headers, body), one line each."""
    import json

    from openapi_core import Config, OpenAPI
    from openapi_core.testing import MockRequest, MockResponse

    # RFC 9457 problem documents are JSON too; openapi-core reads only application/json by itself.
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    api = OpenAPI.from_dict(document, config=config)
    found = []
    for ex in exchanges:
        request = MockRequest("http://127.0.0.1", ex.method.lower(), ex.path)
        response = MockResponse(
            ex.body, status_code=ex.status, content_type=ex.media_type, headers=ex.headers
        )
        try:
            api.validate_response(request, response)
        except Exception as exc:  # the validator's errors, whatever their type: each is a finding
            cause = exc.__cause__ or exc
            found.append(f"{ex.method} {ex.path} -> {ex.status}: {type(exc).__name__}: {cause}"[:600])
    return found
