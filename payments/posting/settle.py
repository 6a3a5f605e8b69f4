"""Settling payments with the ledger: claim, send, record, for one payment or a `$batch` group.

The ledger is asked first (posted before? in flight? to reconcile?); only a claimed payment is sent,
and its outcome is recorded: posted, rejected or ambiguous, or the claim released when nothing was
created. Without a ledger (no storage account configured) payments are simply sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from .. import codec
from ..errors import AmbiguousOutcome, LedgerUnavailable, PermanentRejection, TargetError, TargetUnavailable
from ..ledger import Decision, Digest, Entry, Ledger, Scope, digest
from ..model import CustomerPayment
from ..outbound import TargetClient, odata_filter, posted_filter
from .outcome import Outcome, answered

log = logging.getLogger("payments.posting")

Claim = tuple[Outcome | None, Entry | None]  # settled without posting, or the claim to post under


class Settler:
    """Claim -> send -> record, through one client and (when configured) the ledger."""

    def __init__(self, client: TargetClient, ledger: Ledger | None):
        self.client = client
        self.ledger = ledger

    def find(self, company_id: str, journal_id: str, natural: dict[str, str]) -> list[dict[str, Any]]:
        """Payments at the target matching a natural key (for reconciliation)."""
        return self.client.find_payments(company_id, journal_id, odata_filter(natural))

    def find_posted(self, company_id: str, natural: dict[str, str]) -> list[dict[str, Any]]:
        """Posted G/L entries of a payment: its documentNumber, and its amount on either side."""
        entries = self.client.find_posted(company_id, posted_filter(natural))
        if "amount" not in natural:
            return entries
        paid = abs(Decimal(natural["amount"]))
        return [
            e
            for e in entries
            if paid in (abs(Decimal(e.get("debitAmount") or 0)), abs(Decimal(e.get("creditAmount") or 0)))
        ]

    def post_one(
        self,
        company_id: str,
        journal_id: str,
        payment: CustomerPayment,
        *,
        key: str | None = None,
        known: Digest | None = None,
    ) -> Outcome:
        """Post one payment; with a ledger, at most once per key (derived from the payment by default).
        An explicit key (Idempotency-Key) also replays earlier rejections instead of retrying them.
        `known` is the payment's digest when the caller computed it already."""
        settled, entry = self._claim(company_id, journal_id, payment, key, known)
        if settled is not None:
            return settled
        try:
            created = self.client.create_payment(
                company_id, journal_id, payment.payload(), send_by=self._send_by([entry])
            )
            outcome = answered(created)
        except TargetError as exc:
            outcome = answered(exc)
        if entry is not None:
            self._record(entry, outcome)
        return outcome

    def post_group(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        keys: Sequence[str | None],
        known: Sequence[Digest | None],
    ) -> list[Outcome]:
        """Claim each payment, post the ones to post in one JSON $batch, record each outcome.
        Claims and records go to the ledger in one write each when they can (one partition)."""
        claims = self._claim_group(company_id, journal_id, payments, keys, known)
        to_post = [i for i, (settled, _) in enumerate(claims) if settled is None]
        answers = (
            self.client.create_payments_batch(
                company_id,
                journal_id,
                [payments[i].payload() for i in to_post],
                send_by=self._send_by([claims[i][1] for i in to_post]),
            )
            if to_post
            else []
        )
        outcomes: list[Outcome] = [settled for settled, _ in claims]  # type: ignore[misc]
        marks: list[tuple[Entry, dict[str, Any]]] = []
        for i, answer in zip(to_post, answers, strict=True):
            outcome = answered(answer)
            entry = claims[i][1]
            if entry is not None:
                change = ledger_change(outcome)
                if change is None:
                    self._record(entry, outcome)  # a release: rare, one by one
                else:
                    marks.append((entry, change))
            outcomes[i] = outcome
        if marks and self.ledger is not None:
            try:
                self.ledger.commit_many(marks)
            except LedgerUnavailable:
                log.critical("outcomes of %d payments could not be written to the ledger", len(marks))
        return outcomes

    def _send_by(self, entries: Sequence[Entry | None]) -> float | None:
        return send_by(self.ledger, entries)

    def _claim_group(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        keys: Sequence[str | None],
        known: Sequence[Digest | None],
    ) -> list[Claim]:
        """Claims for a group: one write when every key is new, else one by one (which also handles
        payments posted before, in flight, or to reconcile)."""
        if self.ledger is not None and all(known):
            scope = Scope(company_id, journal_id)
            items = [
                (key or d.key, payment, d.fingerprint)  # type: ignore[union-attr]
                for payment, key, d in zip(payments, keys, known, strict=True)
            ]
            try:
                entries = self.ledger.claim_many(scope, items)
            except LedgerUnavailable:
                entries = None
            if entries is not None:
                return [(None, entry) for entry in entries]
        return [
            self._claim(company_id, journal_id, p, k, d)
            for p, k, d in zip(payments, keys, known, strict=True)
        ]

    def _claim(
        self,
        company_id: str,
        journal_id: str,
        payment: CustomerPayment,
        key: str | None,
        known: Digest | None = None,
    ) -> Claim:
        """Ask the ledger first: an outcome when the payment is settled without posting, else the claim."""
        if self.ledger is None:
            return None, None
        scope = Scope(company_id, journal_id)
        explicit = key is not None
        derived = known or digest(scope, payment.payload())
        try:
            decision = self.ledger.claim(
                scope,
                key or derived.key,
                payment,
                lambda natural: self.find(company_id, journal_id, natural),
                find_posted=lambda natural: self.find_posted(company_id, natural),
                replay_rejections=explicit,
                payment_fingerprint=derived.fingerprint,
            )
        except LedgerUnavailable as exc:
            # The storage error's own text is for the logs: callers learn what happened and what to do.
            log.error("ledger unavailable for %s: %s", key or derived.key, exc)
            unavailable = TargetUnavailable(
                "not posted: the relay's ledger (its storage) is unavailable, so it cannot make sure the "
                "payment is posted only once; nothing was sent; send it again later",
                retry_after=30,
            )
            return Outcome("unavailable", error=unavailable), None
        entry = decision.entry
        if decision.action == "done":
            return replay(entry, decision), None
        if decision.action == "in-flight":
            return Outcome(
                "in-flight", note="this payment is being posted by another request right now"
            ), None
        if decision.action == "conflict":
            return Outcome("conflict", note=decision.reason), None
        if decision.action == "ambiguous":
            return Outcome("ambiguous", error=AmbiguousOutcome(decision.reason), note=decision.reason), None
        return None, entry

    def _record(self, entry: Entry, outcome: Outcome) -> None:
        ledger = self.ledger
        assert ledger is not None
        try:
            change = ledger_change(outcome)
            if change is None:  # unavailable or denied: certainly not created
                ledger.release(entry)
            else:
                ledger.mark(entry, **change)
        except LedgerUnavailable:
            # The claim stays; once its lease runs out the next attempt reconciles with the target.
            log.critical("outcome of %s could not be written to the ledger: %s", entry.key, outcome.kind)


def send_by(ledger: Ledger | None, entries: Sequence[Entry | None]) -> float | None:
    """The monotonic time after which no request may leave for these claims: their earliest lease
    end. Past it another worker may reconcile them, taking that moment as the last one a request
    left (`Entry.sent_by`), so a request still waiting for its journal's turn must not go."""
    ends = [e.claimed_until for e in entries if e is not None]
    if not ends or ledger is None:
        return None
    return time.monotonic() + (min(ends) - ledger.clock()).total_seconds()


def ledger_change(outcome: Outcome) -> dict[str, Any] | None:
    """What the ledger records for an outcome; None when nothing was created and the claim is released."""
    if outcome.kind == "created":
        return Ledger.posted(outcome.created or {}, status=201)
    if outcome.kind == "rejected" and isinstance(outcome.error, PermanentRejection):
        err = outcome.error
        return Ledger.rejected(status=err.status, code=err.code, message=err.message)
    if outcome.kind == "ambiguous":
        message = outcome.error.message if outcome.error else "no definite answer"
        return Ledger.ambiguous(client_request_id=outcome.client_request_id, message=message)
    return None


def replay(entry: Entry | None, decision: Decision) -> Outcome:
    """The outcome of a payment the ledger already knows: posted before (skipped) or a stored rejection."""
    assert entry is not None
    if entry.state == "rejected":
        error = PermanentRejection(
            entry.error_message or "", status=entry.response_status or 400, code=entry.error_code or ""
        )
        return Outcome("rejected", error=error, note="replayed from the ledger")
    body: dict[str, Any] = decision.found or {}
    if not body and entry.response_body:
        body = codec.loads(entry.response_body)
    if not body:
        body = {"id": entry.target_id}
    if decision.found and "postedEntries" in decision.found:
        note = "found among the target's posted entries (its journal was posted) and adopted"
    else:
        note = "found at the target and adopted" if decision.found else "posted before"
    return Outcome("skipped", created=body, note=note, replay_status=entry.response_status)
