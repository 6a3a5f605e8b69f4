"""Every setting the relay reads, in one place, validated once at start-up.

The Bicep templates set these as app settings, and the infrastructure tests derive the list
of names from this class, so a setting added here without a template change is caught.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import uuid
from decimal import Decimal
from functools import cached_property
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import SettingsError

GRAPH_BASE_URL = "https://graph.microsoft.com/beta"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BUSINESS_CENTRAL_SCOPE = "https://api.businesscentral.dynamics.com/.default"

Target = Literal["graph", "businesscentral"]
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]")
_SENDER = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


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
    work_queue: str = Field(
        "",
        description="Storage queue the webhook and the file drop hand accepted payments to; the queue-"
        "triggered poster is then the only code that sends to the target. Empty: entry points post "
        "themselves (local runs)",
    )
    priority_queue: str = Field(
        "",
        description="Storage queue for small webhook calls answered synchronously (PAYMENTS_PRIORITY_AT_MOST "
        "payments or fewer): a queue function of its own takes them at once, not behind the batches queued "
        "on PAYMENTS_WORK_QUEUE. Empty: they go on the work queue too",
    )
    priority_at_most: int = Field(
        10, ge=1, le=100, description="Most payments in a call that goes on PAYMENTS_PRIORITY_QUEUE"
    )
    post_journals: str = Field(
        "",
        description="Comma-separated companyId/journalId pairs whose journal the relay posts every hour (the "
        "journal_post timer) when it holds only lines the relay created; empty: no journal is posted by the "
        "relay (python -m payments journal post posts one on request)",
    )
    batches_container: str = Field(
        "payments-batches", description="Container of the records behind GET /api/batches/{id}"
    )
    answer_within_seconds: float = Field(
        20.0,
        ge=0,
        le=200,
        description="How long a webhook call waits for its payments to be posted before it answers 202 "
        "Accepted with a status URL instead",
    )
    async_above: int = Field(
        100,
        ge=0,
        description="A webhook batch of more payments than this is answered 202 Accepted at once",
    )
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
    site_name: str | None = Field(
        None, validation_alias="WEBSITE_SITE_NAME", description="Set by Azure: the app runs in Azure"
    )
    inbox_container: str = Field("payments-inbox", description="Container the file-drop trigger watches")
    reports_container: str = Field("payments-reports", description="Container for file-drop reports")
    archive_container: str = Field(
        "payments-archive", description="Container whose processed/ and failed/ areas receive handled files"
    )
    deadletter_container: str = Field(
        "payments-deadletter", description="Container Event Grid dead-letters undeliverable inbox events to"
    )
    redrive_after_seconds: int = Field(
        900,
        ge=60,
        le=86400,
        description="An inbox file older than this that no worker holds is processed again by the timer",
    )
    config_container: str = Field(
        "payments-config",
        description="Container of what operators maintain: the payer IBAN map (payers.csv, or "
        "<companyId>/payers.csv) that cash application reads",
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
    max_file_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="Largest payment file accepted")
    max_file_records: int = Field(100_000, ge=1, description="Most records one payment file may hold")
    file_lease_seconds: int = Field(
        60, ge=15, le=60, description="Lease a worker holds on a file it processes"
    )
    ledger_table: str = Field(
        "paymentsledger", pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$", description="Ledger table"
    )
    ledger_lease_seconds: float = Field(
        300.0, gt=0, le=3600, description="After this long a claim by a silent worker may be reconciled"
    )
    target_settle_seconds: float = Field(
        600.0,
        ge=0,
        le=3600,
        description="How long after a request left the target may still act on it (Business Central: "
        "queued up to 8 minutes, ended at 10); until then an ambiguous payment is not posted again",
    )
    ledger_retention_days: float = Field(
        30.0, gt=0, le=3650, description="How long payment keys are remembered"
    )

    # The function's own storage account, read from the same settings the Functions host uses.
    storage_connection_string: str | None = Field(
        None,
        validation_alias="AzureWebJobsStorage",
        description="Local development only: a connection string to the Azurite emulator",
    )
    storage_blob_uri: str | None = Field(
        None,
        validation_alias="AzureWebJobsStorage__blobServiceUri",
        description="Blob endpoint (identity-based)",
    )
    storage_table_uri: str | None = Field(
        None,
        validation_alias="AzureWebJobsStorage__tableServiceUri",
        description="Table endpoint (identity-based)",
    )
    storage_queue_uri: str | None = Field(
        None,
        validation_alias="AzureWebJobsStorage__queueServiceUri",
        description="Queue endpoint (identity-based)",
    )
    storage_client_id: str | None = Field(
        None,
        validation_alias="AzureWebJobsStorage__clientId",
        description="Client id of the user-assigned identity used for storage",
    )

    _sender_secrets: dict[str, list[bytes]] = PrivateAttr(default_factory=dict)

    @field_validator("storage_connection_string")
    @classmethod
    def _check_connection_string(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
        if parts.get("UseDevelopmentStorage", "").lower() == "true":
            return value
        endpoints = [v for k, v in parts.items() if k.endswith("Endpoint")]
        if not endpoints or not all(is_loopback_url(v) for v in endpoints):
            raise ValueError(
                "a storage connection string is accepted only for the local emulator (Azurite); in Azure set "
                "AzureWebJobsStorage__blobServiceUri / __tableServiceUri and grant the identity a role"
            )
        return value

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
        for name in _names(value):
            if not _SENDER.fullmatch(name):
                raise ValueError(
                    f"sender {name!r}: a sender name is 1-32 lower-case letters, digits and hyphens (it is "
                    "part of the sender's URL)"
                )
        return value

    @field_validator("target_client_ids")
    @classmethod
    def _check_client_ids(cls, value: str) -> str:
        ids = _names(value)
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
        for item in _names(value):
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

    @field_validator(
        "inbox_container",
        "reports_container",
        "archive_container",
        "batches_container",
        "config_container",
        "work_queue",
    )
    @classmethod
    def _check_container(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "work_queue" and value == "":
            return value
        if not _CONTAINER.fullmatch(value) or "--" in value:
            raise ValueError(
                "must be a storage container or queue name: 3-63 lower-case letters, digits and single "
                "hyphens"
            )
        return value

    @model_validator(mode="after")
    def _check_target(self) -> Settings:
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
        self._sender_secrets = {name: _sender_secrets(name) for name in self.senders}
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ValueError("PAYMENTS_BACKOFF_BASE_SECONDS must not exceed PAYMENTS_BACKOFF_MAX_SECONDS")
        return self

    @cached_property
    def audiences(self) -> list[str]:
        return _names(self.auth_audiences, lower=False)

    @cached_property
    def client_applications(self) -> set[str]:
        return set(_names(self.auth_client_applications))

    @cached_property
    def senders(self) -> list[str]:
        return _names(self.webhook_senders)

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

    @cached_property
    def base_url(self) -> str:
        return self.api_base_url or GRAPH_BASE_URL

    @property
    def journals_to_post(self) -> list[tuple[str, str]]:
        """The (company, journal) pairs the journal_post timer posts."""
        return [tuple(p.split("/", 1)) for p in _names(self.post_journals)]  # type: ignore[misc]

    @property
    def target_identities(self) -> list[str]:
        """The client ids of the identities the relay calls the target as (empty: the one default)."""
        return _names(self.target_client_ids)

    @cached_property
    def scope(self) -> str:
        if self.api_scope:
            return self.api_scope
        return GRAPH_SCOPE if self.target == "graph" else BUSINESS_CENTRAL_SCOPE


def _names(value: str, *, lower: bool = True) -> list[str]:
    """The items of a comma-separated setting, trimmed, empty ones dropped."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    return [v.lower() for v in items] if lower else items


def secret_env(sender: str) -> str:
    """The app setting holding a sender's secrets: a Key Vault reference in Azure."""
    return "PAYMENTS_WEBHOOK_SECRET_" + sender.upper().replace("-", "_")


def _sender_secrets(sender: str) -> list[bytes]:
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
