"""File drops in Azurite: a fresh inbox, reports and archive per test, and delivering a blob to the
registered function as the Python worker does (an SDK-type `BlobClient` from the host's binding data)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from types import SimpleNamespace

from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.bindings.blob import BlobClient as BlobClientBinding
from azurefunctions.extensions.bindings.blob import BlobClientConverter

from devtools.invocation import context

from .host import FUNCTIONS

_names = itertools.count()


def configure_storage(azure_env, azurite, **extra: str) -> SimpleNamespace:
    """Point the relay (Business Central form) at fresh containers and a fresh ledger table in Azurite."""
    n = next(_names)
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "PAYMENTS_INBOX_CONTAINER": f"inbox-{n}",
        "PAYMENTS_REPORTS_CONTAINER": f"reports-{n}",
        "PAYMENTS_ARCHIVE_CONTAINER": f"archive-{n}",
        "PAYMENTS_DEADLETTER_CONTAINER": f"deadletter-{n}",
        "PAYMENTS_LEDGER_TABLE": f"ledger{n}",
        "PAYMENTS_BANK_TABLE": f"bank{n}",
        "PAYMENTS_BATCHES_CONTAINER": f"batches-f{n}",  # also where bank credits' plans are fixed
        **extra,
    }
    azure_env("businesscentral", **settings)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(settings["PAYMENTS_INBOX_CONTAINER"])
    table = TableClient.from_connection_string(azurite.connection_string, settings["PAYMENTS_LEDGER_TABLE"])
    return SimpleNamespace(
        service=service,
        table=table,
        inbox=settings["PAYMENTS_INBOX_CONTAINER"],
        reports=settings["PAYMENTS_REPORTS_CONTAINER"],
        archive=settings["PAYMENTS_ARCHIVE_CONTAINER"],
        settings=settings,
        azurite=azurite,
    )


def upload(drop, name: str, data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    drop.service.get_blob_client(drop.inbox, name).upload_blob(raw, overwrite=True)
    return name


def deliver(drop, name: str, traceparent: str | None = None):
    """Call the registered function with the SDK-type binding the Python worker builds from the host's data."""
    content = json.dumps({"Connection": "AzureWebJobsStorage", "ContainerName": drop.inbox, "BlobName": name})
    model = SimpleNamespace(
        version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content
    )
    client = BlobClientConverter.decode(
        Datum(type="model_binding_data", value=model), trigger_metadata={}, pytype=BlobClientBinding
    )
    return FUNCTIONS["payment_file_drop"].get_user_function()(
        client, context=context("payment_file_drop", traceparent)
    )


def blobs(drop, container: str) -> list[str]:
    try:
        return sorted(b.name for b in drop.service.get_container_client(container).list_blobs())
    except Exception:
        return []


def read(drop, container: str, name: str) -> bytes:
    return drop.service.get_blob_client(container, name).download_blob().readall()


def report_of(drop, source: str) -> dict:
    [name] = [
        b for b in blobs(drop, drop.reports) if b.startswith(source + ".") and b.endswith(".report.json")
    ]
    return json.loads(read(drop, drop.reports, name))


def failed_csv_of(drop, source: str) -> list[list[str]]:
    [name] = [
        b for b in blobs(drop, drop.reports) if b.startswith(source + ".") and b.endswith(".failed.csv")
    ]
    return list(csv.reader(io.StringIO(read(drop, drop.reports, name).decode("utf-8"))))


def amounts(sandbox) -> list[str]:
    """The amounts at the target, sorted: payments are posted concurrently, so arrival order varies."""
    return sorted((str(p["amount"]) for p in sandbox.payments()), key=lambda a: (float(a), a))
