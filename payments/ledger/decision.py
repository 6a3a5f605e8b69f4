"""What the ledger says to do with a payment before it is posted (or accepted for the queue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .entry import Entry


@dataclass(slots=True)
class Decision:
    """What the ledger says to do with a payment before posting it."""

    # queue: accepted now, to be sent by a poster; queued: accepted before and still waiting (joined);
    # reconcile: may exist at the target (a stale claim, an ambiguous outcome): a poster must look first.
    action: Literal["post", "done", "in-flight", "conflict", "ambiguous", "queue", "queued", "reconcile"]
    entry: Entry | None = None
    found: dict[str, Any] | None = None  # a payment adopted at the target after reconciliation
    reason: str = ""
