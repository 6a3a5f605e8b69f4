"""What one statement held and what became of it, counted and summed by kind: what an operator ties to
the bank's totals (the `statements` part of a bank statement's report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..bank.statement import Statement, mask


@dataclass(slots=True)
class Tally:
    """Count and sum of one kind of transaction in one statement."""

    count: int = 0
    sum: Decimal = Decimal(0)

    def add(self, amount: Decimal | None) -> None:
        self.count += 1
        self.sum += amount or 0

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum}


@dataclass(slots=True)
class Summary:
    """What one statement held and what became of it, for the operator to tie to the bank's totals."""

    statement: Statement | None
    transactions: int = 0
    credits: Tally = field(default_factory=Tally)
    applied: Tally = field(default_factory=Tally)
    on_account: Tally = field(default_factory=Tally)
    posted_before: Tally = field(default_factory=Tally)
    review: Tally = field(default_factory=Tally)
    failed: Tally = field(default_factory=Tally)
    skipped: dict[str, Tally] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        s = self.statement
        head: dict[str, Any] = {}
        if s is not None:
            head = {
                "id": s.id,
                "format": s.format,
                "account": mask(s.account) if s.account else "",
                "currency": s.currency,
                "entries": s.entries,
            }
            if s.checks:
                head["checks"] = dict(s.checks)
        return {
            **head,
            "transactions": self.transactions,
            "credits": self.credits.as_json(),
            "applied": self.applied.as_json(),
            "onAccount": self.on_account.as_json(),
            "postedBefore": self.posted_before.as_json(),
            "review": self.review.as_json(),
            "failed": self.failed.as_json(),
            "skipped": {k: v.as_json() for k, v in sorted(self.skipped.items())},
        }
