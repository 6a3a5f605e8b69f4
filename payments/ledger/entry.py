"""One payment's record in the ledger, and when it goes stale or expires."""

from __future__ import annotations

import operator
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

# queued: accepted for the work queue, nothing sent yet (any poster may take it and send it).
State = Literal["queued", "claimed", "posted", "rejected", "ambiguous"]


# Who sent the payments being recorded (`app:<client id>`, `webhook:<sender>`), for the duration of an
# entry point's call: every entry created meanwhile keeps it. The posting threads run in a copy of the
# call's context, so they see it too.
CALLER: ContextVar[str | None] = ContextVar("payments_caller", default=None)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a payment goes: keys are unique per company and journal."""

    company_id: str
    journal_id: str
    partition: str = field(init=False, repr=False, compare=False)  # the Table partition key

    def __post_init__(self) -> None:
        object.__setattr__(self, "partition", f"{self.company_id}_{self.journal_id}")


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
    # The latest time a request for this payment may have left: the lease end of the last claim that
    # was allowed to send. Takeovers that send nothing keep it, so retries cannot push it forward.
    sent_by: datetime | None = None
    # The payment as the target will get it (JSON), kept while it waits for the work queue, so an entry
    # whose queue message was lost is sent from the ledger alone; and the batch that accepted it.
    payload: str | None = None
    batch: str | None = None
    caller: str | None = None  # who sent it (CALLER when the entry was created)
    booked: datetime | None = None  # when the relay posted the journal holding it (journal.post_journal)
    etag: str | None = None

    def is_stale(self, now: datetime) -> bool:
        """A claim whose lease ran out: its worker went silent; the payment may have reached the target."""
        return self.state == "claimed" and self.claimed_until <= now

    def may_still_run(self, now: datetime, settle: timedelta) -> bool:
        """A request sent for this payment may still be queued or running at the target."""
        return now < (self.sent_by or self.claimed_until) + settle

    def is_expired(self, now: datetime, retention: timedelta) -> bool:
        """Untouched for longer than the retention period: the key is forgotten."""
        return self.updated_at + retention < now


# An open entry's row in the index the re-drive reads (Ledger.stranded): the day (ISO date) it was
# accepted, its scope and its key.
OpenRow = tuple[str, Scope, str]


def open_row(entry: Entry) -> OpenRow:
    return entry.created_at.date().isoformat(), entry.scope, entry.key


entry_values = operator.attrgetter(*(f.name for f in fields(Entry)))  # every field, in order (etag last)


def evolve(entry: Entry, **changes: Any) -> Entry:
    """A copy of `entry` with `changes` (dataclasses.replace, minus its per-call introspection, which
    cost more than the rest of a batch's ledger work)."""
    twin = Entry(*entry_values(entry))
    for name, value in changes.items():
        setattr(twin, name, value)  # slots: an unknown name raises AttributeError
    return twin
