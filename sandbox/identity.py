"""A fake App Service managed identity endpoint (`/msi/token`, api-version 2019-08-01): any resource gets
a made-up bearer token, which the sandbox's payments endpoints accept like any other."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Handler

IDENTITY_PATH = "/msi/token"
SANDBOX_TOKEN_HEADER = "sandbox-identity-header-not-a-secret"  # noqa: S105 - a public test fixture
SANDBOX_CLIENT_ID = "7f3e2d1c-0b9a-4876-a5d4-c3b2a1f0e9d8"  # reported when the caller names no client_id


def serve_token_request(h: Handler, query: dict[str, list[str]], issue_token: Callable[[str], str]) -> None:
    """Answer one token request the way App Service does; `issue_token` makes (and records) a token
    for the identity named by its client id."""

    def fail(status: int, error: str, description: str) -> None:
        h.send_json(status, {"error": error, "error_description": description})

    if h.command != "GET":
        fail(405, "invalid_request", "Only GET is supported.")
        return
    if h.headers.get("X-IDENTITY-HEADER") != SANDBOX_TOKEN_HEADER:
        fail(401, "unauthorized_client", "The X-IDENTITY-HEADER header is missing or wrong.")
        return
    if query.get("api-version", [""])[0] != "2019-08-01":
        fail(400, "invalid_request", "api-version must be 2019-08-01.")
        return
    resource = query.get("resource", [""])[0]
    if not resource:
        fail(400, "invalid_request", "The 'resource' query parameter is required.")
        return
    client_id = query.get("client_id", [""])[0] or SANDBOX_CLIENT_ID
    token = issue_token(client_id)
    h.send_json(
        200,
        {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        },
    )
