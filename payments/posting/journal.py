"""Posting a journal on request: the lines the relay created become Business Central's ledger entries.

API v2.0 has no post action on customerPaymentJournals (page 30013 has none). Page 30016 "APIV2 -
Journals" has the bound action `post` on `journals({id})`; its OnFindRecord looks a batch up by id alone,
whatever its template, so a customer payment journal's id is accepted there, and its PostBatch runs
Gen. Jnl.-Post on every line of the batch: Business Central checks them all, then posts all or none.
That is shown against the sandbox built from that source; it is unverified against Business Central
online until tried there (docs/scale.md, "Posting journals").

Because it posts every line of the batch, the relay posts a journal only when the journal holds nothing
but lines it created itself: each line's id is one its ledger recorded as posted, or the line matches a
payment whose outcome was unknown (ambiguous, or a claim whose poster died) by its natural key and is
adopted as that payment first. Any other line (someone's by hand, another integration's) refuses the
posting, naming the lines. The journal's turn is held throughout, so none of the relay's own inserts runs
between the check and the post. Afterwards each payment's ledger entry records when its journal was
posted (`Entry.booked`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import LedgerUnavailable, TargetError
from ..ledger import Entry, Ledger, Scope, evolve
from ..outbound import TargetClient

log = logging.getLogger("payments.posting")

TURN_SECONDS = 120.0  # how long to wait for the journal's turn (its inserts finish first)
_LINE = "id,lineNumber,customerNumber,documentNumber,externalDocumentNumber,amount"


@dataclass(slots=True)
class JournalPosted:
    """What posting one journal came to, for the command line, the timer's log and the tests."""

    company: str
    journal: str
    posted: int = 0  # lines Business Central posted
    adopted: int = 0  # lines of payments whose outcome was unknown, recognised and recorded first
    refused: str = ""  # why nothing was posted ("" when it was)
    foreign: list[int] = field(default_factory=list)  # line numbers the relay did not create

    @property
    def ok(self) -> bool:
        return not self.refused


def post_journal(client: TargetClient, ledger: Ledger, company: str, journal: str) -> JournalPosted:
    """Post one journal if it holds only the relay's lines (see the module docstring)."""
    result = JournalPosted(company, journal)
    scope = Scope(company, journal)
    with client.journal_turn(company, journal, until=time.monotonic() + TURN_SECONDS) as ours:
        if not ours:
            result.refused = "the journal was busy with the relay's inserts for two minutes: try again later"
            return result
        try:
            lines = list(client.journal_lines(company, journal, _LINE))
        except TargetError as exc:
            result.refused = f"the journal's lines could not be read ({exc.message}): nothing was posted"
            return result
        if not lines:
            result.refused = "there is nothing to post: the journal holds no lines"
            return result
        posted = {e.target_id: e for e in ledger.store.in_scope(scope, {"posted"}) if e.target_id}
        # Payments whose outcome is unknown: ambiguous ones, and claims whose poster went silent. A live
        # claim's own poster records its outcome (just after giving back the journal's turn); its line
        # is left alone and the posting waits for a later try.
        now = ledger.clock()
        open_ = [e for e in ledger.store.in_scope(scope, {"ambiguous", "claimed"}) if e.natural]
        unknown = [e for e in open_ if e.state == "ambiguous" or e.is_stale(now)]
        live = [e for e in open_ if e not in unknown]
        mine: list[Entry] = []
        recording = 0  # lines of payments whose live poster has not written their outcome yet
        for line in sorted(lines, key=lambda x: int(x.get("lineNumber") or 0)):
            entry = posted.get(str(line.get("id") or ""))
            if entry is None:
                entry = _adopt(ledger, line, unknown, result)
            if entry is not None:
                mine.append(entry)
            elif any(_same(e.natural, line) for e in live):
                recording += 1
            else:
                result.foreign.append(int(line.get("lineNumber") or 0))
        if result.foreign:
            shown = ", ".join(str(n) for n in result.foreign[:20])
            result.refused = (
                f"the journal holds {len(result.foreign)} line(s) the relay did not create (line numbers "
                f"{shown}): posting it would post them too; post it in Business Central, or move those "
                "lines to another journal; nothing was posted"
            )
            return result
        if recording:
            result.refused = (
                f"{recording} of the relay's payments in the journal are still being recorded by the "
                "worker that posted them: try again in a minute; nothing was posted"
            )
            return result
        try:
            client.post_journal(company, journal)
        except TargetError as exc:
            why = "its outcome is unknown: look at the journal" if exc.may_exist else "nothing was posted"
            result.refused = f"Business Central did not post the journal ({exc.message}); {why}"
            return result
    result.posted = len(lines)
    _booked(ledger, mine)
    return result


def _adopt(ledger: Ledger, line: dict[str, Any], unknown: list[Entry], result: JournalPosted) -> Entry | None:
    """A line whose payment's outcome the relay does not know yet, recognised by its natural key
    (documentNumber or externalDocumentNumber, amount, customer) as exactly one such payment: recorded
    as posted with the line's id, as reconciliation would record it."""
    matches = [e for e in unknown if _same(e.natural, line)]
    if len(matches) != 1:
        return None
    entry = matches[0]
    adopted = ledger.mark(
        entry,
        **Ledger.posted({k: v for k, v in line.items() if not k.startswith("@")}, status=201),
    )
    unknown.remove(entry)
    result.adopted += 1
    return adopted


def _same(natural: dict[str, str], line: dict[str, Any]) -> bool:
    named = [k for k in ("documentNumber", "externalDocumentNumber") if natural.get(k)]
    if not named or "amount" not in natural:
        return False
    if any(str(line.get(k) or "").upper() != natural[k].upper() for k in named):
        return False
    customer = natural.get("customerNumber")
    if customer and str(line.get("customerNumber") or "").upper() != customer.upper():
        return False
    return Decimal(str(line.get("amount"))) == Decimal(natural["amount"])


def _booked(ledger: Ledger, entries: list[Entry]) -> None:
    """Record on each payment's entry when its journal was posted (many to a write)."""
    now = ledger.clock()
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        try:
            stored = ledger.store.replace_many([evolve(e, booked=now) for e in chunk])
            if stored is None:
                for entry in chunk:
                    ledger.mark(entry, booked=now)
        except LedgerUnavailable as exc:
            log.error("journal posted, but %d entries could not record it: %s", len(chunk), exc)
