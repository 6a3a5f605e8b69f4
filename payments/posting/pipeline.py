"""The posting pipeline every entry point shares: validated payments in, one outcome per payment out.

The HTTP trigger, the file drop and the command line all call `Pipeline.post_all` (or `post_one`),
so the exactly-once ledger, batching and concurrency slot in here once, for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import telemetry
from ..ledger import Digest, Ledger, Scope, digest, natural_key
from ..model import CustomerPayment, Rules
from ..outbound import TargetClient
from ..settings import Settings
from .outcome import Outcome
from .scheduler import Halt, Progress, schedule
from .settle import Settler


def rules_for(settings: Settings) -> Rules:
    return Rules(
        amount_decimals=settings.amount_decimals, target=settings.target, amount_sign=settings.amount_sign
    )


class Pipeline:
    """Posts payments through one client and, when it has one, the exactly-once ledger; stops early
    when the target is down rather than hammering it."""

    def __init__(self, client: TargetClient, ledger: Ledger | None = None):
        self.client = client
        self.ledger = ledger
        self.rules = rules_for(client.settings)
        self._settler = Settler(client, ledger)

    def post_one(
        self, company_id: str, journal_id: str, payment: CustomerPayment, *, key: str | None = None
    ) -> Outcome:
        """Post one payment, at most once per key (see `Settler.post_one`)."""
        outcome = self._settler.post_one(company_id, journal_id, payment, key=key)
        self.tell(company_id, journal_id, [payment], [key], [outcome])
        return outcome

    def tell(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        keys: Sequence[str | None],
        outcomes: Sequence[Outcome],
        labels: Sequence[str | None] | None = None,
    ) -> None:
        """Each outcome decided by posting, counted and logged once (telemetry); post_all does it unless
        told not to (a caller that sends some payments again tells the final outcomes itself)."""
        target = self.client.settings.target
        for i, (payment, outcome) in enumerate(zip(payments, outcomes, strict=True)):
            key = keys[i] or (
                digest(Scope(company_id, journal_id), payment.payload()).key if self.ledger else None
            )
            telemetry.payment_outcome(
                outcome.kind,
                target=target,
                key=key,
                client_request_id=outcome.client_request_id,
                company=company_id,
                journal=journal_id,
                natural=natural_key(payment.payload()),
                location=labels[i] if labels else None,
                note=outcome.note,
            )

    def post_all(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        keys: Sequence[str | None] | None = None,
        deadline: float | None = None,
        progress: Progress | None = None,
        halt: Halt | None = None,
        labels: Sequence[str | None] | None = None,
        tell: bool = True,
    ) -> list[Outcome]:
        """Post every payment, one insert at a time into the journal (in JSON $batch requests of
        PAYMENTS_BATCH_SIZE when set); outcomes come back in input order. Once the target
        is unavailable, or `deadline` (monotonic) has passed, payments not yet started are not
        attempted and say so. A `halt` shared between calls carries that across them. `labels` say
        where each payment came from (a file's line) in its outcome's log line."""
        settings = self.client.settings
        size = settings.batch_size if settings.batch_size > 1 else 1
        all_keys: Sequence[str | None] = keys if keys is not None else [None] * len(payments)
        known: list[Digest | None] = [None] * len(payments)
        scope = Scope(company_id, journal_id)
        settler = self._settler

        def key_of(i: int) -> str | None:
            if self.ledger is None:
                return None
            d = known[i] = digest(scope, payments[i].payload())
            return all_keys[i] or d.key

        def post(group: list[int]) -> list[Outcome]:
            if size == 1:
                i = group[0]
                return [
                    settler.post_one(company_id, journal_id, payments[i], key=all_keys[i], known=known[i])
                ]
            return settler.post_group(
                company_id,
                journal_id,
                [payments[i] for i in group],
                [all_keys[i] for i in group],
                [known[i] for i in group],
            )

        # Every payment here goes into one journal, and the client sends one insert at a time per
        # journal: two workers suffice, one sending while the other claims and prepares the next group.
        # More would only hold ledger claims while they wait for the journal's turn.
        workers = min(2, settings.max_concurrency, -(-len(payments) // size))
        outcomes = schedule(
            len(payments),
            size,
            workers,
            key_of,
            post,
            halt or Halt(),
            deadline=deadline,
            progress=progress,
        )
        if tell:
            self.tell(
                company_id,
                journal_id,
                payments,
                [all_keys[i] or (d.key if d is not None else None) for i, d in enumerate(known)],
                outcomes,
                labels,
            )
        return outcomes
