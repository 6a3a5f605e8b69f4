"""The posting pipeline every entry point shares: validated payments in, one outcome per payment out.

The HTTP trigger, the file drop and the command line all call `Pipeline.post_all`, so the
exactly-once ledger and batching slot in here once, for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .client import TargetClient
from .errors import AmbiguousOutcome, NotAuthorized, PermanentRejection, TargetError, TargetUnavailable
from .model import CustomerPayment, FieldError, Rules
from .settings import Settings

Kind = Literal["created", "invalid", "rejected", "unavailable", "ambiguous", "denied"]


@dataclass(slots=True)
class Outcome:
    """What happened to one payment. `created` is the target's object; `error` explains the rest."""

    kind: Kind
    created: dict[str, Any] | None = None
    error: TargetError | None = None
    errors: list[FieldError] = field(default_factory=list)
    client_request_id: str | None = None
    attempted: bool = True

    @property
    def ok(self) -> bool:
        return self.kind == "created"


def rules_for(settings: Settings) -> Rules:
    return Rules(amount_decimals=settings.amount_decimals, target=settings.target)


def _classify(exc: TargetError) -> Kind:
    if isinstance(exc, PermanentRejection):
        return "rejected"
    if isinstance(exc, NotAuthorized):
        return "denied"
    if isinstance(exc, TargetUnavailable):
        return "unavailable"
    if isinstance(exc, AmbiguousOutcome):
        return "ambiguous"
    raise TypeError(f"unclassified target error {type(exc).__name__}")  # pragma: no cover


class Pipeline:
    """Posts payments through one client; stops early when the target is down rather than hammering it."""

    def __init__(self, client: TargetClient):
        self.client = client
        self.rules = rules_for(client.settings)

    def post_one(self, company_id: str, journal_id: str, payment: CustomerPayment) -> Outcome:
        try:
            created = self.client.create_payment(company_id, journal_id, payment.payload())
        except TargetError as exc:
            return Outcome(_classify(exc), error=exc, client_request_id=exc.client_request_id)
        return Outcome("created", created=created.body, client_request_id=created.client_request_id)

    def post_all(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        deadline: float | None = None,
        progress: Callable[[int, Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Post each payment in order. Once the target is unavailable, or `deadline` (monotonic) has
        passed, the rest are not attempted and say so: nothing is lost, and a retry may send them."""
        outcomes: list[Outcome] = []
        halted: TargetError | None = None
        for index, payment in enumerate(payments):
            if halted is None and deadline is not None and time.monotonic() >= deadline:
                halted = TargetUnavailable("not attempted: the request ran out of time", retry_after=5)
            if halted is not None:
                outcome = Outcome(_classify(halted), error=halted, attempted=False)
            else:
                outcome = self.post_one(company_id, journal_id, payment)
                if outcome.kind in ("unavailable", "denied"):
                    halted = outcome.error
            outcomes.append(outcome)
            if progress is not None:
                progress(index, outcome)
        return outcomes
