"""Every setting the relay reads, in one place, validated once at start-up.

The Bicep templates set these as app settings, and the infrastructure tests derive the list
of names from this class, so a setting added here without a template change is caught.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GRAPH_BASE_URL = "https://graph.microsoft.com/beta"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BUSINESS_CENTRAL_SCOPE = "https://api.businesscentral.dynamics.com/.default"

Target = Literal["graph", "businesscentral"]


class SettingsError(ValueError):
    """A missing or malformed setting, with a message naming the environment variable."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Relay settings from the environment (`PAYMENTS_*`, plus `AZURE_CLIENT_ID`)."""

    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", case_sensitive=False, extra="ignore")

    target: Target = Field("graph", description="graph or businesscentral")
    api_base_url: str | None = Field(None, description="Target API base URL; required for businesscentral")
    api_scope: str | None = Field(None, description="Token scope; defaults by target")
    credential: Literal["managed", "developer"] = Field(
        "managed",
        description="managed: ManagedIdentityCredential; developer: Azure CLI sign-in, local only",
    )
    azure_client_id: str | None = Field(
        None,
        validation_alias="AZURE_CLIENT_ID",
        description="Client id of the user-assigned managed identity",
    )
    amount_decimals: int = Field(2, ge=0, le=10, description="Maximum decimal places in an amount")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted HTTP request body")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per request, first one included")
    retry_max_seconds: float = Field(60.0, gt=0, le=600, description="Total time budget for retries")
    backoff_base_seconds: float = Field(0.5, gt=0, le=60, description="First backoff step")
    backoff_max_seconds: float = Field(20.0, gt=0, le=300, description="Largest single backoff")
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120, description="TCP connect timeout")
    read_timeout_seconds: float = Field(60.0, gt=0, le=600, description="Wait for the target's answer")

    @field_validator("api_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute https:// URL")
        if parts.scheme == "http" and not is_loopback_url(value):
            raise ValueError("must use https:// (plain http is allowed only on loopback, for the sandbox)")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @field_validator("api_scope")
    @classmethod
    def _check_scope(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.endswith("/.default"):
            raise ValueError("must be a resource scope ending in /.default")
        return value

    @field_validator("azure_client_id")
    @classmethod
    def _check_client_id(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        import uuid

        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be the managed identity's client id (a GUID)") from None

    @model_validator(mode="after")
    def _check_target(self) -> Settings:
        if self.target == "businesscentral" and not self.api_base_url:
            raise ValueError(
                "PAYMENTS_API_BASE_URL is required when PAYMENTS_TARGET=businesscentral, e.g. "
                "https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>/api/v2.0"
            )
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ValueError("PAYMENTS_BACKOFF_BASE_SECONDS must not exceed PAYMENTS_BACKOFF_MAX_SECONDS")
        return self

    @cached_property
    def base_url(self) -> str:
        return self.api_base_url or GRAPH_BASE_URL

    @cached_property
    def scope(self) -> str:
        if self.api_scope:
            return self.api_scope
        return GRAPH_SCOPE if self.target == "graph" else BUSINESS_CENTRAL_SCOPE

    def collection_url(self, company_id: str, journal_id: str) -> str:
        """The customerPayments collection of a journal, in the target's own path form (never `/$ref`)."""
        c, j = quote(company_id, safe=""), quote(journal_id, safe="")
        if self.target == "graph":
            return f"{self.base_url}/financials/companies/{c}/customerPaymentJournals/{j}/customerPayments"
        return f"{self.base_url}/companies({c})/customerPaymentJournals({j})/customerPayments"


def env_names() -> dict[str, str]:
    """Environment variable name for each setting (what the deployment must provide or may)."""
    names = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names[name] = alias if isinstance(alias, str) else f"PAYMENTS_{name.upper()}"
    return names


def load_settings() -> Settings:
    """Read and validate the settings, turning pydantic's report into one readable message."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        names = env_names()
        lines = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else None
            env = names.get(str(loc), str(loc)) if loc else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            shown = f" (got {given!r})" if loc and isinstance(given, str | int | float) else ""
            lines.append(f"{env}: {msg}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
