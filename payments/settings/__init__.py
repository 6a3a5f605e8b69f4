"""Every setting the relay reads, in one place, validated once at start-up.

The Bicep templates set these as app settings, and the infrastructure tests derive the list
of names from this class, so a setting added here without a template change is caught.
"""

import uuid
from decimal import Decimal
from functools import cached_property
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from ..errors import SettingsError
from .common import (
    BUSINESS_CENTRAL_SCOPE,
    ENVIRONMENT,
    GRAPH_BASE_URL,
    GRAPH_SCOPE,
    Target,
    is_loopback_url,
    names,
)
from .inbound import InboundSettings, read_sender_secrets, secret_env
from .storage import StorageSettings

__all__ = ["Settings", "SettingsError", "Target", "env_names", "load_settings", "secret_env"]


class Settings(InboundSettings, StorageSettings, BaseSettings):
    """Relay settings from the environment (`PAYMENTS_*`, plus `AZURE_CLIENT_ID`): the target and how it
    is called here; who may call and the storage account in their parts (`inbound`, `storage`)."""

    model_config = ENVIRONMENT
    _sender_secrets: dict[str, list[bytes]] = PrivateAttr(default_factory=dict)

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
    target_client_ids: str = Field(
        "",
        description="Comma-separated client ids of the user-assigned managed identities the relay calls the "
        "target as, each with its own budget (Business Central: 5 requests at once and 6,000 per 5 minutes "
        "per identity); requests go to the one with room. Empty: AZURE_CLIENT_ID's identity alone",
    )
    amount_decimals: int = Field(2, ge=0, le=10, description="Maximum decimal places in an amount")
    amount_sign: Literal["negative", "positive"] = Field(
        "negative",
        description="How callers write amounts: negative, as Business Central posts a customer payment "
        "(a credit), or positive, as money received (the relay negates them before sending)",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted HTTP request body")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts per request, first one included")
    retry_max_seconds: float = Field(60.0, gt=0, le=600, description="Total time budget for retries")
    backoff_base_seconds: float = Field(0.5, gt=0, le=60, description="First backoff step")
    backoff_max_seconds: float = Field(20.0, gt=0, le=300, description="Largest single backoff")
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120, description="TCP connect timeout")
    read_timeout_seconds: float = Field(60.0, gt=0, le=600, description="Wait for the target's answer")
    max_concurrency: int = Field(5, ge=1, le=50, description="Requests in flight to the target per worker")
    shared_concurrency: int = Field(
        0,
        ge=0,
        le=50,
        description="Requests in flight to the target across every instance together (each holds a lease "
        "on one of this many blobs in PAYMENTS_FLOW_CONTAINER), and one insert per journal across them; "
        "0 keeps the limits per worker only",
    )
    flow_container: str = Field(
        "payments-flow", description="Container of the small blobs whose leases carry the shared limits"
    )
    target_rate_requests: int = Field(
        6000,
        ge=1,
        description="Requests the target takes per identity in its sliding window (Business Central: 6,000 "
        "per 5 minutes); the relay paces itself under it instead of provoking 429s",
    )
    target_rate_window_seconds: float = Field(
        300.0, gt=0, le=3600, description="The target's rate window, in seconds"
    )
    batch_size: int = Field(
        0, ge=0, le=100, description="Payments per JSON $batch request; 0 posts one request per payment"
    )
    post_journals: str = Field(
        "",
        description="Comma-separated companyId/journalId pairs whose journal the relay posts every hour (the "
        "journal_post timer) when it holds only lines the relay created; empty: no journal is posted by the "
        "relay (python -m payments journal post posts one on request)",
    )
    appinsights_connection_string: str | None = Field(
        None,
        validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="The Application Insights component telemetry goes to (it names it; no secret: "
        "ingestion is authenticated with the managed identity)",
    )
    appinsights_enable_telemetry: bool = Field(
        False,
        validation_alias="PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        description="Functions' switch for Python telemetry: with a connection string, traces, metrics and "
        "logs go to Application Insights",
    )
    bank_on_account: bool = Field(
        False,
        description="A bank credit whose customer is certain but whose invoice is not is posted on "
        "account (false: it goes to the review file)",
    )
    bank_amount_tolerance: Decimal = Field(
        Decimal(0),
        ge=0,
        le=1000,
        description="How far a credit may differ from an invoice's remaining amount and still match it "
        "(the amount posted is always the bank's)",
    )
    bank_document_numbers: Literal["series", "bank"] = Field(
        "series",
        description="series: bank credits are posted without documentNumber (the journal's number series "
        "assigns one); bank: documentNumber is derived from the bank transaction (unique, so a posted "
        "payment can be found again), for journals without a number series",
    )
    bank_table: str = Field(
        "paymentsbank",
        pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$",
        description="Table of the bank credits the relay decided, per company and bank account, so that "
        "none is posted twice whatever the file type, the journal or the time",
    )
    bank_retention_days: float = Field(
        400.0,
        ge=1,
        le=3650,
        description="How long a bank credit (and its plan) is remembered after its last change: as long as "
        "the bank may send a statement again; a statement older than this would post its credits again",
    )
    default_company_id: str | None = Field(None, description="Company for files dropped at the inbox root")
    default_journal_id: str | None = Field(None, description="Journal for files dropped at the inbox root")
    target_settle_seconds: float = Field(
        600.0,
        ge=0,
        le=3600,
        description="How long after a request left the target may still act on it (Business Central: "
        "queued up to 8 minutes, ended at 10); until then an ambiguous payment is not posted again",
    )

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

    @field_validator("target_client_ids")
    @classmethod
    def _check_client_ids(cls, value: str) -> str:
        ids = names(value)
        for client_id in ids:
            try:
                uuid.UUID(client_id)
            except ValueError:
                raise ValueError(f"{client_id!r} is not a client id (a GUID)") from None
        if len(set(ids)) != len(ids):
            raise ValueError("names an identity twice")
        return ",".join(str(uuid.UUID(c)) for c in ids)

    @field_validator("post_journals")
    @classmethod
    def _check_journals(cls, value: str) -> str:
        pairs = []
        for item in names(value):
            company, _, journal = item.partition("/")
            try:
                pairs.append(f"{uuid.UUID(company)}/{uuid.UUID(journal)}")
            except ValueError:
                raise ValueError(f"{item!r} is not companyId/journalId (two GUIDs)") from None
        return ",".join(pairs)

    @field_validator("api_scope")
    @classmethod
    def _check_scope(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.endswith("/.default"):
            raise ValueError("must be a resource scope ending in /.default")
        return value

    @field_validator(
        "azure_client_id", "default_company_id", "default_journal_id", "storage_client_id", "auth_tenant_id"
    )
    @classmethod
    def _check_guid(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a GUID") from None

    @model_validator(mode="after")
    def _check_target(self) -> Self:
        if self.target == "businesscentral" and not self.api_base_url:
            raise ValueError(
                "PAYMENTS_API_BASE_URL is required when PAYMENTS_TARGET=businesscentral, e.g. "
                "https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>/api/v2.0"
            )
        if self.target == "graph" and urlsplit(self.base_url).path.rstrip("/").lower().endswith("/v1.0"):
            raise ValueError(
                "PAYMENTS_API_BASE_URL: Microsoft Graph has financials (customerPayments) only under /beta, "
                "e.g. https://graph.microsoft.com/beta"
            )
        limit = 20 if self.target == "graph" else 100
        if self.batch_size > limit:
            raise ValueError(
                f"PAYMENTS_BATCH_SIZE: {self.target} accepts at most {limit} requests in one $batch"
            )
        if len({self.inbox_container, self.reports_container, self.archive_container}) < 3:
            raise ValueError("the inbox, reports and archive containers must be three different containers")
        if self.inbound_auth == "none" and self.site_name:
            raise ValueError(
                "PAYMENTS_INBOUND_AUTH=none lets anyone post payments: it is for local development only and "
                "refused on Azure; set PAYMENTS_INBOUND_AUTH=entra with PAYMENTS_AUTH_TENANT_ID and "
                "PAYMENTS_AUTH_AUDIENCES"
            )
        self._sender_secrets = {name: read_sender_secrets(name) for name in self.senders}
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ValueError("PAYMENTS_BACKOFF_BASE_SECONDS must not exceed PAYMENTS_BACKOFF_MAX_SECONDS")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment (app settings, Key Vault references resolved into them) and values given in
        code (the CLI's overrides) only: no .env file or secrets directory is looked for, which would
        cost every cold start two milliseconds for nothing."""
        return init_settings, env_settings

    @cached_property
    def base_url(self) -> str:
        return self.api_base_url or GRAPH_BASE_URL

    @property
    def journals_to_post(self) -> list[tuple[str, str]]:
        """The (company, journal) pairs the journal_post timer posts."""
        return [tuple(p.split("/", 1)) for p in names(self.post_journals)]  # type: ignore[misc]

    @property
    def target_identities(self) -> list[str]:
        """The client ids of the identities the relay calls the target as (empty: the one default)."""
        return names(self.target_client_ids)

    @cached_property
    def scope(self) -> str:
        if self.api_scope:
            return self.api_scope
        return GRAPH_SCOPE if self.target == "graph" else BUSINESS_CENTRAL_SCOPE


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
            msg = err["msg"].removeprefix("Value error, ")
            if not loc:  # a rule across settings: its message names the variables itself
                lines.append(msg)
                continue
            env = names.get(str(loc), str(loc))
            given = err.get("input")
            shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
            lines.append(f"{env}: {msg}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(lines)) from None
