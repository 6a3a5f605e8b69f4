"""A loopback stand-in for Microsoft Entra ID's side of inbound authentication: the tenant's published
signing keys (the JWKS the relay fetches) and application tokens signed with them, as Entra ID issues
them to a managed identity or a client-credentials app (v2.0: `azp`; v1.0: `appid`)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "6e0c4b3a-5d2f-4c1e-9a8b-7f6e5d4c3b2a"
OTHER_TENANT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
RELAY_APP = "3c9d2a71-8e4b-4f06-b5d1-2a7c9e0f6b48"  # the relay's app registration (the audience)
CALLER_APP = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # a calling application (e.g. a managed identity)
OTHER_APP = "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
ROLE = "Payments.Submit"


class Entra:
    """The keys endpoint on 127.0.0.1 and a token factory. `down`: the endpoint answers 503."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not published
        self.kid = "relay-test-key"
        self.down = False
        self.fetches = 0
        self.jwks = self._publish([(self.kid, self.key)])
        entra = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entra.fetches += 1
                ok = self.path.endswith("/discovery/v2.0/keys") and not entra.down
                body = entra.jwks if ok else b"{}"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.authority = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _publish(keys: list[tuple[str, rsa.RSAPrivateKey]]) -> bytes:
        published = []
        for kid, key in keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return json.dumps({"keys": published}).encode()

    def roll(self) -> None:
        """Entra ID rolls its keys: a new signing key is published (the old one stays listed) and signs
        from now on."""
        new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks = self._publish([(self.kid, self.key), ("rolled-key", new)])
        self.key, self.kid = new, "rolled-key"

    def withdraw(self) -> tuple[rsa.RSAPrivateKey, str]:
        """An emergency rollover: the signing key is withdrawn from the published set (only a new one is
        listed) and the new one signs from now on. Returns the withdrawn key and its id, so a test can
        sign with it as whoever holds it could."""
        withdrawn = (self.key, self.kid)
        new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key, self.kid = new, f"key-{uuid.uuid4().hex[:8]}"
        self.jwks = self._publish([(self.kid, new)])
        return withdrawn

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(
        self,
        *,
        tenant: str = TENANT,
        audience: str = f"api://{RELAY_APP}",
        app: str = CALLER_APP,
        roles: tuple[str, ...] = (ROLE,),
        expires_in: int = 3600,
        version: str = "2.0",
        signed_by: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"{self.authority}/{tenant}/v2.0" if version == "2.0" else f"{self.authority}/{tenant}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + expires_in,
            "tid": tenant,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_OID, app)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_OID, app)),
            "idtyp": "app",
            "ver": version,
            ("azp" if version == "2.0" else "appid"): app,
        }
        if roles:
            claims["roles"] = list(roles)
        return jwt.encode(claims, signed_by or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def bearer(self, **claims) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**claims)}"}


def principal(*, tenant: str = TENANT, app: str = CALLER_APP, roles: tuple[str, ...] = (ROLE,)) -> str:
    """X-MS-CLIENT-PRINCIPAL as App Service Authentication sends it (base64 JSON of typ/val claims)."""
    claims = [
        {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": tenant},
        {"typ": "azp", "val": app},
        *({"typ": "roles", "val": r} for r in roles),
    ]
    data = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(data).encode()).decode()


def entra_settings(entra: Entra, **extra: str) -> dict[str, str]:
    return {
        "PAYMENTS_INBOUND_AUTH": "entra",
        "PAYMENTS_AUTH_TENANT_ID": TENANT,
        "PAYMENTS_AUTH_AUDIENCES": f"{RELAY_APP},api://{RELAY_APP}",
        "PAYMENTS_AUTH_AUTHORITY": entra.authority,
        **extra,
    }
