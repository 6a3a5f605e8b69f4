"""Where a batch answered `202 Accepted` is remembered: one small blob per batch, named by its id.

A deferred batch (taken into the ledger later by a poster) is kept under `pending/` with its payloads
until its intake replaces it with the final record, so the re-drive can find one whose intake message
was lost."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import codec
from ..errors import LedgerUnavailable
from ..storage import make_sure
from .submission import Submission

_ID = re.compile(r"[0-9a-f]{32}")
PENDING = "pending/"


class BatchStore:
    def __init__(self, container: Any):  # azure.storage.blob.ContainerClient
        self.container = container
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            make_sure(self.container.create_container)
            self._ready = True

    def put(self, sub: Submission) -> None:
        """Keep a batch: pending (with its payloads) until its intake, then its final record."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        pending = sub.payloads is not None
        try:
            self._ensure()
            name = f"{PENDING}{sub.batch}.json" if pending else f"{sub.batch}.json"
            self.container.upload_blob(name, codec.dumpb(sub.record()), overwrite=True)
            if not pending:
                try:
                    self.container.delete_blob(f"{PENDING}{sub.batch}.json")
                except ResourceNotFoundError:
                    pass
        except AzureError as exc:
            raise LedgerUnavailable(f"batch store unavailable: {type(exc).__name__}") from None

    def get(self, batch: str) -> Submission | None:
        """The batch (its final record, else its pending one), or None when no batch has this id."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        if not _ID.fullmatch(batch):
            return None
        for name in (f"{batch}.json", f"{PENDING}{batch}.json"):
            try:
                data = self.container.download_blob(name).readall()
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                raise LedgerUnavailable(f"batch store unavailable: {type(exc).__name__}") from None
            return Submission.from_record(codec.loads(data))
        return None

    def stranded(self, older_than: timedelta) -> Iterator[str]:
        """Ids of deferred batches still waiting for their intake after `older_than`."""
        self._ensure()
        limit = datetime.now(UTC) - older_than
        for blob in self.container.list_blobs(name_starts_with=PENDING):
            if blob.last_modified <= limit:
                yield blob.name.removeprefix(PENDING).removesuffix(".json")
