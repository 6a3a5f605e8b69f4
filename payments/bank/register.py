"""The register of bank credits: every credit the relay decided, per company and bank account, across
journals, file types and time, so that none is posted twice (`identity` says when two readings are one).

One Azure table in the function's own storage account (`PAYMENTS_BANK_TABLE`); a partition per company
and bank account (the account as a digest, never the IBAN). Two readings can only be one credit when
their booking date, amount and currency agree, so every row of a credit starts with those facts, and one
range query over them finds all a reading needs. A credit is four rows, written in one transaction (all
or none):

- `<facts>|c|<credit>`: the credit (named by the key of its first reading), the journal it was decided
  for, its state (`decided`, then `posted` once every line was created, with their ids; `skipped` when the
  operator chose so), the file and place it was first read from;
- `<facts>|k|<reading key>` and `<facts>|r|<family>|<reference digest>`: how a later reading of the same
  basis, or with the bank's reference, finds it at once;
- `<facts>|d|<slot>`: the credit's identity, compared with readings that have neither. The slot is the
  number of credits registered with those facts before, so two workers registering two readings of one
  credit at the same moment collide on it: the second then compares against the first instead of posting
  beside it.

A reading costs one query; a new credit one transaction more, and its state one write per hundred. Rows
are kept `PAYMENTS_BANK_RETENTION_DAYS` (400) after the credit's last change, as long as a bank may send
a statement again, and purged with the credits' plans by the nightly timer.

Longer than 400 lines: the table's layout, the reading's cache of a booking date and the transactions
that write a credit's rows are one protocol; a split would spread one invariant over modules.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .. import codec
from ..errors import LedgerUnavailable
from ..storage import make_sure
from .identity import Identity, compare

log = logging.getLogger("payments.bank")

State = Literal["decided", "posted", "skipped"]
Kind = Literal["new", "same", "uncertain"]
MAX_CANDIDATES = 50  # credits with the same booking date, amount and currency looked at per reading
CREDITS_PER_TRANSACTION = 25  # four rows each: an entity group transaction takes 100
PREFETCH_ROWS = 60_000  # rows of one account's day kept per reading (15,000 credits: about 20 MB)
_RANGE = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
_KEPT = ["RowKey", "Credit", "Journal", "State", "First", "TargetIds", "Reading", "Identity"]


@dataclass(frozen=True, slots=True)
class Registered:
    """A credit in the register."""

    credit: str  # its ledger key (the key of its first reading)
    journal: str
    state: State
    first: str  # where it was first read: the file's name and the place in it
    identity: Identity
    ids: tuple[str, ...] = ()  # its payments' ids at the target, once posted


@dataclass(frozen=True, slots=True)
class Change:
    """A credit's new state, to record."""

    identity: Identity  # the reading that decided it (its account and facts name the credit's rows)
    credit: str
    state: State
    ids: tuple[str, ...] = ()


@dataclass(slots=True)
class _Facts:
    """The credits registered with one booking date, amount and currency, as `resolve` compares them:
    where each reading key and reference points, each credit's journal, state, first reading and ids,
    and each slot's credit, reading and identity (kept as its JSON text until compared)."""

    pointers: dict[str, str] = field(default_factory=dict)  # "k|<key>" or "r|<family>|<digest>" -> credit
    credits: dict[str, tuple[str, Any, str, tuple[str, ...]]] = field(default_factory=dict)
    slots: list[tuple[str, str, str]] = field(default_factory=list)  # (credit, reading, identity JSON)

    def add(self, rest: str, row: dict[str, Any]) -> None:
        credit = str(row.get("Credit", ""))
        if rest.startswith(("k|", "r|")):
            self.pointers[rest] = credit
        elif rest.startswith("c|"):
            ids = tuple(str(row.get("TargetIds") or "").split())
            first = str(row.get("First", ""))
            self.credits[credit] = (str(row.get("Journal", "")), row.get("State", "decided"), first, ids)
        elif rest.startswith("d|"):
            self.slots.append((credit, str(row.get("Reading", "")), str(row.get("Identity", ""))))

    def registered(self, credit: str) -> Registered | None:
        found = self.credits.get(credit)
        identity = next((i for c, _, i in self.slots if c == credit), None)
        if found is None or identity is None:
            return None
        journal, state, first, ids = found
        return Registered(credit, journal, state, first, Identity.from_json(codec.loads(identity)), ids)


@dataclass(slots=True)
class _Day:
    """One account's booking date as the register holds it, kept for a reading (`PREFETCH_ROWS` at
    most), by facts."""

    facts: dict[str, _Facts] = field(default_factory=dict)
    complete: bool = True  # False: too many rows to keep; each credit is looked up on its own


@dataclass(frozen=True, slots=True)
class New:
    """A credit to register: its first reading's identity, its slot among credits of those facts, its
    state, where it was read."""

    identity: Identity
    slot: int
    state: State
    first: str


@dataclass(slots=True)
class Resolution:
    """What the register says of one reading: a new credit (and the slot to register it in), a credit
    registered before, or one it cannot tell (the candidates it could be, for the operator)."""

    kind: Kind
    credit: Registered | None = None
    slot: int = 0
    reason: str = ""
    candidates: list[Registered] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def partition(company: str, account: str) -> str:
    return f"{company}_{hashlib.sha256(account.encode('utf-8')).hexdigest()[:24]}"


def facts(identity: Identity) -> str:
    """The start of every row of a credit: what two readings of one credit always share."""
    return f"{identity.booking_date}|{identity.amount}|{identity.currency}|"


def _reference_row(identity: Identity) -> str:
    digest = hashlib.sha256(identity.reference.encode("utf-8")).hexdigest()[:40]
    return f"{facts(identity)}r|{identity.family}|{digest}"


class BankRegister:
    """The register over an Azure Table (`azure.data.tables.TableClient`)."""

    def __init__(
        self,
        table: Any,
        company: str,
        *,
        retention: timedelta = timedelta(days=400),
        clock: Callable[[], datetime] = _now,
    ):
        self.table = table
        self.company = company
        self.retention = retention
        self.clock = clock
        self._ready = False
        self._days: dict[tuple[str, str], _Day] = {}  # (partition, booking date) -> what it holds

    def _ensure(self) -> None:
        if not self._ready:
            make_sure(self.table.create_table)
            self._ready = True

    def _call(self, fn: Callable[[], Any]) -> Any:
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
        from azure.data.tables import TableTransactionError

        try:
            self._ensure()
            return fn()
        except (ResourceExistsError, ResourceNotFoundError, TableTransactionError):
            raise
        except AzureError as exc:
            raise LedgerUnavailable(f"bank register unavailable: {type(exc).__name__}") from None

    # -- reading ----------------------------------------------------------------------------------

    def _day(self, identity: Identity) -> _Day:
        """What this reading's account and booking date hold, read once per reading: a new statement's
        credits then cost no query each, nor does a statement read again."""
        pk, date = partition(self.company, identity.account), identity.booking_date
        day = self._days.get((pk, date))
        if day is None:
            day = self._days[(pk, date)] = _Day()
            params = {"pk": pk, "lo": f"{date}|", "hi": f"{date}}}"}
            found = self._call(lambda: self.table.query_entities(_RANGE, parameters=params, select=_KEPT))
            for n, row in enumerate(found):
                if n >= PREFETCH_ROWS:  # too many to keep: its credits are looked up one by one
                    day.complete = False
                    day.facts.clear()
                    break
                date_, amount, currency, rest = row["RowKey"].split("|", 3)
                day.facts.setdefault(f"{date_}|{amount}|{currency}|", _Facts()).add(rest, row)
        return day

    def _remember(self, new: New, journal: str, reading: str) -> None:
        """A credit registered now: its day, when kept, knows it."""
        identity = new.identity
        day = self._days.get((partition(self.company, identity.account), identity.booking_date))
        if day is None or not day.complete:
            return
        held = day.facts.setdefault(facts(identity), _Facts())
        held.pointers[f"k|{identity.key}"] = identity.key
        if identity.reference:
            held.pointers[_reference_row(identity)[len(facts(identity)) :]] = identity.key
        held.credits[identity.key] = (journal, new.state, new.first, ())
        held.slots.append((identity.key, reading, codec.dumps(identity.to_json())))

    def _facts(self, identity: Identity) -> _Facts:
        """The credits registered with this reading's facts: from the day kept, else one query."""
        day = self._day(identity)
        lo = facts(identity)
        if day.complete:
            return day.facts.get(lo) or _Facts()
        held = _Facts()
        params = {"pk": partition(self.company, identity.account), "lo": lo, "hi": lo + "~"}
        for row in self._call(lambda: list(self.table.query_entities(_RANGE, parameters=params))):
            held.add(row["RowKey"][len(lo) :], row)
        return held

    def resolve(self, identity: Identity, reading: str) -> Resolution:
        """Whether this reading (`reading`: the file being read, and when) is a credit registered before."""
        held = self._facts(identity)
        pointers = [("k|" + identity.key, "the same reading")]
        if identity.reference:
            pointers.append((_reference_row(identity)[len(facts(identity)) :], ""))
        for name, said in pointers:
            credit = held.pointers.get(name)
            found = held.registered(credit) if credit else None
            if found is None:
                continue
            verdict, reason = compare(identity, found.identity)
            if name.startswith("r|") and verdict == "different":
                return Resolution(
                    "uncertain",
                    reason=f"the bank's reference names a credit read before with {reason}",
                    candidates=[found],
                )
            return Resolution("same", found, reason=said or reason)
        same: list[tuple[Registered, str]] = []
        maybe: list[Registered] = []
        for credit, by, _ in held.slots[:MAX_CANDIDATES]:
            candidate = held.registered(credit)
            if by == reading or candidate is None:
                continue  # registered by this very reading: another credit of the same file
            verdict, reason = compare(identity, candidate.identity)
            if verdict == "same":
                same.append((candidate, reason))
            elif verdict == "maybe":
                maybe.append(candidate)
        if len(same) == 1 and not maybe:
            return Resolution("same", same[0][0], reason=same[0][1])
        slot = len(held.slots)
        if same or maybe:
            return Resolution(
                "uncertain",
                reason="it may be a credit read before (same booking date and amount, nothing that tells "
                "them apart for sure)",
                candidates=[c for c, _ in same] + maybe,
                slot=slot,
            )
        return Resolution("new", slot=slot)

    # -- writing ----------------------------------------------------------------------------------

    def _merge(self, entity: dict[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        self._call(lambda: self.table.update_entity(entity, mode=UpdateMode.MERGE))

    def _operations(self, new: New, journal: str, reading: str, now: datetime) -> list[tuple[Any, ...]]:
        """The rows of a new credit, as transaction operations (the credit and its slot carry what
        `resolve` compares; the key and reference rows only point)."""
        identity = new.identity
        pk, lo = partition(self.company, identity.account), facts(identity)
        body = {
            "Credit": identity.key,
            "Journal": journal,
            "State": new.state,
            "First": new.first[:1000],
            "Reading": reading[:1000],
            "Identity": codec.dumps(identity.to_json()),
            "UpdatedAt": now,
        }
        pointer = {"Credit": identity.key, "Journal": journal, "UpdatedAt": now}
        pointers = [f"{lo}k|{identity.key}"] + ([_reference_row(identity)] if identity.reference else [])
        return [
            ("create", {"PartitionKey": pk, "RowKey": f"{lo}c|{identity.key}", "Kind": "credit", **body}),
            ("create", {"PartitionKey": pk, "RowKey": f"{lo}d|{new.slot:04d}", **body}),
            *(("create", {"PartitionKey": pk, "RowKey": row, **pointer}) for row in pointers),
        ]

    def register(self, new: list[New], *, journal: str, reading: str) -> set[str]:
        """Record new credits, each all at once (credits of one account together, 25 to a transaction):
        the keys of those that could not be, because a row existed already (another reading registered
        them, or one like them, meanwhile: resolve them again)."""
        from azure.data.tables import TableTransactionError

        now = self.clock()
        failed: set[str] = set()
        by_partition: dict[str, list[New]] = {}
        for item in new:
            by_partition.setdefault(partition(self.company, item.identity.account), []).append(item)
        for items in by_partition.values():
            for start in range(0, len(items), CREDITS_PER_TRANSACTION):
                group = items[start : start + CREDITS_PER_TRANSACTION]
                operations = [op for item in group for op in self._operations(item, journal, reading, now)]
                try:
                    self._call(lambda operations=operations: self.table.submit_transaction(operations))
                except TableTransactionError:
                    if len(group) == 1:
                        failed.add(group[0].identity.key)
                        continue
                    failed |= self.register(group[:1], journal=journal, reading=reading)
                    for item in group[1:]:
                        failed |= self.register([item], journal=journal, reading=reading)
                    continue
                for item in group:
                    self._remember(item, journal, reading)
        return failed

    def alias(self, identity: Identity, credit: Registered) -> None:
        """Let later readings like this one find the credit at once (by key and reference)."""
        from azure.core.exceptions import ResourceExistsError

        pk = partition(self.company, identity.account)
        rows = [f"{facts(identity)}k|{identity.key}"]
        rows += [_reference_row(identity)] if identity.reference else []
        for row in rows:
            entity = {
                "PartitionKey": pk,
                "RowKey": row,
                "Credit": credit.credit,
                "Journal": credit.journal,
                "UpdatedAt": self.clock(),
            }
            try:
                self._call(lambda entity=entity: self.table.create_entity(entity))
            except ResourceExistsError:
                pass

    def mark(self, changes: list[Change]) -> None:
        """Credits' new states (posted once every line exists at the target, with their ids there): one
        transaction per partition and hundred credits; one by one when a credit is missing."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableTransactionError, UpdateMode

        now = self.clock()
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for change in changes:
            pk = partition(self.company, change.identity.account)
            by_partition.setdefault(pk, []).append(
                {
                    "PartitionKey": pk,
                    "RowKey": f"{facts(change.identity)}c|{change.credit}",
                    "State": change.state,
                    "UpdatedAt": now,
                    **({"TargetIds": " ".join(change.ids)[:4000]} if change.ids else {}),
                }
            )
        for entities in by_partition.values():
            for start in range(0, len(entities), 100):
                chunk = entities[start : start + 100]
                operations = [("update", e, {"mode": UpdateMode.MERGE}) for e in chunk]
                try:
                    self._call(lambda operations=operations: self.table.submit_transaction(operations))
                    continue
                except TableTransactionError:
                    pass
                for entity in chunk:
                    try:
                        self._merge(entity)
                    except ResourceNotFoundError:
                        log.warning("bank credit %s is not in the register", entity["RowKey"])


def purge(table: Any, older_than: datetime) -> int:
    """Forget every credit untouched since `older_than`, with all its rows; how many credits."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    removed = 0
    query = "Kind eq 'credit' and UpdatedAt lt @t"
    try:
        make_sure(table.create_table)
        for credit in list(table.query_entities(query, parameters={"t": older_than})):
            rows = table.query_entities(
                "PartitionKey eq @pk and Credit eq @credit",
                parameters={"pk": credit["PartitionKey"], "credit": credit["Credit"]},
            )
            for row in list(rows):
                try:
                    table.delete_entity(row["PartitionKey"], row["RowKey"])
                except ResourceNotFoundError:
                    pass
            removed += 1
    except AzureError as exc:
        raise LedgerUnavailable(f"bank register unavailable: {type(exc).__name__}") from None
    return removed
