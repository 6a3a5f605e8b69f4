"""The ledger in Azure Table Storage: the function's own storage account, reached with its identity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

from .. import codec
from ..errors import LedgerUnavailable
from ..storage import make_sure
from ..telemetry import ledger_span
from .entry import Entry, OpenRow, Scope, evolve

# The partition of the ledger's records about itself (`mark_once`): no company_journal starts with "~".
MARKS = "~ledger"
# The index of open entries (Ledger.stranded): a partition per day an entry was accepted, a row per entry.
OPEN = "~open|"
# azure-core sends a POST again only on a 500, 503 or 504, never when the connection broke after sending
# (a reset by the service or a load balancer): the write may have landed. The ledger's writes may all be
# sent again: each is conditional (a create, an etag) or idempotent (an index row's upsert or delete), so
# a repeat of one that landed fails cleanly (exists, modified, gone) and the protocol reads what is there,
# instead of the whole message failing and waiting for its redelivery.
REPEATABLE = {"retry_on_methods": frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"})}


class TableLedgerStore:
    """Azure Table Storage: PartitionKey = company_journal, RowKey = payment key; etags make every
    write conditional (create fails if present; update and delete require the etag last read)."""

    def __init__(self, table: Any):  # azure.data.tables.TableClient
        self.table = table
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            make_sure(self.table.create_table)
            self._ready = True

    @staticmethod
    def _to_entity(entry: Entry) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": entry.scope.partition,
            "RowKey": entry.key,
            "State": entry.state,
            "Fingerprint": entry.fingerprint,
            "ClaimedUntil": entry.claimed_until,
            "CreatedAt": entry.created_at,
            "UpdatedAt": entry.updated_at,
            "Attempts": entry.attempts,
            "Natural": codec.dumps(entry.natural),
        }
        optional = {
            "TargetId": entry.target_id,
            "ErrorCode": entry.error_code,
            "ErrorMessage": entry.error_message,
            "ResponseStatus": entry.response_status,
            "ResponseBody": entry.response_body,
            "ClientRequestId": entry.client_request_id,
            "SentBy": entry.sent_by,
            "Payload": entry.payload,
            "Batch": entry.batch,
            "Caller": entry.caller,
            "Booked": entry.booked,
        }
        entity.update({k: v for k, v in optional.items() if v is not None})
        return entity

    @staticmethod
    def _from_entity(entity: Any) -> Entry:
        company, _, journal = entity["PartitionKey"].partition("_")
        return Entry(
            scope=Scope(company, journal),
            key=entity["RowKey"],
            state=entity["State"],
            fingerprint=entity["Fingerprint"],
            claimed_until=entity["ClaimedUntil"],
            created_at=entity["CreatedAt"],
            updated_at=entity["UpdatedAt"],
            attempts=int(entity.get("Attempts", 1)),
            target_id=entity.get("TargetId"),
            error_code=entity.get("ErrorCode"),
            error_message=entity.get("ErrorMessage"),
            response_status=entity.get("ResponseStatus"),
            response_body=entity.get("ResponseBody"),
            client_request_id=entity.get("ClientRequestId"),
            natural=codec.loads(entity.get("Natural") or "{}"),
            sent_by=entity.get("SentBy"),
            payload=entity.get("Payload"),
            batch=entity.get("Batch"),
            caller=entity.get("Caller"),
            booked=entity.get("Booked"),
            etag=entity.metadata.get("etag"),
        )

    def _call(self, fn: Callable[[], Any], operation: str, partition: str, key: str | None = None) -> Any:
        """One storage round trip, in a span of its own; the conditional answers (exists, modified, not
        found) are the protocol's to read, anything else makes the ledger unavailable."""
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import TableTransactionError

        with ledger_span(operation, partition, key) as span:
            try:
                self._ensure()  # creating the table can fail like any other call
                return fn()
            except (
                ResourceExistsError,
                ResourceModifiedError,
                ResourceNotFoundError,
                TableTransactionError,
            ) as exc:
                span.set_attribute("payments.ledger.answer", type(exc).__name__)
                raise
            except AzureError as exc:
                span.set_attribute("payments.ledger.answer", "unavailable")
                raise LedgerUnavailable(
                    f"ledger table unavailable: {exc.__class__.__name__}: {exc}"
                ) from None

    def insert(self, entry: Entry) -> Entry | None:
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self._call(
                lambda: self.table.create_entity(self._to_entity(entry), **REPEATABLE),
                "insert",
                entry.scope.partition,
                entry.key,
            )
        except ResourceExistsError:
            return None
        return evolve(entry, etag=meta.get("etag"))

    def get(self, scope: Scope, key: str) -> Entry | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self._call(
                lambda: self.table.get_entity(scope.partition, key), "get", scope.partition, key
            )
            return self._from_entity(found)
        except ResourceNotFoundError:
            return None

    def replace(self, entry: Entry) -> Entry | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            meta = self._call(
                lambda: self.table.update_entity(
                    self._to_entity(entry),
                    mode=UpdateMode.REPLACE,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                ),
                "replace",
                entry.scope.partition,
                entry.key,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return evolve(entry, etag=meta.get("etag"))

    def delete(self, entry: Entry) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            self._call(
                lambda: self.table.delete_entity(
                    entry.scope.partition,
                    entry.key,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                ),
                "delete",
                entry.scope.partition,
                entry.key,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    # An entity group transaction: one request, all or nothing, at most 100 entities of one
    # partition and 4 MiB; beyond those limits (or on any conflict) the caller goes one by one.
    _MAX_TRANSACTION = 100
    _MAX_TRANSACTION_CHARS = 3_000_000

    def _submit(self, operations: list[tuple[Any, ...]]) -> Any:
        return self.table.submit_transaction(operations, **REPEATABLE)

    def _transaction(self, operations: list[tuple[Any, ...]]) -> list[Any] | None:
        from azure.data.tables import TableTransactionError

        size = sum(
            len(str(op[1].get("ResponseBody", ""))) + len(str(op[1].get("Payload", ""))) + 1000
            for op in operations
        )
        if len(operations) > self._MAX_TRANSACTION or size > self._MAX_TRANSACTION_CHARS:
            return None
        try:
            partition = str(operations[0][1].get("PartitionKey", ""))
            return list(self._call(partial(self._submit, operations), "transaction", partition))
        except TableTransactionError:
            return None

    def insert_many(self, entries: list[Entry]) -> list[Entry] | None:
        results = self._transaction([("create", self._to_entity(e)) for e in entries])
        if results is None:
            return None
        return [evolve(e, etag=r.get("etag")) for e, r in zip(entries, results, strict=True)]

    def replace_many(self, entries: list[Entry]) -> list[Entry] | None:
        from azure.core import MatchConditions

        ops = [
            (
                "update",
                self._to_entity(e),
                {"mode": "replace", "etag": e.etag, "match_condition": MatchConditions.IfNotModified},
            )
            for e in entries
        ]
        results = self._transaction(ops)
        if results is None:
            return None
        return [evolve(e, etag=r.get("etag")) for e, r in zip(entries, results, strict=True)]

    def in_scope(self, scope: Scope, states: set[str]) -> Iterator[Entry]:
        wanted = " or ".join(f"State eq '{s}'" for s in sorted(states))
        query = f"PartitionKey eq @partition and ({wanted})"
        params = {"partition": scope.partition}
        for entity in self._call(
            lambda: self.table.query_entities(query, parameters=params), "query", scope.partition
        ):
            yield self._from_entity(entity)

    def in_batch(self, scope: Scope, batch: str) -> Iterator[Entry]:
        query = "PartitionKey eq @partition and Batch eq @batch"
        params = {"partition": scope.partition, "batch": batch}
        for entity in self._call(
            lambda: self.table.query_entities(query, parameters=params), "query", scope.partition
        ):
            yield self._from_entity(entity)

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]:
        # Every entry's partition is company_journal (GUIDs); the ledger's own rows start with "~".
        query = "PartitionKey lt '~'"
        if states:
            query += " and (" + " or ".join(f"State eq '{s}'" for s in sorted(states)) + ")"
        for entity in self._call(lambda: self.table.query_entities(query), "scan", ""):
            yield self._from_entity(entity)

    # -- the index of open entries (ledger.open) --------------------------------------------------

    def index_open(self, rows: list[OpenRow]) -> None:
        by_day: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for day, scope, key in rows:
            pk = OPEN + day
            row = {"PartitionKey": pk, "RowKey": f"{scope.partition}|{key}"}
            by_day.setdefault(pk, []).append(("upsert", row))
        for pk, operations in by_day.items():
            for start in range(0, len(operations), self._MAX_TRANSACTION):
                chunk = operations[start : start + self._MAX_TRANSACTION]
                self._call(partial(self._submit, chunk), "transaction", pk)

    def unindex(self, rows: list[OpenRow]) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableTransactionError

        by_day: dict[str, list[str]] = {}
        for day, scope, key in rows:
            by_day.setdefault(OPEN + day, []).append(f"{scope.partition}|{key}")
        for pk, names in by_day.items():
            for start in range(0, len(names), self._MAX_TRANSACTION):
                chunk = names[start : start + self._MAX_TRANSACTION]
                operations = [("delete", {"PartitionKey": pk, "RowKey": row}) for row in chunk]
                try:
                    self._call(partial(self._submit, operations), "transaction", pk)
                    continue
                except TableTransactionError:  # one of them was gone already: the rest one by one
                    pass
                for row in chunk:
                    try:
                        gone = partial(self.table.delete_entity, pk, row)
                        self._call(gone, "delete", pk, row)
                    except ResourceNotFoundError:
                        pass

    def indexed(self) -> Iterator[OpenRow]:
        query = "PartitionKey ge @lo and PartitionKey lt @hi"
        params = {"lo": OPEN, "hi": OPEN[:-1] + "}"}
        found = self._call(
            lambda: self.table.query_entities(query, parameters=params, select=["PartitionKey", "RowKey"]),
            "query",
            OPEN,
        )
        for row in found:
            partition, _, key = row["RowKey"].partition("|")
            company, _, journal = partition.partition("_")
            yield row["PartitionKey"].removeprefix(OPEN), Scope(company, journal), key

    def marked(self, name: str) -> datetime | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._call(lambda: self.table.get_entity(MARKS, name), "get", MARKS, name)["Value"]
        except ResourceNotFoundError:
            return None

    def has_entries(self) -> bool:
        def first() -> Any:
            entries = "PartitionKey lt '~'"
            found = self.table.query_entities(entries, results_per_page=1, select=["PartitionKey"])
            return next(iter(found), None)  # one entity, following continuations until there is one

        return self._call(first, "scan", "") is not None

    def mark_once(self, name: str, value: datetime) -> datetime:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        entity = {"PartitionKey": MARKS, "RowKey": name, "Value": value}
        for _ in range(3):
            try:
                found = self._call(lambda: self.table.get_entity(MARKS, name), "get", MARKS, name)
                return found["Value"]
            except ResourceNotFoundError:
                pass
            try:
                self._call(lambda: self.table.create_entity(entity, **REPEATABLE), "insert", MARKS, name)
                return value
            except ResourceExistsError:
                continue  # another worker recorded it first: read its value
        raise LedgerUnavailable(f"the ledger's mark {name} kept changing")
