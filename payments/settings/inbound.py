"""Who may call: Entra ID callers (tenant, audiences, applications, role) and Standard Webhooks senders
with their secrets (Key Vault references in Azure)."""

import base64
import binascii
import os
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from .common import SENDER, is_loopback_url, names


class InboundSettings:
    """The settings of the HTTP routes' callers: a part of `Settings`, whose fields pydantic collects from
    it (a plain class, so that pydantic builds one model, once, not one per part)."""

    if TYPE_CHECKING:
        _sender_secrets: dict[str, list[bytes]]  # Settings' private attribute, filled as it is validated

    inbound_auth: Literal["entra", "none"] = Field(
        "entra",
        description="entra: every HTTP call needs a Microsoft Entra ID token of the tenant, for an allowed "
        "audience, with the role (signed webhooks use their own routes); none: no caller check, for local "
        "development only (refused on Azure, where WEBSITE_SITE_NAME is set)",
    )
    auth_tenant_id: str | None = Field(None, description="Tenant whose applications may call the relay")
    auth_audiences: str = Field(
        "",
        description="Comma-separated audiences a caller's token must name: the relay's app registration, "
        "api://<client id> and <client id>",
    )
    auth_client_applications: str = Field(
        "",
        description="Comma-separated client ids of the applications that may call; empty: any application "
        "of the tenant that holds the role",
    )
    auth_role: str = Field(
        "Payments.Submit", min_length=1, description="App role a caller must hold (roles claim)"
    )
    auth_verify_token: bool = Field(
        True,
        description="Verify the bearer token (signature against the tenant's keys, audience, issuer, expiry) "
        "in the relay too: App Service Authentication cannot be relied on alone on Flex Consumption; false "
        "trusts X-MS-CLIENT-PRINCIPAL from the platform",
    )
    auth_authority: str = Field(
        "https://login.microsoftonline.com",
        description="Entra ID authority host: the tenant's signing keys and token issuer live under it",
    )
    webhook_senders: str = Field(
        "",
        description="Comma-separated names of the Standard Webhooks senders; each one's secrets (whsec_..., "
        "space-separated, several while rotating) in PAYMENTS_WEBHOOK_SECRET_<NAME>, a Key Vault reference",
    )
    webhook_tolerance_seconds: int = Field(
        300, ge=1, le=3600, description="How far a signed webhook's timestamp may be from now"
    )
    webhook_table: str = Field(
        "paymentswebhooks",
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$",
        description="Table of the signed deliveries seen, so that a replayed one is refused",
    )
    site_name: str | None = Field(
        None, validation_alias="WEBSITE_SITE_NAME", description="Set by Azure: the app runs in Azure"
    )

    @field_validator("auth_authority")
    @classmethod
    def _check_authority(cls, value: str) -> str:
        parts = urlsplit(value)
        if not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("must be an authority host such as https://login.microsoftonline.com")
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_url(value)):
            raise ValueError("must use https:// (plain http is allowed only on loopback, for tests)")
        return value.rstrip("/")

    @field_validator("webhook_senders")
    @classmethod
    def _check_senders(cls, value: str) -> str:
        for name in names(value):
            if not SENDER.fullmatch(name):
                raise ValueError(
                    f"sender {name!r}: a sender name is 1-32 lower-case letters, digits and hyphens (it is "
                    "part of the sender's URL)"
                )
        return value

    @cached_property
    def audiences(self) -> list[str]:
        return names(self.auth_audiences, lower=False)

    @cached_property
    def client_applications(self) -> set[str]:
        return set(names(self.auth_client_applications))

    @cached_property
    def senders(self) -> list[str]:
        return names(self.webhook_senders)

    def sender_secrets(self, sender: str) -> list[bytes] | None:
        """The secrets a sender signs with (None: no such sender)."""
        return self._sender_secrets.get(sender)

    def entra_problem(self) -> str | None:
        """Why Entra ID callers cannot be checked with these settings (None: they can). Not a start-up
        error: the file drop and the queue keep working while the webhook answers that it is misconfigured."""
        missing = [
            name
            for name, value in (
                ("PAYMENTS_AUTH_TENANT_ID", self.auth_tenant_id),
                ("PAYMENTS_AUTH_AUDIENCES", self.audiences),
            )
            if not value
        ]
        if self.inbound_auth == "entra" and missing:
            return (
                f"PAYMENTS_INBOUND_AUTH=entra needs {' and '.join(missing)}: the tenant whose applications "
                "may call, and the relay's app registration (api://<client id>,<client id>)"
            )
        return None


def secret_env(sender: str) -> str:
    """The app setting holding a sender's secrets: a Key Vault reference in Azure."""
    return "PAYMENTS_WEBHOOK_SECRET_" + sender.upper().replace("-", "_")


def read_sender_secrets(sender: str) -> list[bytes]:
    """A sender's Standard Webhooks secrets (`whsec_` + base64, at least 24 bytes each; several,
    space-separated, while one is rotated). Errors name the setting, never its value."""
    env = secret_env(sender)
    raw = os.environ.get(env, "").split()
    if not raw:
        raise ValueError(
            f"webhook sender {sender!r} has no secret: set {env} to a Key Vault reference, "
            "@Microsoft.KeyVault(VaultName=...;SecretName=...), whose value is whsec_<base64>"
        )
    secrets = []
    if raw[0].startswith("@Microsoft.KeyVault("):
        raise ValueError(
            f"{env}: the Key Vault reference did not resolve; grant the relay's identity Key Vault Secrets "
            "User on the vault (keyVaultReferenceIdentity names it) and check the secret's name"
        )
    for position, text in enumerate(raw, 1):
        try:
            secret = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) < 24:
            raise ValueError(
                f"{env}: secret {position} is not whsec_ followed by base64 of at least 24 bytes"
            )
        secrets.append(secret)
    return secrets
