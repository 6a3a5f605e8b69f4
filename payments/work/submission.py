"""One batch handed to the queue (`Submission`: what GET /api/batches/{id} is built from, kept by
`batches.BatchStore`), and each of its payments' outcome read back from its ledger entry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .. import codec
from ..errors import AmbiguousOutcome, PermanentRejection, TargetUnavailable
from ..ledger import CALLER, Decision, Entry, Scope
from ..posting import Outcome
from ..posting.settle import replay

# How a payment of a batch came to be in it: accepted now; known before (posted or rejected: replayed);
# joined (accepted earlier, still waiting); reconcile (may exist at the target: a poster looks first);
# in-flight or conflict (answered at once, as the direct path does); repeat (same key earlier in the batch).
# pending: kept with its batch, not yet taken into the ledger (deferred intake).
Origin = Literal[
    "new", "known", "joined", "reconcile", "in-flight", "conflict", "repeat", "refused", "pending"
]


@dataclass(slots=True)
class Submission:
    """One batch handed to the queue: what the status resource (GET /api/batches/{id}) is built from."""

    batch: str
    company: str
    journal: str
    keys: list[str]
    origins: list[Origin]
    notes: dict[int, str] = field(default_factory=dict)  # in-flight, conflict, refused: why
    since: dict[int, datetime] = field(default_factory=dict)  # reconcile: the entry as it was then
    repeats: dict[int, int] = field(default_factory=dict)  # index -> index of the first occurrence
    known: dict[int, str] = field(default_factory=dict)  # known: the outcome the ledger replays
    extra: dict[str, Any] = field(default_factory=dict)  # the entry point's own (e.g. ignored properties)
    payloads: list[dict[str, Any]] | None = None  # kept until intake (deferred batches only)
    owner: str | None = field(default_factory=CALLER.get)  # the caller who sent it: only it sees the batch

    @property
    def scope(self) -> Scope:
        return Scope(self.company, self.journal)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.batch,
            "company": self.company,
            "journal": self.journal,
            "keys": self.keys,
            "origins": self.origins,
            "notes": {str(i): n for i, n in self.notes.items()},
            "since": {str(i): t.isoformat() for i, t in self.since.items()},
            "repeats": {str(i): j for i, j in self.repeats.items()},
            "extra": self.extra,
            "owner": self.owner,
            **({"payloads": self.payloads} if self.payloads is not None else {}),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Submission:
        return cls(
            batch=data["id"],
            company=data["company"],
            journal=data["journal"],
            keys=list(data["keys"]),
            origins=list(data["origins"]),
            notes={int(i): n for i, n in data.get("notes", {}).items()},
            since={int(i): datetime.fromisoformat(t) for i, t in data.get("since", {}).items()},
            repeats={int(i): int(j) for i, j in data.get("repeats", {}).items()},
            extra=data.get("extra", {}),
            payloads=data.get("payloads"),
            owner=data.get("owner"),
        )


def new_batch_id() -> str:
    return uuid.uuid4().hex


def accepted(batch: str) -> Outcome:
    return Outcome(
        "accepted",
        note=f"accepted and queued; it will be posted: follow GET /api/batches/{batch}",
        attempted=False,
    )


def repeated(first: Outcome) -> Outcome:
    if first.kind == "created":
        return Outcome(
            "skipped", created=first.created, note="the same payment appears earlier in this request"
        )
    return first


def settled(sub: Submission, i: int, entry: Entry | None) -> Outcome | None:
    """Payment i's outcome from its ledger entry; None while a poster has still to settle it."""
    origin = sub.origins[i]
    if origin == "pending":
        return None
    if origin == "in-flight":
        return Outcome("in-flight", note="this payment is being posted by another request right now")
    if origin == "conflict":
        return Outcome("conflict", note=sub.notes.get(i, ""))
    if origin == "refused":
        unavailable = TargetUnavailable(sub.notes.get(i, "not accepted"), retry_after=30)
        return Outcome("unavailable", error=unavailable, attempted=False)
    if entry is None:
        gone = TargetUnavailable(
            "not posted: its ledger entry was removed (resolved by a person); send it again", retry_after=5
        )
        return Outcome("unavailable", error=gone, attempted=False)
    if entry.state in ("queued", "claimed"):
        return None
    if origin == "reconcile" and entry.updated_at <= sub.since[i]:
        return None  # not looked at since it was accepted
    if origin == "known":
        return replay(entry, Decision("done", entry))
    if entry.state == "posted":
        body = codec.loads(entry.response_body) if entry.response_body else {"id": entry.target_id}
        if origin == "reconcile":
            return Outcome("skipped", created=body, note="found at the target and adopted")
        return Outcome("created", created=body, client_request_id=entry.client_request_id)
    if entry.state == "rejected":
        error = PermanentRejection(
            entry.error_message or "", status=entry.response_status or 400, code=entry.error_code or ""
        )
        return Outcome("rejected", error=error, client_request_id=entry.client_request_id)
    reason = entry.error_message or "no definite answer from the target"
    return Outcome(
        "ambiguous",
        error=AmbiguousOutcome(reason, client_request_id=entry.client_request_id),
        client_request_id=entry.client_request_id,
        note=reason,
    )
