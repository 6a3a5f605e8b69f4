"""Where the relay keeps things in its own storage account: the queues, containers and tables, the
ledger's timings, the file drop's limits, and how the account is reached (identity-based URIs; a
connection string for the local emulator only)."""

from pydantic import Field, ValidationInfo, field_validator

from .common import CONTAINER, is_loopback_url


class StorageSettings:
    """The settings of the function's own storage account: a part of `Settings` (a plain class, as
    `InboundSettings` is)."""

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
        if not CONTAINER.fullmatch(value) or "--" in value:
            raise ValueError(
                "must be a storage container or queue name: 3-63 lower-case letters, digits and single "
                "hyphens"
            )
        return value
