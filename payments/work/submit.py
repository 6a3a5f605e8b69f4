"""Accepting payments for the work queue, and learning their outcomes from the ledger.

`QueuedPipeline` stands where the direct `Pipeline` does for the webhook and the file drop: it checks
each payment against the ledger and records it as accepted (one write per hundred), hands it to the
queue, then reads the outcomes the posters record, for as long as the caller can wait. What is still
waiting then is reported as `accepted`: it is in the ledger and on the queue, and will be posted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from .. import telemetry
from ..errors import LedgerUnavailable
from ..ledger import CALLER, Decision, Entry, Ledger, Scope, digest, natural_key
from ..model import CustomerPayment
from ..outbound import TargetClient
from ..posting import Halt, Outcome, Pipeline
from ..posting.scheduler import Progress
from ..posting.settle import replay
from .message import Item, Work
from .queue import QueueUnavailable, WorkQueue
from .submission import Submission, accepted, new_batch_id, repeated, settled

if TYPE_CHECKING:
    from .batches import BatchStore

log = logging.getLogger("payments.work")


ACCEPT_CHUNK = 100  # one ledger transaction: at most 100 entities of one partition
REQUEUE_JOINED_AFTER = timedelta(seconds=60)
# host.json's functionTimeout is one hour: a file drop reports what is still queued after 40 minutes
# as `accepted` (it will be posted) rather than be cut off without a report.
LONGEST_WAIT_SECONDS = 40 * 60.0  # a waiting payment sent again: its message may be lost


class QueuedPipeline(Pipeline):
    """Accept, enqueue, and read outcomes back; never sends to the target itself."""

    def __init__(
        self,
        client: TargetClient,
        ledger: Ledger,
        queue: WorkQueue,
        batches: BatchStore,
        *,
        priority: WorkQueue | None = None,
    ):
        super().__init__(client, ledger)
        self.queue = queue
        self.priority = priority  # small calls answered synchronously: taken by a poster of their own
        self.batches = batches
        self.store = ledger.store

    @property
    def required_ledger(self) -> Ledger:
        """The ledger, which the work queue cannot do without (the runtime builds none without it)."""
        assert self.ledger is not None
        return self.ledger

    # -- the Pipeline interface --------------------------------------------------------------------

    def post_one(
        self, company_id: str, journal_id: str, payment: CustomerPayment, *, key: str | None = None
    ) -> Outcome:
        return self.post_all(company_id, journal_id, [payment], keys=[key])[0]

    def post_all(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        keys: Sequence[str | None] | None = None,
        deadline: float | None = None,
        progress: Progress | None = None,
        halt: Halt | None = None,  # the posters stop and resume on their own: nothing to carry
        labels: Sequence[str | None] | None = None,  # the queue function logs the outcomes, by key
        tell: bool = True,  # accepted ones are told at acceptance, the rest by the queue function
    ) -> list[Outcome]:
        submission = self.submit(company_id, journal_id, payments, keys=keys)
        if deadline is None:  # a file drop: wait, but end well within the host's function timeout
            deadline = time.monotonic() + LONGEST_WAIT_SECONDS
        return self.wait(submission, deadline, progress)

    def tell(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: with the queue, outcomes are counted where they are decided (acceptance, the queue
        function), not where they are read back."""

    # -- accepting ----------------------------------------------------------------------------------

    def submit(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        keys: Sequence[str | None] | None = None,
        batch: str | None = None,
        priority: bool = False,
        promised: bool = False,
    ) -> Submission:
        """Record every payment as accepted (or say why not) and put the accepted ones on the queue (the
        priority queue, when there is one and `priority` asks for it: a caller waits for the answer).
        `promised`: the caller was answered 202 already ("it will be posted"), so a ledger failure is
        not a refusal: the ones accepted so far are queued, then LedgerUnavailable is raised, for the
        whole batch to be taken in again."""
        ledger = self.required_ledger
        scope = Scope(company_id, journal_id)
        explicit = list(keys) if keys is not None else [None] * len(payments)
        digests = [digest(scope, p.payload()) for p in payments]
        all_keys = [k or d.key for k, d in zip(explicit, digests, strict=True)]
        sub = Submission(
            batch or new_batch_id(), company_id, journal_id, all_keys, ["refused"] * len(payments)
        )
        first: dict[str, int] = {}
        order: list[int] = []
        for i, key in enumerate(all_keys):
            if key in first:
                sub.origins[i], sub.repeats[i] = "repeat", first[key]
            else:
                first[key] = i
                order.append(i)
        items: list[Item] = []
        failed: LedgerUnavailable | None = None
        try:
            for start in range(0, len(order), ACCEPT_CHUNK):
                chunk = order[start : start + ACCEPT_CHUNK]
                accepted = ledger.accept_many(
                    scope, [(all_keys[i], payments[i], digests[i].fingerprint) for i in chunk], sub.batch
                )
                if accepted is not None:
                    for i, entry in zip(chunk, accepted, strict=True):
                        sub.origins[i] = "new"
                        items.append(Item(entry.key, payments[i].payload(), entry.fingerprint, entry.etag))
                    continue
                for i in chunk:
                    decision = ledger.accept(
                        scope,
                        all_keys[i],
                        payments[i],
                        batch=sub.batch,
                        replay_rejections=explicit[i] is not None,
                        payment_fingerprint=digests[i].fingerprint,
                    )
                    item = self._decided(sub, i, decision, payments[i])
                    if item is not None:
                        items.append(item)
        except LedgerUnavailable as exc:
            log.error("ledger unavailable while accepting batch %s: %s", sub.batch, exc)
            failed = exc
            for i, origin in enumerate(sub.origins):
                if origin == "refused":
                    sub.notes[i] = (
                        "not accepted: the relay's ledger (its storage) is unavailable, so it cannot make "
                        "sure the payment is posted only once; nothing was sent; send it again later"
                    )
        if failed is None or not promised:
            self._tell(sub, payments)
        if items:
            try:
                work = Work(
                    company_id, journal_id, sub.batch, items, caller=sub.owner, source=telemetry.SOURCE.get()
                )
                (self.priority if priority and self.priority is not None else self.queue).send(work)
            except QueueUnavailable as exc:
                # Accepted in the ledger all the same: the re-drive timer queues them (stranded).
                log.error("batch %s: %d payments wait for the re-drive: %s", sub.batch, len(items), exc)
        if failed is not None and promised:
            raise failed
        return sub

    # What this call's payments came to at acceptance, for telemetry: queued ones are counted as accepted
    # (the queue function counts their final outcome), the others as the ledger settled them here.
    _TOLD: ClassVar[dict[str, str]] = {
        "new": "accepted",
        "joined": "accepted",
        "reconcile": "accepted",
        "in-flight": "in-flight",
        "conflict": "conflict",
        "refused": "unavailable",
    }

    def _tell(self, sub: Submission, payments: Sequence[CustomerPayment]) -> None:
        target = self.client.settings.target
        for i, origin in enumerate(sub.origins):
            kind = self._TOLD.get(origin)
            if origin == "known":  # posted or refused before: answered from the ledger, as directly
                kind = sub.known.get(i)
            if kind is None:  # a repeat within this call, or a deferred batch not yet taken in
                continue
            telemetry.payment_outcome(
                kind,
                target=target,
                key=sub.keys[i],
                company=sub.company,
                journal=sub.journal,
                natural=natural_key(payments[i].payload()),
                note=f"batch {sub.batch}",
            )

    def _decided(self, sub: Submission, i: int, decision: Decision, payment: CustomerPayment) -> Item | None:
        """Record what the ledger said about payment i; the item to queue, if any."""
        entry = decision.entry
        action = decision.action
        assert entry is not None
        if action == "queue":
            sub.origins[i] = "new"
            return Item(entry.key, payment.payload(), entry.fingerprint, entry.etag)
        if action == "queued":
            sub.origins[i] = "joined"
            # Queued by this very batch (its intake delivered again), or long enough ago that its
            # message may be lost: queue it (again); a second message is harmless.
            stale = entry.updated_at + REQUEUE_JOINED_AFTER <= self.required_ledger.clock()
            if entry.state == "queued" and (entry.batch == sub.batch or stale):
                return Item(entry.key, payment.payload(), entry.fingerprint, entry.etag)
            return None
        if action == "reconcile":
            sub.origins[i], sub.since[i] = "reconcile", entry.updated_at
            return Item(entry.key, payment.payload(), entry.fingerprint)
        if action == "done":
            sub.origins[i] = "known"
            sub.known[i] = replay(entry, decision).kind
        elif action == "in-flight":
            sub.origins[i] = "in-flight"
        else:
            sub.origins[i], sub.notes[i] = "conflict", decision.reason
        return None

    # -- deferred intake: a large or asynchronous batch is answered before its ledger writes -------

    def defer(
        self,
        company_id: str,
        journal_id: str,
        payments: Sequence[CustomerPayment],
        *,
        keys: Sequence[str | None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Submission:
        """Keep the batch (one blob) and queue its intake: answered at once, accepted by a poster.
        Once the blob is written and the message sent, nothing is lost if this worker dies."""
        explicit = list(keys) if keys is not None else [None] * len(payments)
        sub = Submission(
            new_batch_id(),
            company_id,
            journal_id,
            [k or "" for k in explicit],
            ["pending"] * len(payments),
            extra=dict(extra or {}),
        )
        sub.payloads = [p.payload() for p in payments]
        self.batches.put(sub)
        self.queue.send_intake(sub.batch)
        return sub

    def intake(self, batch: str) -> Submission | None:
        """A poster's part of `defer`: accept the kept batch into the ledger and queue its payments.
        None when there is nothing (left) to take in."""
        kept = self.batches.get(batch)
        if kept is None or kept.payloads is None:
            return None
        payments = [Carried(p) for p in kept.payloads]
        keys = [k or None for k in kept.keys]
        taken_as = CALLER.set(kept.owner)  # the ledger entries record who sent the batch
        try:
            # Answered 202 already: a ledger failure here raises, so the intake is delivered again (and
            # the batch kept with its payloads meanwhile), never turned into a refusal.
            sub = self.submit(kept.company, kept.journal, payments, keys=keys, batch=batch, promised=True)  # type: ignore[arg-type]
        finally:
            CALLER.reset(taken_as)
        sub.extra = kept.extra
        self.batches.put(sub)
        return sub

    # -- outcomes -------------------------------------------------------------------------------------

    def wait(
        self, sub: Submission, deadline: float | None, progress: Progress | None = None
    ) -> list[Outcome]:
        """Outcomes as the posters record them, until all are settled or `deadline` (monotonic) passes;
        those still waiting then are `accepted`."""
        outcomes: list[Outcome | None] = [None] * len(sub.keys)
        pause = 0.05
        while True:
            pending = self._look(sub, outcomes, progress)
            if not pending:
                return [o for o in outcomes if o is not None]
            if deadline is not None and time.monotonic() + pause >= deadline:
                return [o if o is not None else accepted(sub.batch) for o in outcomes]
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def status(self, sub: Submission) -> list[Outcome]:
        """One look: every payment's outcome now (`accepted` for those still waiting)."""
        outcomes: list[Outcome | None] = [None] * len(sub.keys)
        self._look(sub, outcomes, None)
        return [o if o is not None else accepted(sub.batch) for o in outcomes]

    def _look(self, sub: Submission, outcomes: list[Outcome | None], progress: Progress | None) -> int:
        """Fill in the outcomes settled since the last look; how many are still pending."""
        todo = [i for i, o in enumerate(outcomes) if o is None and sub.origins[i] != "repeat"]
        entries = self._entries(sub, todo)
        for i in todo:
            outcome = settled(sub, i, entries.get(sub.keys[i], MISSING))
            if outcome is not None:
                outcomes[i] = outcome
                if progress is not None:
                    progress(i, outcome)
        for i, j in sub.repeats.items():
            if outcomes[i] is None and outcomes[j] is not None:
                outcomes[i] = repeated(outcomes[j])
                if progress is not None:
                    progress(i, outcomes[i])
        return sum(1 for o in outcomes if o is None)

    def _entries(self, sub: Submission, todo: list[int]) -> dict[str, Entry | None]:
        """The ledger entries of these payments: a query by batch when there are many, else point reads."""
        static = ("in-flight", "conflict", "refused", "pending")
        wanted = [sub.keys[i] for i in todo if sub.origins[i] not in static]
        found: dict[str, Entry | None] = {}
        if len(wanted) > 10:
            for entry in self.store.in_batch(sub.scope, sub.batch):
                found[entry.key] = entry
        for key in wanted:
            if key not in found:
                found[key] = self.store.get(sub.scope, key)
        return found


MISSING: Entry | None = None


class Carried:
    """A payment as it was kept or carried (already in the target's form): the ledger needs its payload."""

    __slots__ = ("_payload",)

    def __init__(self, payload: dict[str, Any]):
        self._payload = payload

    def payload(self) -> dict[str, Any]:
        return self._payload
