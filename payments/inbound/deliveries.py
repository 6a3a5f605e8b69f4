"""The signed deliveries already admitted, so that one replayed within the tolerance is refused.

A sender's retry keeps its webhook-id and signs a new timestamp: that is a new delivery, admitted, and
the ledger (the id is the payment's idempotency key) answers it with the first outcome. The same id
with the same timestamp again is the same signed request sent twice: a replay. Entries older than the
tolerance are useless (the timestamp check refuses those deliveries) and are purged.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Protocol

from ..errors import LedgerUnavailable
from ..storage import make_sure
from .signature import Delivery


def _row(delivery: Delivery) -> str:
    # Any printable ASCII may be in a webhook-id; Table row keys refuse some of it: hash.
    return hashlib.sha256(f"{delivery.id}.{delivery.timestamp}".encode()).hexdigest()


class Deliveries(Protocol):
    def first(self, sender: str, delivery: Delivery) -> bool:
        """Record the delivery; False when it was recorded before (a replay). Raises LedgerUnavailable."""
        ...

    def purge(self, older_than: float) -> int:
        """Forget deliveries signed before `older_than` (Unix seconds); how many were forgotten."""
        ...


class MemoryDeliveries:
    """For one process without a storage account (local development)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def first(self, sender: str, delivery: Delivery) -> bool:
        key = (sender, _row(delivery))
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = delivery.timestamp
            return True

    def purge(self, older_than: float) -> int:
        with self._lock:
            old = [key for key, signed in self._seen.items() if signed < older_than]
            for key in old:
                del self._seen[key]
            return len(old)


class TableDeliveries:
    """In a table of the function's storage account, shared by every instance: one insert per delivery,
    refused by the service when the row exists, so two instances cannot both admit the same one."""

    def __init__(self, table: Any):  # azure.data.tables.TableClient
        self.table = table
        self._ready = False

    def first(self, sender: str, delivery: Delivery) -> bool:
        from azure.core.exceptions import AzureError, ResourceExistsError

        entity = {"PartitionKey": sender, "RowKey": _row(delivery), "Signed": delivery.timestamp}
        try:
            self._ensure()
            self.table.create_entity(entity)
            return True
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise LedgerUnavailable(f"deliveries table unavailable: {exc.__class__.__name__}") from None

    def purge(self, older_than: float) -> int:
        from azure.core.exceptions import AzureError

        removed = 0
        try:
            self._ensure()
            old = self.table.query_entities("Signed lt @t", parameters={"t": int(older_than)})
            for entity in old:
                self.table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                removed += 1
        except AzureError as exc:
            raise LedgerUnavailable(f"deliveries table unavailable: {exc.__class__.__name__}") from None
        return removed

    def _ensure(self) -> None:
        if not self._ready:
            make_sure(self.table.create_table)
            self._ready = True
