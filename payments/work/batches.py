"""Where a batch answered `202 Accepted` is remembered: one small blob per batch, named by its id."""

from __future__ import annotations

import re
from typing import Any

from .. import codec
from ..errors import LedgerUnavailable
from .submit import Submission

_ID = re.compile(r"[0-9a-f]{32}")


class BatchStore:
    def __init__(self, container: Any):  # azure.storage.blob.ContainerClient
        self.container = container
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                self.container.create_container()
            except ResourceExistsError:
                pass
            self._ready = True

    def put(self, sub: Submission) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._ensure()
            self.container.upload_blob(f"{sub.batch}.json", codec.dumpb(sub.record()), overwrite=True)
        except AzureError as exc:
            raise LedgerUnavailable(f"batch store unavailable: {type(exc).__name__}") from None

    def get(self, batch: str) -> Submission | None:
        """The batch, or None when no batch has this id."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        if not _ID.fullmatch(batch):
            return None
        try:
            data = self.container.download_blob(f"{batch}.json").readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise LedgerUnavailable(f"batch store unavailable: {type(exc).__name__}") from None
        return Submission.from_record(codec.loads(data))
