"""The register's side of a file's credits: one decision per bank credit, whoever reads it. A credit
new to the register is decided here and registered when its chunk is posted; one decided before (posted,
skipped, for another journal) is reported as the register has it; one the register is unsure of goes to
review.

Mixed into `credits.CreditFlow`, whose register, reading, report and review it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..bank.identity import Identity
from ..bank.posting import Credit
from ..bank.register import BankRegister, Change, New, Registered, State, facts
from ..errors import LedgerUnavailable
from ..ledger import Scope
from .report import Report
from .tally import Summary, Tally

SKIPPED = "the operator chose skip"
ELSEWHERE = "decided for another journal"
BUSY = "being decided by another reading"


class Registering:
    """Deciding each credit once against the bank register (part of `CreditFlow`)."""

    register: BankRegister | None
    reading: str
    scope: Scope
    report: Report
    _slots: dict[str, tuple[int, bool]]
    _reserved: dict[str, int]
    _marks: list[Change]
    summaries: dict[int, Summary]
    to_review: Callable[..., None]
    _told: Callable[[str, Credit], None]

    def claim(self, index: int, credit: Credit, account: str = "", *, chosen: bool = False) -> Credit | None:
        """The credit to decide, under the key the register knows it by; None when it was decided before
        (posted, skipped, or for another journal) or may have been (then it goes to review), and is
        reported so. `chosen`: the operator decided it, having seen the candidates an uncertain match
        named: it is then a credit of its own."""
        if self.register is None or credit.identity is None:
            return credit
        identity = Identity.from_json(credit.identity)
        found = self.register.resolve(identity, self.reading)
        if found.kind == "new" or (found.kind == "uncertain" and chosen):
            # Credits of this reading with the same facts take the next slots: they are registered
            # together when posted, and each needs its own.
            lo = facts(identity)
            slot = max(found.slot, self._reserved.get(lo, 0))
            self._reserved[lo] = slot + 1
            self._slots[credit.key] = (slot, chosen)
            return credit
        if found.kind == "uncertain":
            named = "; ".join(f"{c.first} (journal {c.journal}, {c.state})" for c in found.candidates[:5])
            self.to_review(
                index,
                credit,
                account,
                f"{found.reason}: {named}. If it is that credit, choose skip; if not, choose how to post it",
            )
            return None
        registered = found.credit
        assert registered is not None
        if registered.credit != identity.key:
            self.register.alias(identity, registered)
        credit = replace(credit, key=registered.credit)
        return credit if self._still_open(index, credit, registered) else None

    def _still_open(self, index: int, credit: Credit, registered: Registered) -> bool:
        """True when this reading goes on deciding a credit registered before: it was decided for this
        journal and is not posted yet. Otherwise it is reported as the register has it."""
        elsewhere = registered.journal != self.scope.journal_id
        if registered.state == "decided" and not elsewhere:
            return True
        summary = self.summaries[index]
        where = f"first read from {registered.first}" + (
            f", in journal {registered.journal}" if elsewhere else ""
        )
        detail: dict[str, Any] = {"key": credit.key, "amount": credit.amount}
        if registered.state == "posted":
            summary.posted_before.add(credit.amount)
            ids = " ".join(registered.ids) or None
            note = f"posted before ({where})"
            self.report.add(credit.location, "skipped", None, **detail, id=ids, note=note)
        elif registered.state == "skipped":
            summary.skipped.setdefault(SKIPPED, Tally()).add(credit.amount)
            self.report.add(credit.location, "skipped", None, **detail, reason=SKIPPED, note=where)
        else:
            summary.skipped.setdefault(ELSEWHERE, Tally()).add(credit.amount)
            self.report.add(
                credit.location,
                "skipped",
                None,
                **detail,
                reason=ELSEWHERE,
                note=f"decided for journal {registered.journal} ({where}): it is posted there, never here; "
                "drop the statement into that journal's folder to finish it",
            )
        self._told("skipped", credit)
        return False

    def _registered(self, index: int, credit: Credit, state: State) -> Credit | None:
        """Register a credit decided now, unless the register knew it already: the credit to go on with
        (under the key the register knows it by), or None when another reading registered it meanwhile
        and it is reported as that one."""
        if self.register is None or credit.identity is None or credit.key not in self._slots:
            return credit
        identity = Identity.from_json(credit.identity)
        for _ in range(3):
            slot, chosen = self._slots.pop(credit.key)
            new = New(identity, slot, state, self._first(credit))
            if not self.register.register([new], journal=self.scope.journal_id, reading=self.reading):
                return credit
            claimed = self.claim(index, credit, chosen=chosen)  # registered meanwhile: as which credit?
            if claimed is None or claimed.key not in self._slots:
                return claimed  # reported as that credit, or that credit still open in this journal
        raise LedgerUnavailable(f"bank credit {credit.key} not registered: the register kept changing")

    def _first(self, credit: Credit) -> str:
        return f"{self.review.head['source']}, {credit.location}"

    def _register_chunk(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Register the credits new to the register that this chunk is about to post, together; what to
        post of the chunk then. A credit another reading registered meanwhile is resolved again: as that
        credit, reported as the register has it, or, decided by another reading of this journal, left to
        it; otherwise registered alone."""
        new = [item for item in chunk if "new" in item]
        if self.register is None or not new:
            return chunk
        items = [
            New(
                Identity.from_json(item["credit"]["identity"]),
                item["new"][0],
                "decided",
                self._first(Credit.from_json(item["credit"])),
            )
            for item in new
        ]
        failed = self.register.register(items, journal=self.scope.journal_id, reading=self.reading)
        if not failed:
            return chunk
        keep = []
        for item in chunk:
            credit = Credit.from_json(item["credit"])
            if credit.key not in failed:
                keep.append(item)
                continue
            self._slots[credit.key] = tuple(item["new"])  # type: ignore[assignment]
            got = self._registered(item["summary"], credit, "decided")
            if got is None:
                continue  # that credit, reported as the register has it
            if got.key != credit.key:
                self.summaries[item["summary"]].skipped.setdefault(BUSY, Tally()).add(credit.amount)
                self.report.add(
                    credit.location,
                    "in-flight",
                    None,
                    key=got.key,
                    amount=credit.amount,
                    reason=BUSY,
                    note="another reading of this journal decided it at the same moment and posts it: drop "
                    "the file again later to see its outcome",
                )
                self._told("in-flight", credit)
                continue
            keep.append(item)
        return keep

    def _known(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """How the ledger has this credit, when it has it (a rejection counts as unknown: nothing was
        created, and the operator decides again)."""
        ledger = self.pipeline.ledger
        entry = ledger.store.get(self.scope, key) if ledger is not None else None
        if entry is None or entry.state == "rejected":
            return None
        if entry.state == "posted":
            return "skipped", {
                "id": entry.target_id,
                "note": "posted before (an earlier reading or review choice)",
            }
        if entry.state == "ambiguous":
            return "ambiguous", {
                "note": "its posting has an unknown outcome: see python -m payments ledger list"
            }
        return "in-flight", {"note": f"being posted right now ({entry.state}): drop the file again later"}

    def _mark(self, credit: Credit, state: State, ids: list[str] | None = None) -> None:
        """Record a credit's new state in the register with the next ones (`_marked` writes them)."""
        if self.register is not None and credit.identity is not None:
            identity = Identity.from_json(credit.identity)
            self._marks.append(Change(identity, credit.key, state, tuple(ids or ())))

    def _marked(self) -> None:
        if self.register is not None and self._marks:
            self.register.mark(self._marks)
        self._marks = []
