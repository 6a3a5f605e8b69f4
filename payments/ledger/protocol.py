"""The exactly-once protocol: each payment is posted exactly once, or reported as ambiguous.

Written against a small persistence interface (`store.LedgerStore`), the way AWS Lambda Powertools
separates idempotency from DynamoDB: Azure Table Storage sits behind it in production
(`table.TableLedgerStore`), an in-memory store for offline runs of the command line.

Protocol, per payment key:
1. claim: insert-if-absent a `claimed` entry with a lease (atomic; never read-then-insert);
2. post, then record the outcome: `posted` (with the target's id), `rejected`, or `ambiguous`;
   a definite "nothing was created" (target unavailable) releases the claim;
3. someone else's live claim means the payment is in flight; a stale claim (a crashed worker) or an
   `ambiguous` entry may have reached the target, so it is reconciled first: the target's journal is
   searched by the payment's natural key, then (posting a journal deletes its lines) its posted
   entries by documentNumber, and a match is adopted instead of posting. "Absent" counts only once
   the first request can no longer be queued or running at the target (`settle` after it may have
   been sent). Without a natural key that survives posting (documentNumber) the entry stays
   `ambiguous` for a person to resolve; it is never re-posted on a guess.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .. import codec
from ..errors import LedgerUnavailable
from ..model import CustomerPayment
from .decision import Decision
from .entry import CALLER, Entry, Scope, evolve, open_row
from .keys import fingerprint, natural_key
from .queued import Queued
from .store import LedgerStore

log = logging.getLogger("payments.ledger")

CALLER_KEYS_SINCE = "caller-keys-since"  # when Idempotency-Keys became the caller's own on this ledger
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_STORED_BODY = 30_000  # characters: a Table string property holds 32K UTF-16 code units


Find = Callable[[dict[str, str]], list[dict[str, Any]]]  # natural key -> what the target holds


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger(Queued):
    """The exactly-once protocol over a `LedgerStore`."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        lease: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=30),
        settle: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = _now,
    ):
        self.store = store
        self.lease = lease
        self.retention = retention
        # How long after a request left the target may still act on it: Business Central queues a
        # request up to 8 minutes and ends it at 10 (operational limits).
        self.settle = settle
        self.clock = clock
        self._former_until: datetime | None = None

    # -- before posting -----------------------------------------------------------------------

    def _fresh(
        self, scope: Scope, key: str, payment: CustomerPayment, payment_fingerprint: str | None, now: datetime
    ) -> Entry:
        """A new claim on `key`, leased until now + lease."""
        payload = payment.payload()
        return Entry(
            scope=scope,
            key=key,
            state="claimed",
            fingerprint=payment_fingerprint or fingerprint(payload),
            claimed_until=now + self.lease,
            created_at=now,
            updated_at=now,
            natural=natural_key(payload),
            sent_by=now + self.lease,
            caller=CALLER.get(),
        )

    def claim(
        self,
        scope: Scope,
        key: str,
        payment: CustomerPayment,
        find: Find,
        *,
        find_posted: Find | None = None,
        replay_rejections: bool = False,
        payment_fingerprint: str | None = None,
    ) -> Decision:
        """Claim `key` for posting, or say why not. `find` searches the target's journal by natural key,
        `find_posted` its posted entries (None: it cannot be searched there)."""
        now = self.clock()
        fresh = self._fresh(scope, key, payment, payment_fingerprint, now)
        for _ in range(5):
            stored = self.store.insert(fresh)
            if stored is not None:
                return Decision("post", stored)
            existing = self.store.get(scope, key)
            if existing is None:
                continue  # released between our insert and get: try again
            if existing.is_expired(now, self.retention):
                taken = self._take_over(existing, fresh, sends=True)
                if taken is None:
                    continue
                return Decision("post", taken)
            if existing.fingerprint != fresh.fingerprint:
                return Decision(
                    "conflict", existing, reason="the key was used before for a different payment"
                )
            if existing.state == "posted":
                return Decision("done", existing)
            if existing.state == "rejected":
                if replay_rejections:
                    return Decision("done", existing)
                taken = self._take_over(existing, fresh, sends=True)  # nothing exists at the target
                if taken is None:
                    return Decision("in-flight", existing)
                return Decision("post", taken)
            if existing.state == "queued":  # accepted, never sent: whoever takes it first sends it
                taken = self._take_over(existing, fresh, sends=True)
                if taken is None:
                    return Decision("in-flight", existing)
                return Decision("post", taken)
            if existing.state == "claimed" and not existing.is_stale(now):
                return Decision("in-flight", existing)
            # A stale claim (its worker died) or an ambiguous outcome: it may exist at the target.
            taken = self._take_over(existing, fresh, sends=False)
            if taken is None:
                return Decision("in-flight", existing)
            return self._reconcile(taken, find, find_posted, now)
        raise LedgerUnavailable(f"could not claim {key}: the entry kept changing")

    def _take_over(self, existing: Entry, fresh: Entry, *, sends: bool) -> Entry | None:
        """Claim an existing entry; `sends`: this claim may send the payment (else `sent_by` is kept)."""
        taken = evolve(
            existing,
            state="claimed",
            fingerprint=fresh.fingerprint,
            claimed_until=fresh.claimed_until,
            updated_at=fresh.updated_at,
            attempts=existing.attempts + 1,
            natural=fresh.natural or existing.natural,
            sent_by=fresh.sent_by if sends else existing.sent_by or existing.claimed_until,
        )
        return self.store.replace(taken)

    def _ambiguous(self, entry: Entry, reason: str) -> Decision:
        return Decision("ambiguous", self.mark(entry, state="ambiguous"), reason=reason)

    def _reconcile(self, entry: Entry, find: Find, find_posted: Find | None, now: datetime) -> Decision:
        natural = entry.natural
        if not (natural.get("documentNumber") or natural.get("externalDocumentNumber")):
            return self._ambiguous(
                entry,
                "an earlier attempt may have created it and it has no documentNumber or "
                "externalDocumentNumber to look it up by: check the journal, then resolve it with "
                "`python -m payments ledger resolve`",
            )
        try:
            matches = find(natural)
        except Exception as exc:  # the target cannot be searched now: stay ambiguous, do not post
            return self._ambiguous(entry, f"could not search the target to reconcile: {exc}")
        if len(matches) == 1:
            found = matches[0]
            self.record_posted(entry, found, status=201)
            log.info("reconciled %s: adopted %s found at the target", entry.key, found.get("id"))
            return Decision("done", entry, found=found)
        if len(matches) > 1:
            return self._ambiguous(entry, f"{len(matches)} payments at the target match it")
        # Not in the journal. Posting the journal deletes its lines: look among the posted entries,
        # which keep the documentNumber (and not the externalDocumentNumber).
        if not natural.get("documentNumber") or find_posted is None:
            return self._ambiguous(
                entry,
                "it is not in the journal, but the journal may have been posted since, and only a "
                "documentNumber can be found among posted entries: check the posted entries, then resolve "
                "it with `python -m payments ledger resolve`",
            )
        try:
            posted = find_posted(natural)
        except Exception as exc:
            return self._ambiguous(entry, f"could not search the target's posted entries: {exc}")
        if posted:
            found = {
                "documentNumber": natural["documentNumber"],
                "amount": Decimal(natural["amount"]) if natural.get("amount") else None,
                "postedEntries": [e.get("entryNumber") for e in posted],
            }
            self.record_posted(entry, found, status=201)
            log.info("reconciled %s: found among the target's posted entries", entry.key)
            return Decision("done", entry, found=found)
        if entry.may_still_run(now, self.settle):
            after = (entry.sent_by or entry.claimed_until) + self.settle
            return self._ambiguous(
                entry,
                "not found at the target, but the earlier request may still be queued or running there "
                f"(Business Central queues a request up to 8 minutes and ends it at 10): send it again "
                f"after {after:%Y-%m-%d %H:%M:%S} UTC",
            )
        log.info("reconciled %s: not at the target and no longer running there, posting", entry.key)
        sending = self.store.replace(evolve(entry, sent_by=entry.claimed_until, updated_at=now))
        if sending is None:  # someone else took it meanwhile: theirs to send
            return Decision("in-flight", entry)
        return Decision("post", sending)

    def _settled(self, entries: Iterable[Entry]) -> None:
        """Entries that left the work queue's hands (an outcome, a release): out of the open index. A
        failure here only leaves a row the next re-drive takes out."""
        rows = [open_row(e) for e in entries if e.payload is not None]
        if rows:
            try:
                self.store.unindex(rows)
            except LedgerUnavailable as exc:
                log.warning("%d entries settled but still in the open index: %s", len(rows), exc)

    # -- after posting ------------------------------------------------------------------------

    def claim_many(self, scope: Scope, items: list[tuple[str, CustomerPayment, str]]) -> list[Entry] | None:
        """Claim many new payments (key, payment, fingerprint) in one write when none is known yet;
        None when any key exists already (nothing was written: claim them one by one)."""
        now = self.clock()
        fresh = [self._fresh(scope, key, payment, fp, now) for key, payment, fp in items]
        return self.store.insert_many(fresh) if fresh else []

    def commit_many(self, changes: list[tuple[Entry, dict[str, Any]]]) -> None:
        """Record many outcomes in one write, falling back to one by one if any entry changed."""
        if not changes:
            return
        now = self.clock()
        updated = [evolve(entry, updated_at=now, **change) for entry, change in changes]
        stored = self.store.replace_many(updated)
        if stored is None:
            for entry, change in changes:
                self.mark(entry, **change)
            return
        for (entry, _), new in zip(changes, stored, strict=True):
            entry.etag = new.etag
        self._settled(e for e in updated if e.state not in ("queued", "claimed"))

    @staticmethod
    def posted(created: dict[str, Any], *, status: int) -> dict[str, Any]:
        body = codec.dumps(created)
        return {
            "state": "posted",
            "target_id": str(created.get("id") or "") or None,
            "response_status": status,
            "response_body": body if len(body) <= MAX_STORED_BODY else None,
            "error_code": None,
            "error_message": None,
        }

    @staticmethod
    def rejected(*, status: int | None, code: str | None, message: str) -> dict[str, Any]:
        return {
            "state": "rejected",
            "response_status": status,
            "error_code": code,
            "error_message": message[:2000],
        }

    @staticmethod
    def ambiguous(*, client_request_id: str | None, message: str) -> dict[str, Any]:
        return {"state": "ambiguous", "client_request_id": client_request_id, "error_message": message}

    def mark(self, entry: Entry, **changes: Any) -> Entry:
        """Write changes to an entry (optimistically: if it changed meanwhile, it is left as it is)."""
        updated = evolve(entry, updated_at=self.clock(), **changes)
        stored = self.store.replace(updated)
        if stored is None:
            log.error("ledger entry %s changed under us; leaving it as it is", entry.key)
            return updated
        entry.etag = stored.etag
        if stored.state not in ("queued", "claimed"):
            self._settled([stored])
        return stored

    def record_posted(self, entry: Entry, created: dict[str, Any], *, status: int) -> Entry:
        return self.mark(entry, **self.posted(created, status=status))

    def record_ambiguous(self, entry: Entry, *, client_request_id: str | None, message: str) -> Entry:
        return self.mark(entry, **self.ambiguous(client_request_id=client_request_id, message=message))

    def release(self, entry: Entry) -> None:
        """Nothing was created (the target was unavailable): forget the claim so a retry may post."""
        if not self.store.delete(entry):
            log.error(
                "could not release ledger entry %s; it becomes reclaimable when its lease ends", entry.key
            )
            return
        self._settled([entry])

    def former_keys_until(self) -> datetime:
        """Until when an Idempotency-Key's former ledger key (from before keys were the caller's) may
        still hold an entry: the retention period after the first worker used caller keys on this
        ledger; never, for a ledger that held no entry then. Read once per worker (`ledger.callers`)."""
        if self._former_until is None:
            now = self.clock()
            since = self.store.mark_once(CALLER_KEYS_SINCE, now if self.store.has_entries() else EPOCH)
            self._former_until = since + self.retention
        return self._former_until

    # -- people -------------------------------------------------------------------------------

    def attention(self) -> Iterator[Entry]:
        """Entries a person may need to look at: ambiguous ones, and stale claims."""
        now = self.clock()
        for entry in self.store.scan({"ambiguous", "claimed"}):
            if entry.state == "ambiguous" or entry.is_stale(now):
                yield entry

    def resolve(self, scope: Scope, key: str, *, target_id: str | None) -> Entry:
        """A person checked the target: record it as posted (with its id) or as not posted (forgotten)."""
        entry = self.store.get(scope, key)
        if entry is None:
            raise KeyError(key)
        if target_id:
            return self.mark(entry, state="posted", target_id=target_id, error_message="resolved by hand")
        if not self.store.delete(entry):
            raise LedgerUnavailable(f"{key} changed while resolving it; look again")
        return evolve(entry, state="claimed")

    def forget_rejected(self, scope: Scope, key: str) -> bool:
        """Forget a payment the target refused (nothing exists there), so that it may be sent again,
        changed: a bank credit's key stays its own whatever the operator then decides. False when the
        entry is gone or is no longer a rejection."""
        entry = self.store.get(scope, key)
        return entry is not None and entry.state == "rejected" and self.store.delete(entry)

    def purge(self) -> int:
        """Delete entries older than the retention period; returns how many."""
        now = self.clock()
        count = 0
        for entry in self.store.scan():
            if (
                entry.state not in ("claimed", "queued")
                and entry.is_expired(now, self.retention)
                and self.store.delete(entry)
            ):
                count += 1
        return count
