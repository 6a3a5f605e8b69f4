"""The idempotency ledger: each payment is posted exactly once, or reported as ambiguous.

The protocol (`Ledger`) is written against a small persistence interface (`LedgerStore`), the way
AWS Lambda Powertools separates idempotency from DynamoDB: Azure Table Storage sits behind it in
production (`TableLedgerStore`), an in-memory store for offline runs of the command line.

Protocol, per payment key:
1. claim: insert-if-absent a `claimed` entry with a lease (atomic; never read-then-insert);
2. post, then record the outcome: `posted` (with the target's id), `rejected`, or `ambiguous`;
   a definite "nothing was created" (target unavailable) releases the claim;
3. someone else's live claim means the payment is in flight; a claim whose lease ran out (a
   crashed worker) or an `ambiguous` entry may have reached the target, so it is reconciled first:
   the target is searched by the payment's natural key and a match is adopted instead of posting.
   Without a natural key the entry stays `ambiguous` for a person to resolve; it is never re-posted
   on a guess.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from . import codec
from .model import CustomerPayment

log = logging.getLogger("payments.ledger")

State = Literal["claimed", "posted", "rejected", "ambiguous"]
_CODE_FIELDS = ("customerNumber", "documentNumber", "externalDocumentNumber", "appliesToInvoiceNumber")
MAX_STORED_BODY = 30_000  # characters: a Table string property holds 32K UTF-16 code units


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a payment goes: keys are unique per company and journal."""

    company_id: str
    journal_id: str
    partition: str = field(init=False, repr=False, compare=False)  # the Table partition key

    def __post_init__(self) -> None:
        object.__setattr__(self, "partition", f"{self.company_id}_{self.journal_id}")


def canonical(payload: dict[str, Any]) -> bytes:
    """The payment as the target will see it, so equal payments compare equal: amounts by value
    (10.10 == 10.1), Code fields upper-case (Business Central stores them so), keys sorted."""
    norm: dict[str, Any] = {}
    for name, value in payload.items():
        kind = type(value)
        if kind is str:
            if name in _CODE_FIELDS:
                value = value.upper()
        elif kind is Decimal or kind is int or (isinstance(value, Decimal | int) and kind is not bool):
            value = format(Decimal(value).normalize(), "f")
        elif isinstance(value, str) and name in _CODE_FIELDS:
            value = value.upper()
        norm[name] = value
    return codec.dumpb(norm, sort_keys=True)


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def derived_key(scope: Scope, payload: dict[str, Any]) -> str:
    """The key of a payment sent without Idempotency-Key: the same payment in the same journal is
    the same key. Two genuinely identical payments therefore count as one (see the README)."""
    return identify(scope, payload)[0]


def identify(scope: Scope, payload: dict[str, Any]) -> tuple[str, str]:
    """The derived key and the fingerprint of a payment, from one canonical form."""
    text = canonical(payload)
    return (
        "p-" + hashlib.sha256(scope.partition.encode("utf-8") + b"|" + text).hexdigest(),
        hashlib.sha256(text).hexdigest(),
    )


def explicit_key(scope: Scope, idempotency_key: str, index: int | None = None) -> str:
    """The key for a caller's Idempotency-Key (per item of a batch)."""
    suffix = "" if index is None else f"#{index}"
    return "k-" + hashlib.sha256(f"{scope.partition}|{idempotency_key}{suffix}".encode()).hexdigest()


@dataclass(slots=True)
class Entry:
    """One payment's record in the ledger."""

    scope: Scope
    key: str
    state: State
    fingerprint: str
    claimed_until: datetime
    created_at: datetime
    updated_at: datetime
    attempts: int = 1
    target_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    response_status: int | None = None
    response_body: str | None = None  # the target's object (JSON), for replays
    client_request_id: str | None = None
    natural: dict[str, str] = field(default_factory=dict)  # documentNumber etc., amount as text
    etag: str | None = None


_entry_values = operator.attrgetter(*(f.name for f in fields(Entry)))


def evolve(entry: Entry, **changes: Any) -> Entry:
    """A copy of `entry` with `changes` (dataclasses.replace, minus its per-call introspection, which
    cost more than the rest of a batch's ledger work)."""
    twin = Entry(*_entry_values(entry))
    for name, value in changes.items():
        setattr(twin, name, value)  # slots: an unknown name raises AttributeError
    return twin


class LedgerStore(Protocol):
    """Persistence for ledger entries; every write is conditional, so the protocol stays atomic."""

    def insert(self, entry: Entry) -> Entry | None:
        """Create the entry if its key is absent; the stored entry (with etag), or None if it exists."""

    def get(self, scope: Scope, key: str) -> Entry | None: ...

    def replace(self, entry: Entry) -> Entry | None:
        """Overwrite if `entry.etag` still matches; the stored entry, or None if someone changed it."""

    def delete(self, entry: Entry) -> bool:
        """Remove if `entry.etag` still matches."""

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]: ...

    def insert_many(self, entries: list[Entry]) -> list[Entry] | None:
        """Create all of one partition's entries at once, or none (None): then the caller goes one by one."""

    def replace_many(self, entries: list[Entry]) -> list[Entry] | None:
        """Overwrite all (each etag must match) or none (None): then the caller goes one by one."""


class LedgerUnavailable(Exception):
    """The ledger could not be read or written: nothing may be posted without it."""


@dataclass(slots=True)
class Decision:
    """What the ledger says to do with a payment before posting it."""

    action: Literal["post", "done", "in-flight", "conflict", "ambiguous"]
    entry: Entry | None = None
    found: dict[str, Any] | None = None  # a payment adopted at the target after reconciliation
    reason: str = ""


class Ledger:
    """The exactly-once protocol over a `LedgerStore`."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        lease: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=30),
        clock: Callable[[], datetime] = _now,
    ):
        self.store = store
        self.lease = lease
        self.retention = retention
        self.clock = clock

    # -- before posting -----------------------------------------------------------------------

    def claim(
        self,
        scope: Scope,
        key: str,
        payment: CustomerPayment,
        find: Callable[[dict[str, str]], list[dict[str, Any]]],
        *,
        replay_rejections: bool = False,
        payment_fingerprint: str | None = None,
    ) -> Decision:
        """Claim `key` for posting, or say why not. `find` searches the target by natural key."""
        payload = payment.payload()
        now = self.clock()
        fresh = Entry(
            scope=scope,
            key=key,
            state="claimed",
            fingerprint=payment_fingerprint or fingerprint(payload),
            claimed_until=now + self.lease,
            created_at=now,
            updated_at=now,
            natural=natural_key(payload),
        )
        for _ in range(5):
            stored = self.store.insert(fresh)
            if stored is not None:
                return Decision("post", stored)
            existing = self.store.get(scope, key)
            if existing is None:
                continue  # released between our insert and get: try again
            if existing.updated_at + self.retention < now:
                taken = self._take_over(existing, fresh)
                if taken is None:
                    continue
                return Decision("post", taken)
            if existing.fingerprint != fresh.fingerprint:
                return Decision(
                    "conflict", existing, reason="the key was used before for a different payment"
                )
            if existing.state == "posted":
                return Decision("done", existing)
            if existing.state == "rejected":
                if replay_rejections:
                    return Decision("done", existing)
                taken = self._take_over(existing, fresh)  # nothing exists at the target: safe to retry
                if taken is None:
                    return Decision("in-flight", existing)
                return Decision("post", taken)
            if existing.state == "claimed" and existing.claimed_until > now:
                return Decision("in-flight", existing)
            # A stale claim (its worker died) or an ambiguous outcome: it may exist at the target.
            taken = self._take_over(existing, fresh)
            if taken is None:
                return Decision("in-flight", existing)
            return self._reconcile(taken, find)
        raise LedgerUnavailable(f"could not claim {key}: the entry kept changing")

    def _take_over(self, existing: Entry, fresh: Entry) -> Entry | None:
        taken = evolve(
            existing,
            state="claimed",
            fingerprint=fresh.fingerprint,
            claimed_until=fresh.claimed_until,
            updated_at=fresh.updated_at,
            attempts=existing.attempts + 1,
            natural=fresh.natural or existing.natural,
        )
        return self.store.replace(taken)

    def _reconcile(self, entry: Entry, find: Callable[[dict[str, str]], list[dict[str, Any]]]) -> Decision:
        if not (entry.natural.get("documentNumber") or entry.natural.get("externalDocumentNumber")):
            marked = self.mark(entry, state="ambiguous")
            return Decision(
                "ambiguous",
                marked,
                reason="an earlier attempt may have created it and it has no documentNumber or "
                "externalDocumentNumber to look it up by: check the journal, then resolve it with "
                "`python -m payments ledger resolve`",
            )
        try:
            matches = find(entry.natural)
        except Exception as exc:  # the target cannot be searched now: stay ambiguous, do not post
            marked = self.mark(entry, state="ambiguous")
            return Decision("ambiguous", marked, reason=f"could not search the target to reconcile: {exc}")
        if len(matches) == 1:
            found = matches[0]
            self.record_posted(entry, found, status=201)
            log.info("reconciled %s: adopted %s found at the target", entry.key, found.get("id"))
            return Decision("done", entry, found=found)
        if len(matches) > 1:
            marked = self.mark(entry, state="ambiguous")
            return Decision("ambiguous", marked, reason=f"{len(matches)} payments at the target match it")
        log.info("reconciled %s: not at the target, posting", entry.key)
        return Decision("post", entry)

    # -- after posting ------------------------------------------------------------------------

    def claim_many(self, scope: Scope, items: list[tuple[str, CustomerPayment, str]]) -> list[Entry] | None:
        """Claim many new payments (key, payment, fingerprint) in one write when none is known yet;
        None when any key exists already (nothing was written: claim them one by one)."""
        now = self.clock()
        fresh = [
            Entry(
                scope=scope,
                key=key,
                state="claimed",
                fingerprint=fp,
                claimed_until=now + self.lease,
                created_at=now,
                updated_at=now,
                natural=natural_key(payment.payload()),
            )
            for key, payment, fp in items
        ]
        return self.store.insert_many(fresh) if fresh else []

    def commit_many(self, changes: list[tuple[Entry, dict[str, Any]]]) -> None:
        """Record many outcomes in one write, falling back to one by one if any entry changed."""
        if not changes:
            return
        now = self.clock()
        updated = [evolve(entry, updated_at=now, **change) for entry, change in changes]
        stored = self.store.replace_many(updated)
        if stored is None:
            for entry, change in changes:
                self.mark(entry, **change)
            return
        for (entry, _), new in zip(changes, stored, strict=True):
            entry.etag = new.etag

    @staticmethod
    def posted(created: dict[str, Any], *, status: int) -> dict[str, Any]:
        body = codec.dumps(created)
        return {
            "state": "posted",
            "target_id": str(created.get("id") or "") or None,
            "response_status": status,
            "response_body": body if len(body) <= MAX_STORED_BODY else None,
            "error_code": None,
            "error_message": None,
        }

    @staticmethod
    def rejected(*, status: int | None, code: str | None, message: str) -> dict[str, Any]:
        return {
            "state": "rejected",
            "response_status": status,
            "error_code": code,
            "error_message": message[:2000],
        }

    @staticmethod
    def ambiguous(*, client_request_id: str | None, message: str) -> dict[str, Any]:
        return {"state": "ambiguous", "client_request_id": client_request_id, "error_message": message}

    def mark(self, entry: Entry, **changes: Any) -> Entry:
        """Write changes to an entry (optimistically: if it changed meanwhile, it is left as it is)."""
        updated = evolve(entry, updated_at=self.clock(), **changes)
        stored = self.store.replace(updated)
        if stored is None:
            log.error("ledger entry %s changed under us; leaving it as it is", entry.key)
            return updated
        entry.etag = stored.etag
        return stored

    def record_posted(self, entry: Entry, created: dict[str, Any], *, status: int) -> Entry:
        return self.mark(entry, **self.posted(created, status=status))

    def record_ambiguous(self, entry: Entry, *, client_request_id: str | None, message: str) -> Entry:
        return self.mark(entry, **self.ambiguous(client_request_id=client_request_id, message=message))

    def release(self, entry: Entry) -> None:
        """Nothing was created (the target was unavailable): forget the claim so a retry may post."""
        if not self.store.delete(entry):
            log.error(
                "could not release ledger entry %s; it becomes reclaimable when its lease ends", entry.key
            )

    # -- people -------------------------------------------------------------------------------

    def attention(self) -> Iterator[Entry]:
        """Entries a person may need to look at: ambiguous ones, and claims whose lease ran out."""
        now = self.clock()
        for entry in self.store.scan({"ambiguous", "claimed"}):
            if entry.state == "ambiguous" or entry.claimed_until <= now:
                yield entry

    def resolve(self, scope: Scope, key: str, *, target_id: str | None) -> Entry:
        """A person checked the target: record it as posted (with its id) or as not posted (forgotten)."""
        entry = self.store.get(scope, key)
        if entry is None:
            raise KeyError(key)
        if target_id:
            return self.mark(entry, state="posted", target_id=target_id, error_message="resolved by hand")
        if not self.store.delete(entry):
            raise LedgerUnavailable(f"{key} changed while resolving it; look again")
        return evolve(entry, state="claimed")

    def purge(self) -> int:
        """Delete entries older than the retention period; returns how many."""
        limit = self.clock() - self.retention
        count = 0
        for entry in self.store.scan():
            if entry.updated_at < limit and entry.state != "claimed" and self.store.delete(entry):
                count += 1
        return count


def natural_key(payload: dict[str, Any]) -> dict[str, str]:
    """What identifies a payment at the target when we must look for it (all as text)."""
    out: dict[str, str] = {}
    for name in ("documentNumber", "externalDocumentNumber", "customerNumber", "customerId"):
        if payload.get(name):
            out[name] = str(payload[name])
    if "amount" in payload:
        out["amount"] = codec.format_decimal(Decimal(payload["amount"]))
    return out


def odata_filter(natural: dict[str, str]) -> str:
    """The `$filter` that finds a payment by its natural key (Code fields upper-case, as stored)."""
    clauses = []
    for name in ("documentNumber", "externalDocumentNumber", "customerNumber"):
        if natural.get(name):
            literal = natural[name].upper().replace("'", "''")
            clauses.append(f"{name} eq '{literal}'")
    if natural.get("customerId") and not natural.get("customerNumber"):
        clauses.append(f"customerId eq {natural['customerId']}")
    if natural.get("amount"):
        clauses.append(f"amount eq {natural['amount']}")
    return " and ".join(clauses)


# -- stores -----------------------------------------------------------------------------------------


class MemoryLedgerStore:
    """An in-process store: for command-line runs against the sandbox, where no storage account exists.
    Rows are kept as tuples of an entry's fields (a snapshot nobody can change); callers get new
    entries built from them, as from a real store."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._version = 0

    def _stamp(self, entry: Entry) -> Entry:
        self._version += 1
        row = (*_entry_values(entry)[:-1], str(self._version))  # etag is the last field
        self._rows[(entry.scope.partition, entry.key)] = row
        return Entry(*row)

    def _etag(self, entry: Entry) -> str | None:
        row = self._rows.get((entry.scope.partition, entry.key))
        return None if row is None else row[-1]

    def insert(self, entry: Entry) -> Entry | None:
        with self._lock:
            if (entry.scope.partition, entry.key) in self._rows:
                return None
            return self._stamp(entry)

    def get(self, scope: Scope, key: str) -> Entry | None:
        with self._lock:
            row = self._rows.get((scope.partition, key))
            return Entry(*row) if row else None

    def replace(self, entry: Entry) -> Entry | None:
        with self._lock:
            if entry.etag is None or self._etag(entry) != entry.etag:
                return None
            return self._stamp(entry)

    def delete(self, entry: Entry) -> bool:
        with self._lock:
            if entry.etag is None or self._etag(entry) != entry.etag:
                return False
            del self._rows[(entry.scope.partition, entry.key)]
            return True

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]:
        with self._lock:
            entries = [Entry(*row) for row in self._rows.values()]
        yield from (e for e in entries if states is None or e.state in states)

    def insert_many(self, entries: list[Entry]) -> list[Entry] | None:
        with self._lock:
            if any((e.scope.partition, e.key) in self._rows for e in entries):
                return None
            return [self._stamp(e) for e in entries]

    def replace_many(self, entries: list[Entry]) -> list[Entry] | None:
        with self._lock:
            if any(e.etag is None or self._etag(e) != e.etag for e in entries):
                return None
            return [self._stamp(e) for e in entries]


class TableLedgerStore:
    """Azure Table Storage: PartitionKey = company_journal, RowKey = payment key; etags make every
    write conditional (create fails if present; update and delete require the etag last read)."""

    def __init__(self, table: Any):  # azure.data.tables.TableClient
        self.table = table
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                self.table.create_table()
            except ResourceExistsError:
                pass
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
            etag=entity.metadata.get("etag"),
        )

    def _call(self, fn: Callable[[], Any]) -> Any:
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import TableTransactionError

        self._ensure()
        try:
            return fn()
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError, TableTransactionError):
            raise
        except AzureError as exc:
            raise LedgerUnavailable(f"ledger table unavailable: {exc.__class__.__name__}: {exc}") from None

    def insert(self, entry: Entry) -> Entry | None:
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self._call(lambda: self.table.create_entity(self._to_entity(entry)))
        except ResourceExistsError:
            return None
        return evolve(entry, etag=meta.get("etag"))

    def get(self, scope: Scope, key: str) -> Entry | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._from_entity(self._call(lambda: self.table.get_entity(scope.partition, key)))
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
                )
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
                )
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    # An entity group transaction: one request, all or nothing, at most 100 entities of one
    # partition and 4 MiB; beyond those limits (or on any conflict) the caller goes one by one.
    _MAX_TRANSACTION = 100
    _MAX_TRANSACTION_CHARS = 3_000_000

    def _transaction(self, operations: list[tuple[Any, ...]]) -> list[Any] | None:
        from azure.data.tables import TableTransactionError

        size = sum(len(str(op[1].get("ResponseBody", ""))) + 1000 for op in operations)
        if len(operations) > self._MAX_TRANSACTION or size > self._MAX_TRANSACTION_CHARS:
            return None
        try:
            return list(self._call(lambda: self.table.submit_transaction(operations)))
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

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]:
        if states:
            query = " or ".join(f"State eq '{s}'" for s in sorted(states))
            pages = self._call(lambda: self.table.query_entities(query))
        else:
            pages = self._call(lambda: self.table.list_entities())
        for entity in pages:
            yield self._from_entity(entity)
