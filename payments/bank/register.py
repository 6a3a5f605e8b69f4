"""The register of bank credits: every credit the relay decided, per company and bank account, across
journals, file types and time, so that none is posted twice (`identity` says when two readings are one).

One Azure table in the function's own storage account (`PAYMENTS_BANK_TABLE`); a partition per company
and bank account (the account as a digest, never the IBAN). A credit is four kinds of rows, written
together in one transaction (all or none):

- `c|<credit>`: the credit (named by the key of its first reading), the journal it was decided for, its
  state (`decided`, then `posted` once every line was created; `skipped` when the operator chose so), the
  file and place it was first read from;
- `k|<reading key>` and `r|<family>|<reference digest>`: how a later reading finds it at once;
- `d|<booking date>|<amount>|<currency>|<slot>`: how a reading without the same key or reference finds
  the credits it could be (`identity.compare`). The slot is the number of credits registered before
  with those facts, so two workers registering two readings of one credit at the same moment collide on
  it: the second then compares against the first instead of posting beside it.

Rows are kept `PAYMENTS_BANK_RETENTION_DAYS` (400) after their last change, as long as a bank may send a
statement again, and purged with the credits' plans by the nightly timer.
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

    account: str
    credit: str
    state: State
    ids: tuple[str, ...] = ()


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


def _facts(identity: Identity) -> str:
    return f"d|{identity.booking_date}|{identity.amount}|{identity.currency}|"


def _reference_row(identity: Identity) -> str:
    return f"r|{identity.family}|{hashlib.sha256(identity.reference.encode('utf-8')).hexdigest()[:40]}"


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

    def _get(self, pk: str, row: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self._call(lambda: self.table.get_entity(pk, row)))
        except ResourceNotFoundError:
            return None

    def _credit(self, pk: str, credit: str) -> Registered | None:
        row = self._get(pk, f"c|{credit}")
        return None if row is None else _registered(row)

    # -- reading ----------------------------------------------------------------------------------

    def resolve(self, identity: Identity, reading: str) -> Resolution:
        """Whether this reading (`reading`: the file being read, and when) is a credit registered before."""
        pk = partition(self.company, identity.account)
        for row in (f"k|{identity.key}", _reference_row(identity) if identity.reference else None):
            if row is None:
                continue
            alias = self._get(pk, row)
            if alias is None:
                continue
            found = self._credit(pk, alias["Credit"])
            if found is None:  # purged meanwhile: the alias goes with it
                continue
            verdict, reason = compare(identity, found.identity)
            if row.startswith("r|") and verdict == "different":
                return Resolution(
                    "uncertain",
                    reason=f"the bank's reference names a credit read before with {reason}",
                    candidates=[found],
                )
            return Resolution("same", found, reason="the same reading" if row.startswith("k|") else reason)
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        lo = _facts(identity)
        params = {"pk": pk, "lo": lo, "hi": lo + "~"}
        rows = list(
            self._call(lambda: self.table.query_entities(query, parameters=params, results_per_page=100))
        )
        same: list[tuple[Registered, str]] = []
        maybe: list[Registered] = []
        for row in rows[:MAX_CANDIDATES]:
            if row.get("Reading") == reading:
                continue  # registered by this very reading: another credit of the same file
            candidate = _registered(row)
            verdict, reason = compare(identity, candidate.identity)
            if verdict == "same":
                same.append((candidate, reason))
            elif verdict == "maybe":
                maybe.append(candidate)
        if len(same) == 1 and not maybe:
            found = self._credit(pk, same[0][0].credit) or same[0][0]
            return Resolution("same", found, reason=same[0][1])
        if same or maybe:
            return Resolution(
                "uncertain",
                reason="it may be a credit read before (same booking date and amount, nothing that tells "
                "them apart for sure)",
                candidates=[c for c, _ in same] + maybe,
            )
        return Resolution("new", slot=len(rows))

    # -- writing ----------------------------------------------------------------------------------

    def _merge(self, entity: dict[str, Any]) -> None:
        from azure.data.tables import UpdateMode

        self._call(lambda: self.table.update_entity(entity, mode=UpdateMode.MERGE))

    def register(
        self, identity: Identity, *, journal: str, reading: str, first: str, slot: int, state: State
    ) -> bool:
        """Record a new credit (every row at once); False when a row exists already (another reading
        registered it, or one like it, meanwhile: resolve again)."""
        from azure.data.tables import TableTransactionError

        pk = partition(self.company, identity.account)
        now = self.clock()
        body = {
            "Credit": identity.key,
            "Journal": journal,
            "State": state,
            "First": first[:1000],
            "Reading": reading[:1000],
            "Identity": codec.dumps(identity.to_json()),
            "UpdatedAt": now,
        }
        # The credit and its facts row carry what `resolve` compares; the key and reference rows only
        # point to the credit.
        whole = [f"c|{identity.key}", f"{_facts(identity)}{slot:04d}"]
        pointers = [f"k|{identity.key}"] + ([_reference_row(identity)] if identity.reference else [])
        pointer = {"Credit": identity.key, "Journal": journal, "UpdatedAt": now}
        operations = [("create", {"PartitionKey": pk, "RowKey": row, **body}) for row in whole]
        operations += [("create", {"PartitionKey": pk, "RowKey": row, **pointer}) for row in pointers]
        try:
            self._call(lambda: self.table.submit_transaction(operations))
        except TableTransactionError:
            return False
        return True

    def alias(self, identity: Identity, credit: Registered) -> None:
        """Let later readings like this one find the credit at once (by key and reference)."""
        from azure.core.exceptions import ResourceExistsError

        pk = partition(self.company, identity.account)
        rows = [f"k|{identity.key}"] + ([_reference_row(identity)] if identity.reference else [])
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
            pk = partition(self.company, change.account)
            by_partition.setdefault(pk, []).append(
                {
                    "PartitionKey": pk,
                    "RowKey": f"c|{change.credit}",
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
                        log.warning("bank credit %s is not in the register", entity["RowKey"][2:])


def purge(table: Any, older_than: datetime) -> int:
    """Forget every credit untouched since `older_than`, with all its rows; how many credits."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    removed = 0
    query = "RowKey ge 'c|' and RowKey lt 'c}' and UpdatedAt lt @t"
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


def _registered(row: dict[str, Any]) -> Registered:
    return Registered(
        credit=str(row["Credit"]),
        journal=str(row.get("Journal", "")),
        state=row.get("State", "decided"),
        first=str(row.get("First", "")),
        ids=tuple(str(row.get("TargetIds") or "").split()),
        identity=Identity.from_json(codec.loads(row["Identity"])),
    )
