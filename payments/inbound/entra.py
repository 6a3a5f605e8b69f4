"""Microsoft Entra ID callers: the bearer token, verified here, and App Service Authentication's
`X-MS-CLIENT-PRINCIPAL`.

App Service Authentication validates the token before the app sees the call, but it does not check app
roles, and whether it is enforced on Flex Consumption cannot be relied on (REFERENCE section 6). So with
PAYMENTS_AUTH_VERIFY_TOKEN (the default) the token itself is verified with PyJWT: RS256 signature
against the tenant's published keys, audience, issuer (the tenant, v1 or v2 tokens), expiry; then the
tenant, the application and the role. The principal, when the platform sends one, must agree.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import jwt

from ..errors import CallerRefused
from ..settings import Settings
from .caller import Caller

PRINCIPAL_HEADER = "x-ms-client-principal"
PUBLIC_AUTHORITY = "login.microsoftonline.com"
TENANT_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"
OBJECT_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
ROLE_CLAIM = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
LEEWAY_SECONDS = 60  # clock skew allowed between Entra ID and this host


def _refused(
    title: str,
    detail: str,
    *,
    reason: str = "",
    status: int = 401,
    slug: str = "unauthenticated",
    error: str | None = "invalid_token",
) -> CallerRefused:
    return CallerRefused(status, slug, title, detail, reason=reason, error=error)


def _forbidden(title: str, detail: str, reason: str) -> CallerRefused:
    return _refused(title, detail, reason=reason, status=403, slug="forbidden", error="insufficient_scope")


class TenantKeys(jwt.PyJWKClient):
    """The tenant's signing keys, as the latest fetched key set lists them.

    PyJWT's per-key cache (`cache_keys`) keeps a key after the tenant has withdrawn it (an emergency
    rollover): it is off, so a key id is looked up in the cached set only, and that set is replaced by
    every fetch. The set is fetched when an hour has passed, and when a token names a key id it does not
    list, at most once per `cooldown_duration`, failed fetches included (PyJWT counts only successful
    ones), so neither forged key ids nor an unreachable authority make calls fetch without end."""

    def __init__(self, uri: str, *, lifespan: float = 3600, cooldown: float = 30, timeout: float = 10):
        super().__init__(
            uri, cache_keys=False, lifespan=lifespan, timeout=timeout, cooldown_duration=cooldown
        )
        self._failed_at: float | None = None

    def fetch_data(self) -> Any:
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < self.cooldown_duration:
            raise jwt.PyJWKClientConnectionError("the key set could not be fetched moments ago")
        try:
            data = super().fetch_data()
        except jwt.PyJWKClientConnectionError:
            self._failed_at = now
            raise
        self._failed_at = None
        return data


class EntraVerifier:
    """Admits Entra ID applications of one tenant, for the relay's audiences, holding its role."""

    def __init__(self, settings: Settings):
        self.settings = settings
        tenant = settings.auth_tenant_id
        authority = settings.auth_authority
        self.tenant = tenant
        # v2.0 tokens name the authority; v1.0 tokens (an API whose registration accepts v1, as managed
        # identities usually get) name sts.windows.net for the public cloud.
        v1 = "https://sts.windows.net" if urlsplit(authority).hostname == PUBLIC_AUTHORITY else authority
        self.issuers = {f"{authority}/{tenant}/v2.0", f"{v1}/{tenant}/"}
        self.keys = TenantKeys(f"{authority}/{tenant}/discovery/v2.0/keys")

    def admit(self, headers: Mapping[str, str]) -> Caller:
        """The calling application, or CallerRefused saying what to send."""
        principal = _principal(headers.get(PRINCIPAL_HEADER))
        token = _bearer(headers.get("authorization"))
        if self.settings.auth_verify_token:
            if token is None:
                raise _refused(
                    "A Microsoft Entra ID token is required",
                    "send Authorization: Bearer <token>, a token for the relay's app registration; a "
                    "function key is not accepted",
                    reason="no bearer token",
                    error=None,
                )
            claims = self._verify(token)
        elif principal is not None:
            claims = principal
        else:
            raise _refused(
                "A Microsoft Entra ID token is required",
                "no authenticated principal: call with Authorization: Bearer <token>, a token for the "
                "relay's app registration",
                reason="no principal from App Service Authentication and no token",
                error=None,
            )
        caller = self._authorize(claims)
        if principal is not None and principal is not claims:
            # The platform's view of the same call must be the same application.
            if self._authorize(principal).id != caller.id:
                raise _refused(
                    "Conflicting credentials",
                    "the token and the platform's principal differ",
                    reason=f"token of {caller.id}, principal of another application",
                )
        return caller

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            key = self.keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise _refused(
                "The caller's token cannot be checked right now",
                "the tenant's signing keys could not be fetched; nothing was accepted; try again shortly",
                reason=f"signing keys unavailable: {exc}",
                status=503,
                slug="auth-unavailable",
                error=None,
            ) from None
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise _refused(
                "Invalid token",
                "the bearer token is not a JWT signed with one of the tenant's current keys: get a new "
                "token from Microsoft Entra ID",
                reason=f"token not signed with a listed key: {exc}",
            ) from None
        try:
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.settings.audiences,
                issuer=self.issuers,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused(
                "Token expired", "the bearer token has expired: get a new one", reason="token expired"
            ) from None
        except jwt.InvalidAudienceError:
            raise _refused(
                "Token for another audience",
                "the token is not for this relay: get one for the relay's app registration (the scope "
                "its administrators gave you, ending in /.default)",
                reason=f"token for audience {_unverified(token, 'aud')!r}, not in PAYMENTS_AUTH_AUDIENCES",
            ) from None
        except jwt.InvalidIssuerError:
            raise _refused(
                "Token from another tenant",
                "the token was issued by another tenant than the relay's: get one from the relay's tenant",
                reason=f"token issued by {_unverified(token, 'iss')!r} (tenant "
                f"{_unverified(token, 'tid')!r}), not tenant {self.tenant}",
            ) from None
        except jwt.PyJWTError as exc:
            raise _refused(
                "Invalid token", f"the bearer token was refused: {exc}", reason=f"token refused: {exc}"
            ) from None

    def _authorize(self, claims: Mapping[str, Any]) -> Caller:
        settings = self.settings
        tenant = str(claims.get("tid") or "")
        if tenant != self.tenant:
            raise _refused(
                "Token from another tenant",
                "the caller belongs to another tenant than the relay's",
                reason=f"caller of tenant {tenant or 'unknown'!r}, not tenant {self.tenant}",
            )
        app = str(claims.get("azp") or claims.get("appid") or "").lower()
        if not app:
            raise _refused("No calling application", "the token names no application (azp or appid)")
        allowed = settings.client_applications
        if allowed and app not in allowed:
            raise _forbidden(
                "Application not allowed",
                f"application {app} is not allowed to post payments to this relay: ask its administrators "
                "to allow it",
                reason=f"application {app} is not in PAYMENTS_AUTH_CLIENT_APPLICATIONS",
            )
        roles = claims.get("roles") or []
        if settings.auth_role not in (roles if isinstance(roles, list) else [roles]):
            raise _forbidden(
                "The caller lacks the app role",
                f"application {app} does not hold the app role that allows posting payments: an "
                "administrator of the relay's app registration grants it",
                reason=f"application {app} lacks the app role {settings.auth_role}",
            )
        return Caller("entra", f"app:{app}", tenant=tenant, object_id=str(claims.get("oid") or "") or None)


def _bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unverified(token: str, claim: str) -> str:
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get(claim, ""))
    except jwt.PyJWTError:
        return ""


def _principal(value: str | None) -> dict[str, Any] | None:
    """App Service Authentication's principal (base64 JSON, claims as typ/val pairs) as token claims."""
    if not value:
        return None
    try:
        data = json.loads(base64.b64decode(value, validate=True))
        pairs = [(str(c["typ"]), str(c["val"])) for c in data.get("claims", [])]
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise _refused("Invalid principal", "X-MS-CLIENT-PRINCIPAL is not the platform's principal") from None
    role_type = str(data.get("role_typ") or "roles")
    claims: dict[str, Any] = {"roles": [v for t, v in pairs if t in (role_type, "roles", ROLE_CLAIM)]}
    for typ, val in pairs:
        name = {TENANT_CLAIM: "tid", OBJECT_CLAIM: "oid"}.get(typ, typ)
        if name in ("tid", "oid", "azp", "appid"):
            claims.setdefault(name, val)
    return claims
