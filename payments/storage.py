"""Clients for the function's own storage account, built from the settings the Functions host uses.

In Azure the account is reached with the managed identity (`AzureWebJobsStorage__*Uri` plus
`__clientId`); a connection string is accepted only for the local Azurite emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .credentials import storage_credential
from .errors import SettingsError
from .settings import Settings

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueClient


# The SDK's defaults fetch the first 32 MiB of a blob in one request and buffer up to 64 MiB for
# one upload; smaller pieces keep a file drop's memory flat whatever the file's size. A download holds
# about ten of its pieces at once (measured: 42 MB with 4 MiB pieces, 10.5 MB with 1 MiB, the same for
# a 10 MB and a 40 MB blob), so reads use 2 MiB.
TRANSFER_SIZES = {
    "max_single_get_size": 2 * 1024 * 1024,
    "max_chunk_get_size": 2 * 1024 * 1024,
    "max_single_put_size": 4 * 1024 * 1024,
    "max_block_size": 4 * 1024 * 1024,
}


def ledger_table(settings: Settings) -> TableClient | None:
    """The ledger's table in the function's own storage account, or None when none is configured."""
    return table_client(settings, settings.ledger_table)


def table_client(settings: Settings, name: str) -> TableClient | None:
    """A table in the function's own storage account, or None when none is configured."""
    from azure.data.tables import TableClient

    if settings.storage_connection_string:
        return TableClient.from_connection_string(settings.storage_connection_string, name)
    if settings.storage_table_uri:
        return TableClient(settings.storage_table_uri, name, credential=storage_credential(settings))
    return None


def blob_service(settings: Settings) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(settings.storage_connection_string, **TRANSFER_SIZES)
    if settings.storage_blob_uri:
        return BlobServiceClient(
            settings.storage_blob_uri, credential=storage_credential(settings), **TRANSFER_SIZES
        )
    raise SettingsError(
        "file drops need the function's storage account: set AzureWebJobsStorage__blobServiceUri "
        "(identity-based) or, locally, AzureWebJobsStorage to the Azurite connection string"
    )


def queue_client(settings: Settings, name: str) -> QueueClient:
    """A queue in the function's own account, base64-encoded as the Functions queue trigger reads it."""
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

    policies = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": BinaryBase64DecodePolicy(),
    }
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(settings.storage_connection_string, name, **policies)
    if settings.storage_queue_uri:
        credential = storage_credential(settings)
        return QueueClient(settings.storage_queue_uri, name, credential=credential, **policies)
    raise SettingsError(
        "PAYMENTS_WORK_QUEUE needs the function's storage account: set "
        "AzureWebJobsStorage__queueServiceUri (identity-based) or, locally, AzureWebJobsStorage to the "
        "Azurite connection string"
    )


def make_sure(create: Callable[[], object]) -> None:
    """Create a table or container unless it exists already (first use of a store, in any process)."""
    from azure.core.exceptions import ResourceExistsError

    try:
        create()
    except ResourceExistsError:
        pass
