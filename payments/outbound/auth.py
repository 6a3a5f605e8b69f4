"""The bearer token the target receives: cached per scope, refreshed before expiry or after a 401."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from typing import Any

from azure.core.credentials import AccessTokenInfo, TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from ..errors import IdentityUnavailable

REFRESH_MARGIN = 300  # seconds before expiry at which a cached token is replaced


class TokenSource:
    """One token per scope, reused until shortly before it expires, refreshed on demand after a 401.

    azure-identity's managed identity credential caches too, but the developer credentials do
    not (Azure CLI starts a process per call), so the relay keeps its own copy.
    """

    def __init__(self, credential: TokenCredential, scope: str):
        self._credential = credential
        self._scope = scope
        self._lock = threading.Lock()
        self._info: AccessTokenInfo | None = None

    def token(self, *, force: bool = False, claims: str | None = None) -> str:
        with self._lock:
            now = time.time()
            info = self._info
            fresh = info is not None and now < (info.refresh_on or info.expires_on - REFRESH_MARGIN)
            if fresh and not force:
                return info.token  # type: ignore[union-attr]
            options: dict[str, Any] = {}
            if force:
                # A claims value makes azure-identity bypass its own cache and fetch a new token.
                options["claims"] = claims or "{}"
            try:
                if hasattr(self._credential, "get_token_info"):
                    info = self._credential.get_token_info(self._scope, options=options or None)  # type: ignore[attr-defined]
                else:  # pragma: no cover - every azure-identity credential has get_token_info today
                    tok = self._credential.get_token(self._scope, claims=options.get("claims"))
                    info = AccessTokenInfo(tok.token, tok.expires_on)
            except ClientAuthenticationError as exc:
                raise IdentityUnavailable(
                    f"no token for {self._scope}: {exc.message.splitlines()[0]}"
                ) from None
            self._info = info
            return info.token


def claims_challenge(headers: Mapping[str, str]) -> str | None:
    """The claims challenge of a 401, if the target sent one (CAE); otherwise None."""
    header = headers.get("WWW-Authenticate", "")
    marker = 'claims="'
    if marker in header:
        start = header.index(marker) + len(marker)
        end = header.find('"', start)
        if end > start:
            raw = header[start:end]
            try:
                return base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
            except ValueError:
                return None
    return None
