"""The queue-triggered poster: with the work queue on, the only code that sends payments to the target.

Per message: claim the payments (one conditional write when nothing changed since they were accepted),
send them (a `$batch` of PAYMENTS_BATCH_SIZE, or one by one) under the limits every instance shares,
record each outcome. A target too busy or unavailable (429, 503, no slot before the claim ends) puts the
payments back on the queue with a growing delay instead of retrying in place; payments that may exist
at the target are looked at again once the target can no longer be working on them.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .. import codec, telemetry
from ..errors import LedgerUnavailable, TargetError
from ..ledger import CALLER, Entry, Ledger, Scope, natural_key
from ..outbound import TargetClient
from ..outbound.shared import NoPlace, Place
from ..posting.outcome import Outcome, answered
from ..posting.settle import Settler, ledger_change, send_by
from .message import BadMessage, Item, Work, decode, intake_of
from .queue import WorkQueue
from .submit import Carried, QueuedPipeline

log = logging.getLogger("payments.work")

MAX_BACKOFF_SECONDS = 300.0
MARKS_PER_WRITE = 100  # outcomes written at once (a table transaction holds 100)
# A message for a journal another thread of this worker already waits for goes back on the queue, as it
# is, for this long (plus as much jitter), rather than hold one of the worker's message slots waiting:
# meanwhile the slot takes work for a journal that is free.
STEP_ASIDE_SECONDS = 5.0


@dataclass(slots=True)
class Handled:
    """What one message came to: outcomes by kind, and what went back on the queue (for logs, tests)."""

    kinds: Counter[str] = field(default_factory=Counter)
    requeued: int = 0
    delay: float = 0.0
    rechecks: int = 0
    stepped_aside: int = 0  # payments of a message put back untouched: their journal was crowded here


class Poster:
    def __init__(
        self,
        client: TargetClient,
        ledger: Ledger,
        queue: WorkQueue,
        pipeline: QueuedPipeline | None = None,
        *,
        priority: bool = False,
    ):
        self.pipeline = pipeline  # takes in deferred batches
        self.priority = priority  # the priority queue's: callers wait for these answers
        self.client = client
        self.ledger = ledger
        self.queue = queue
        self._settler = Settler(client, ledger)  # searching the target when a payment may exist there

    def handle(self, text: str | bytes) -> Handled:
        """Post one message's payments. Raises only when the ledger cannot be reached before anything
        was sent (the host then delivers the message again, and after five failures to the poison queue)."""
        entered = telemetry.ENTRY_POINT.set("queue")  # outcomes decided here are the queue function's
        source = telemetry.SOURCE.set(None)  # set from the message: the file its payments came from
        try:
            return self._handle(text)
        finally:
            telemetry.ENTRY_POINT.reset(entered)
            telemetry.SOURCE.reset(source)

    def _handle(self, text: str | bytes) -> Handled:
        handled = Handled()
        intake = intake_of(text)
        if intake is not None:
            if self.pipeline is not None and self.pipeline.intake(intake) is not None:
                handled.kinds["intake"] += 1
            return handled
        try:
            work = decode(text)
        except BadMessage as exc:
            log.critical("dropped a message from the work queue: %s", exc)
            return handled
        # A journal's line is one message long, across every instance: a message for a journal that
        # another message already waits for goes back on the queue as it is, nothing claimed, for a
        # while, and this slot takes another (a single payment's poster never steps aside: its caller
        # is waiting, and it asks for the turn more often than the batches do).
        place = None if self.priority else self.client.journal_place(work.company, work.journal)
        if place is None and not self.priority:
            self.queue.send(work, delay=STEP_ASIDE_SECONDS + random.uniform(0, STEP_ASIDE_SECONDS))  # noqa: S311
            handled.stepped_aside = len(work.items)
            log.info("batch %s: another message waits for its journal already", work.batch)
            return handled
        try:
            return self._post(work, handled, place)
        finally:
            if place is not None:  # left once the turn was had; here if it never came to waiting
                place.leave()

    def _post(self, work: Work, handled: Handled, place: Place | NoPlace | None) -> Handled:
        scope = Scope(work.company, work.journal)
        telemetry.SOURCE.set(work.source)  # the outcome lines name the file the payments came from
        entered = CALLER.set(work.caller)  # entries claimed afresh record who sent the payments
        try:
            claimed, later = self._claim(scope, work, handled)
        finally:
            CALLER.reset(entered)
        back: list[Item] = []
        retry_after: float = 0
        size = max(self.client.settings.batch_size, 1)
        until = send_by(self.ledger, [entry for _, entry in claimed])
        # One turn at the journal for the whole message (this worker's and, with shared limits, every
        # instance's), rather than taking and giving it back for each insert. Outcomes are written to
        # the ledger after the turn is given back (a full transaction's worth sooner), so the next
        # insert into the journal does not wait for this one's ledger writes.
        turn = (
            self.client.journal_turn(work.company, work.journal, until, eager=self.priority, place=place)
            if claimed
            else nullcontext(True)
        )
        marks: list[tuple[Entry, dict[str, Any]]] = []
        try:
            with turn as ours:
                if not ours:  # the journal stayed busy until the claims end: they all wait on the queue
                    back.extend(self._requeue(entry, item) for item, entry in claimed)
                    retry_after = 5.0
                    claimed = []
                for start in range(0, len(claimed), size):
                    group = claimed[start : start + size]
                    if back:  # the target is busy or down: the rest waits with the others, unsent
                        back.extend(self._requeue(entry, item) for item, entry in group)
                        continue
                    if len(marks) >= MARKS_PER_WRITE:
                        self._commit(marks)
                        marks = []
                    outcomes = self._send(work, [item for item, _ in group], [entry for _, entry in group])
                    asked = self._sort(work, group, outcomes, handled, marks, back, later)
                    retry_after = max(retry_after, asked)
        finally:  # what was decided is recorded, whatever happened after
            self._commit(marks)
        if back:
            delay = max(retry_after, min(MAX_BACKOFF_SECONDS, 2.0**work.attempt)) + random.uniform(0, 1)  # noqa: S311 (jitter)
            again = Work(
                work.company, work.journal, work.batch, back, work.attempt + 1, work.caller, work.source
            )
            self.queue.send(again, delay=delay)
            handled.requeued, handled.delay = len(back), delay
            log.warning(
                "target busy or unavailable: %d payments of batch %s back on the queue for %.0fs "
                "(attempt %d)",
                len(back),
                work.batch,
                delay,
                work.attempt + 1,
            )
        for when, items in later.items():
            self.queue.send(
                Work(work.company, work.journal, work.batch, items, caller=work.caller, source=work.source),
                delay=when,
            )
            handled.rechecks += len(items)
        log.info(
            "batch %s: %s; %d back on the queue, %d to look at again",
            work.batch,
            dict(handled.kinds),
            handled.requeued,
            handled.rechecks,
        )
        return handled

    # -- claiming ------------------------------------------------------------------------------

    def _claim(
        self, scope: Scope, work: Work, handled: Handled
    ) -> tuple[list[tuple[Item, Entry]], dict[float, list[Item]]]:
        """The payments this poster now holds, and the ones to look at again later (by delay)."""
        later: dict[float, list[Item]] = {}
        if all(item.etag for item in work.items):
            taken = self.ledger.take_many([self._as_accepted(scope, work, item) for item in work.items])
            if taken is not None:
                return list(zip(work.items, taken, strict=True)), later
        claimed: list[tuple[Item, Entry]] = []
        now = self.ledger.clock()
        for item in work.items:
            decision = self.ledger.claim(
                scope,
                item.key,
                Carried(item.payload),
                lambda natural: self._settler.find(work.company, work.journal, natural),
                find_posted=lambda natural: self._settler.find_posted(work.company, natural),
                replay_rejections=True,  # a rejection is final here: accepting it again re-queues it
                payment_fingerprint=item.fingerprint,
            )
            entry = decision.entry
            if decision.action == "post" and entry is not None:
                claimed.append((item, entry))
                continue
            handled.kinds[decision.action] += 1
            self._tell_claimed(work, item, decision)
            if decision.action == "in-flight" and entry is not None:
                # Another poster holds it (a message delivered twice) or held it and died: look again
                # once its claim has ended.
                wait = max((entry.claimed_until - now).total_seconds(), 0) + 5
                later.setdefault(wait, []).append(Item(item.key, item.payload, item.fingerprint))
            elif decision.action == "ambiguous" and entry is not None:
                self._recheck_later(entry, item, later)
            elif decision.action == "conflict":
                log.error("work item %s: %s", item.key, decision.reason)
        return claimed, later

    def _tell_claimed(self, work: Work, item: Item, decision: Any) -> None:
        """Outcomes the ledger decided while claiming (telemetry): a payment found at the target and
        adopted, one still ambiguous after reconciliation (again at each look, while it stays so), a
        conflict. Not one posted before (whoever posted it counted it) nor one in flight elsewhere."""
        found = decision.action == "done" and getattr(decision, "found", None)
        kind = (
            "skipped" if found else decision.action if decision.action in ("ambiguous", "conflict") else None
        )
        if kind is None:
            return
        entry = decision.entry
        telemetry.payment_outcome(
            kind,
            target=self.client.settings.target,
            key=item.key,
            client_request_id=entry.client_request_id if entry is not None else None,
            company=work.company,
            journal=work.journal,
            natural=entry.natural if entry is not None else None,
            note=decision.reason or f"batch {work.batch}",
        )

    def _as_accepted(self, scope: Scope, work: Work, item: Item) -> Entry:
        """The entry as its acceptance wrote it (the etag says whether it still is)."""
        now = self.ledger.clock()
        return Entry(
            scope=scope,
            key=item.key,
            state="queued",
            fingerprint=item.fingerprint,
            claimed_until=now,
            created_at=now,
            updated_at=now,
            natural=natural_key(item.payload),
            payload=codec.dumps(item.payload),
            batch=work.batch,
            caller=work.caller,
            etag=item.etag,
        )

    def _recheck_later(self, entry: Entry, item: Item, later: dict[float, list[Item]]) -> None:
        """An outcome that may exist at the target and can be looked up by documentNumber: look again
        once the first request can no longer be running there (the ledger's settle time)."""
        if not entry.natural.get("documentNumber"):
            return  # only a person can resolve it (`python -m payments ledger attention`)
        now = self.ledger.clock()
        until = (entry.sent_by or entry.claimed_until) + self.ledger.settle - now
        wait = max(until, timedelta(0)).total_seconds() + 5
        later.setdefault(wait, []).append(Item(item.key, item.payload, item.fingerprint))

    # -- sending and recording -----------------------------------------------------------------

    def _send(self, work: Work, items: list[Item], entries: list[Entry]) -> list[Outcome]:
        by = send_by(self.ledger, entries)
        answers: list[Any]
        if len(items) == 1 and self.client.settings.batch_size <= 1:
            try:
                answers = [
                    self.client.create_payment(work.company, work.journal, items[0].payload, send_by=by)
                ]
            except TargetError as exc:
                answers = [exc]
        else:
            answers = self.client.create_payments_batch(
                work.company, work.journal, [i.payload for i in items], send_by=by
            )
        return [answered(a) for a in answers]

    def _requeue(self, entry: Entry, item: Item) -> Item:
        """Nothing was created: the entry goes back to queued, and its item with the new etag."""
        try:
            back = self.ledger.requeue(entry)
        except LedgerUnavailable as exc:
            log.error(
                "could not put %s back to queued (%s); its claim runs out and it is re-driven", item.key, exc
            )
            back = None
        return Item(item.key, item.payload, item.fingerprint, back.etag if back is not None else None)

    def _sort(
        self,
        work: Work,
        group: list[tuple[Item, Entry]],
        outcomes: list[Outcome],
        handled: Handled,
        marks: list[tuple[Entry, dict[str, Any]]],
        back: list[Item],
        later: dict[float, list[Item]],
    ) -> float:
        """One request's outcomes: certainly not created goes `back` on the queue, every other outcome
        to `marks` for the ledger (and ambiguous ones `later` too). The Retry-After asked for, or 0."""
        retry_after: float = 0
        for (item, entry), outcome in zip(group, outcomes, strict=True):
            handled.kinds[outcome.kind] += 1
            change = ledger_change(outcome)
            if change is None:  # certainly not created: back on the queue
                back.append(self._requeue(entry, item))
                retry_after = max(retry_after, getattr(outcome.error, "retry_after", 0) or 0)
                continue
            if outcome.client_request_id and change["state"] != "ambiguous":
                change["client_request_id"] = outcome.client_request_id  # for the status answer
            marks.append((entry, change))
            telemetry.payment_outcome(
                outcome.kind,
                target=self.client.settings.target,
                key=item.key,
                client_request_id=outcome.client_request_id,
                company=work.company,
                journal=work.journal,
                natural=entry.natural,
                note=outcome.note or f"batch {work.batch}",
            )
            if outcome.kind == "ambiguous":
                self._recheck_later(entry, item, later)
        return retry_after

    def _commit(self, marks: list[tuple[Entry, dict[str, Any]]]) -> None:
        try:
            self.ledger.commit_many(marks)
        except LedgerUnavailable:
            # The claims stay; once their lease runs out the re-drive reconciles them with the target.
            log.critical("outcomes of %d payments could not be written to the ledger", len(marks))
