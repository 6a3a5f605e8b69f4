"""The posting pipeline every entry point shares: validated payments in, one outcome per payment out.

The HTTP trigger, the file drop and the command line all call `Pipeline.post_all`, so the
exactly-once ledger and batching slot in here once, for all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from . import codec
from .client import TargetClient
from .errors import AmbiguousOutcome, NotAuthorized, PermanentRejection, TargetError, TargetUnavailable
from .ledger import Decision, Entry, Ledger, LedgerUnavailable, Scope, identify, odata_filter
from .model import CustomerPayment, FieldError, Rules
from .settings import Settings

log = logging.getLogger("payments.pipeline")

Kind = Literal[
    "created",  # posted now
    "skipped",  # posted before (found in the ledger, or at the target by reconciliation): not posted again
    "invalid",
    "rejected",
    "unavailable",
    "ambiguous",
    "denied",
    "in-flight",  # another request or worker is posting this very payment right now
    "conflict",  # the Idempotency-Key was used before for a different payment
]


@dataclass(slots=True)
class Outcome:
    """What happened to one payment. `created` is the target's object; `error` explains the rest."""

    kind: Kind
    created: dict[str, Any] | None = None
    error: TargetError | None = None
    errors: list[FieldError] = field(default_factory=list)
    client_request_id: str | None = None
    attempted: bool = True
    note: str | None = None  # why a payment was skipped or left ambiguous
    replay_status: int | None = None  # for an Idempotency-Key replay: the status first answered

    @property
    def ok(self) -> bool:
        return self.kind in ("created", "skipped")


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
    """Posts payments through one client and, when it has one, the exactly-once ledger; stops early
    when the target is down rather than hammering it."""

    def __init__(self, client: TargetClient, ledger: Ledger | None = None):
        self.client = client
        self.ledger = ledger
        self.rules = rules_for(client.settings)

    def _send(self, company_id: str, journal_id: str, payment: CustomerPayment) -> Outcome:
        try:
            created = self.client.create_payment(company_id, journal_id, payment.payload())
        except TargetError as exc:
            return _failed(exc)
        return Outcome("created", created=created.body, client_request_id=created.client_request_id)

    def find(self, company_id: str, journal_id: str, natural: dict[str, str]) -> list[dict[str, Any]]:
        """Payments at the target matching a natural key (for reconciliation)."""
        return self.client.find_payments(company_id, journal_id, odata_filter(natural))

    def post_one(
        self,
        company_id: str,
        journal_id: str,
        payment: CustomerPayment,
        *,
        key: str | None = None,
        identity: tuple[str, str] | None = None,
    ) -> Outcome:
        """Post one payment; with a ledger, at most once per key (derived from the payment by default).
        An explicit key (Idempotency-Key) also replays earlier rejections instead of retrying them.
        `identity` is the payment's (derived key, fingerprint) when the caller computed it already."""
        settled, entry = self._claim(company_id, journal_id, payment, key, identity)
        if settled is not None:
            return settled
        outcome = self._send(company_id, journal_id, payment)
        if entry is not None:
            self._record(entry, outcome)
        return outcome

    def _post_group(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        keys: Sequence[str | None],
        identities: Sequence[tuple[str, str] | None],
    ) -> list[Outcome]:
        """Claim each payment, post the ones to post in one JSON $batch, record each outcome.
        Claims and records go to the ledger in one write each when they can (one partition)."""
        claims = self._claim_group(company_id, journal_id, payments, keys, identities)
        to_post = [i for i, (settled, _) in enumerate(claims) if settled is None]
        answers = (
            self.client.create_payments_batch(
                company_id, journal_id, [payments[i].payload() for i in to_post]
            )
            if to_post
            else []
        )
        outcomes: list[Outcome] = [settled for settled, _ in claims]  # type: ignore[misc]
        marks: list[tuple[Entry, dict[str, Any]]] = []
        for i, answer in zip(to_post, answers, strict=True):
            if isinstance(answer, TargetError):
                outcome = _failed(answer)
            else:
                outcome = Outcome("created", created=answer.body, client_request_id=answer.client_request_id)
            entry = claims[i][1]
            if entry is not None:
                change = _ledger_change(outcome)
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

    def _claim_group(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        keys: Sequence[str | None],
        identities: Sequence[tuple[str, str] | None],
    ) -> list[tuple[Outcome | None, Entry | None]]:
        """Claims for a group: one write when every key is new, else one by one (which also handles
        payments posted before, in flight, or to reconcile)."""
        if self.ledger is not None and all(identities):
            scope = Scope(company_id, journal_id)
            items = [
                (key or ident[0], payment, ident[1])  # type: ignore[index]
                for payment, key, ident in zip(payments, keys, identities, strict=True)
            ]
            try:
                entries = self.ledger.claim_many(scope, items)
            except LedgerUnavailable:
                entries = None
            if entries is not None:
                return [(None, entry) for entry in entries]
        return [
            self._claim(company_id, journal_id, p, k, ident)
            for p, k, ident in zip(payments, keys, identities, strict=True)
        ]

    def _claim(
        self,
        company_id: str,
        journal_id: str,
        payment: CustomerPayment,
        key: str | None,
        identity: tuple[str, str] | None = None,
    ) -> tuple[Outcome | None, Entry | None]:
        """Ask the ledger first: an outcome when the payment is settled without posting, else the claim."""
        if self.ledger is None:
            return None, None
        scope = Scope(company_id, journal_id)
        explicit = key is not None
        derived, payment_fingerprint = identity or identify(scope, payment.payload())
        key = key or derived
        try:
            decision = self.ledger.claim(
                scope,
                key,
                payment,
                lambda natural: self.find(company_id, journal_id, natural),
                replay_rejections=explicit,
                payment_fingerprint=payment_fingerprint,
            )
        except LedgerUnavailable as exc:
            return Outcome("unavailable", error=TargetUnavailable(f"not posted: {exc}", retry_after=30)), None
        entry = decision.entry
        if decision.action == "done":
            return _replay(entry, decision), None
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
            change = _ledger_change(outcome)
            if change is None:  # unavailable or denied: certainly not created
                ledger.release(entry)
            else:
                ledger.mark(entry, **change)
        except LedgerUnavailable:
            # The claim stays; once its lease runs out the next attempt reconciles with the target.
            log.critical("outcome of %s could not be written to the ledger: %s", entry.key, outcome.kind)

    def post_all(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        keys: Sequence[str | None] | None = None,
        deadline: float | None = None,
        progress: Callable[[int, Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Post every payment, up to PAYMENTS_MAX_CONCURRENCY requests in flight, in JSON $batch
        requests of PAYMENTS_BATCH_SIZE when set; outcomes come back in input order. Once the
        target is unavailable, or `deadline` (monotonic) has passed, payments not yet started are
        not attempted and say so: nothing is lost, and a retry may send them."""
        settings = self.client.settings
        size = settings.batch_size if settings.batch_size > 1 else 1
        all_keys: Sequence[str | None] = keys if keys is not None else [None] * len(payments)
        identities: list[tuple[str, str] | None] = [None] * len(payments)
        outcomes: list[Outcome | None] = [None] * len(payments)
        halted: list[TargetError] = []
        lock = threading.Lock()

        def run(group: list[int]) -> None:
            if not halted and deadline is not None and time.monotonic() >= deadline:
                with lock:
                    halted.append(
                        TargetUnavailable("not attempted: the request ran out of time", retry_after=5)
                    )
            if halted:
                results = [Outcome(_classify(halted[0]), error=halted[0], attempted=False) for _ in group]
            elif size == 1:
                i = group[0]
                results = [
                    self.post_one(
                        company_id, journal_id, payments[i], key=all_keys[i], identity=identities[i]
                    )
                ]
            else:
                results = self._post_group(
                    company_id,
                    journal_id,
                    [payments[i] for i in group],
                    [all_keys[i] for i in group],
                    [identities[i] for i in group],
                )
            with lock:
                for i, outcome in zip(group, results, strict=True):
                    outcomes[i] = outcome
                    if outcome.attempted and outcome.kind in ("unavailable", "denied") and not halted:
                        halted.append(outcome.error or TargetUnavailable("target unavailable"))
                    if progress is not None:
                        progress(i, outcome)

        # With $batch, twice as many workers as requests allowed in flight (the client bounds those):
        # the ledger and JSON work of one batch overlaps the network wait of another.
        groups_total = -(-len(payments) // size)
        workers = min(settings.max_concurrency * (2 if size > 1 else 1), groups_total)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="payments-post") if workers > 1 else None
        futures: list[Future[None]] = []
        # Groups are identified no further ahead than there are workers to take them: hashing the
        # whole input at once would hold the interpreter lock while the first requests try to go out.
        ahead = threading.BoundedSemaphore(workers)

        def run_then_free(group: list[int]) -> None:
            try:
                run(group)
            finally:
                ahead.release()

        def submit(group: list[int]) -> None:
            if pool is None:
                run(group)
            else:
                ahead.acquire()
                futures.append(pool.submit(run_then_free, group))

        try:
            # Groups go out as soon as they are identified, so the first request does not wait for
            # the whole input to be hashed. A payment repeated within this call waits for its first
            # occurrence (after every first has finished), so the repeat is answered "already
            # posted" rather than "in flight".
            repeats: list[int] = []
            seen: set[str] = set()
            scope = Scope(company_id, journal_id)
            group: list[int] = []
            for i, payment in enumerate(payments):
                if self.ledger is not None:
                    identity = identify(scope, payment.payload())
                    identities[i] = identity
                    key = all_keys[i] or identity[0]
                    if key in seen:
                        repeats.append(i)
                        continue
                    seen.add(key)
                group.append(i)
                if len(group) == size:
                    submit(group)
                    group = []
            if group:
                submit(group)
            for future in futures:
                future.result()
            futures.clear()
            for start in range(0, len(repeats), size):
                submit(repeats[start : start + size])
            for future in futures:
                future.result()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        return [o for o in outcomes if o is not None]


def _ledger_change(outcome: Outcome) -> dict[str, Any] | None:
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


def _failed(exc: TargetError) -> Outcome:
    return Outcome(_classify(exc), error=exc, client_request_id=exc.client_request_id)


def _replay(entry: Entry | None, decision: Decision) -> Outcome:
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
    note = "found at the target and adopted" if decision.found else "posted before"
    return Outcome("skipped", created=body, note=note, replay_status=entry.response_status)
