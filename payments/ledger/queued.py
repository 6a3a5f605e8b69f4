"""The work queue's side of the ledger: payments accepted without asking the target (the webhook and
the file drop; posters send them), taken by posters in one write, put back when nothing was created,
and found again when stranded, through the index of open entries.

Mixed into `protocol.Ledger`, whose store, clock, lease, retention and `_fresh` it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from .. import codec
from ..errors import LedgerUnavailable
from ..model import CustomerPayment
from .decision import Decision
from .entry import Entry, OpenRow, Scope, evolve, open_row
from .store import LedgerStore

OPEN_INDEXED = "open-indexed"  # since when every open entry is in the index (`stranded`)


class Queued:
    """Accepting for the work queue and finding stranded work (part of `Ledger`)."""

    store: LedgerStore
    clock: Callable[[], datetime]
    lease: timedelta
    retention: timedelta
    _fresh: Callable[..., Entry]

    def _queued(
        self,
        scope: Scope,
        key: str,
        payment: CustomerPayment,
        payment_fingerprint: str | None,
        batch: str,
        now: datetime,
    ) -> Entry:
        """A new entry for a payment accepted for the work queue: nothing sent (no `sent_by`), and its
        payload kept so it can be queued again from the ledger alone."""
        fresh = self._fresh(scope, key, payment, payment_fingerprint, now)
        payload = codec.dumps(payment.payload())
        return evolve(fresh, state="queued", claimed_until=now, sent_by=None, payload=payload, batch=batch)

    def accept(
        self,
        scope: Scope,
        key: str,
        payment: CustomerPayment,
        *,
        batch: str,
        replay_rejections: bool = False,
        payment_fingerprint: str | None = None,
    ) -> Decision:
        """Accept a payment for the work queue, or say why not, without asking the target: `queue`
        (recorded now), `queued` (accepted earlier, still waiting), `reconcile` (it may exist at the
        target: a poster must look before sending), or as `claim` says: done, in-flight, conflict."""
        now = self.clock()
        fresh = self._queued(scope, key, payment, payment_fingerprint, batch, now)
        self.store.index_open([open_row(fresh)])  # first: an entry is never open without its index row
        for _ in range(5):
            stored = self.store.insert(fresh)
            if stored is not None:
                return Decision("queue", stored)
            existing = self.store.get(scope, key)
            if existing is None:
                continue
            renewed = evolve(fresh, attempts=existing.attempts + 1, etag=existing.etag)
            if existing.is_expired(now, self.retention) or (
                existing.state == "rejected"
                and existing.fingerprint == fresh.fingerprint
                and not replay_rejections
            ):
                stored = self.store.replace(renewed)  # forgotten, or rejected: nothing exists at the target
                if stored is None:
                    continue
                return Decision("queue", stored)
            if existing.fingerprint != fresh.fingerprint:
                return Decision(
                    "conflict", existing, reason="the key was used before for a different payment"
                )
            if existing.state in ("posted", "rejected"):
                return Decision("done", existing)
            if existing.state == "queued":
                return Decision("queued", existing)
            if existing.state == "claimed" and not existing.is_stale(now):
                # A poster is sending it (it came through the queue: it has a payload): wait for it.
                return Decision("queued" if existing.payload else "in-flight", existing)
            return Decision("reconcile", existing)
        raise LedgerUnavailable(f"could not accept {key}: the entry kept changing")

    def accept_many(
        self, scope: Scope, items: list[tuple[str, CustomerPayment, str]], batch: str
    ) -> list[Entry] | None:
        """Accept many new payments (key, payment, fingerprint) in one write when none is known yet;
        None when any key exists already (nothing was written: accept them one by one)."""
        now = self.clock()
        fresh = [self._queued(scope, key, payment, fp, batch, now) for key, payment, fp in items]
        if not fresh:
            return []
        self.store.index_open([open_row(e) for e in fresh])  # first: never open without its index row
        return self.store.insert_many(fresh)

    def take_many(self, entries: list[Entry]) -> list[Entry] | None:
        """Claim queued entries as a poster, in one write: each must still be as the acceptor left it
        (its etag); None when any changed (then claim them one by one)."""
        now = self.clock()
        taken = [
            evolve(
                e, state="claimed", claimed_until=now + self.lease, sent_by=now + self.lease, updated_at=now
            )
            for e in entries
        ]
        return self.store.replace_many(taken) if taken else []

    def requeue(self, entry: Entry) -> Entry | None:
        """Nothing was created (the target was saturated or unavailable): back to queued, for a later
        message. None when the entry changed meanwhile (then it is someone else's)."""
        now = self.clock()
        return self.store.replace(evolve(entry, state="queued", claimed_until=now, updated_at=now))

    def stranded(self, older_than: timedelta) -> Iterator[Entry]:
        """Entries no poster may be working on that need one: accepted and untouched for `older_than`
        (their message was lost, or dead-lettered), and stale claims (their poster died).

        Read from the index of open entries (a row per entry accepted for the work queue, from before
        its entry is written until it is settled), so a run costs what is open, not the whole ledger.
        A ledger from before the index is scanned once, and its open entries indexed."""
        now = self.clock()
        if self.store.marked(OPEN_INDEXED) is None:
            yield from self._stranded_by_scan(older_than, now)
            self.store.mark_once(OPEN_INDEXED, now)
            return
        gone: list[OpenRow] = []
        for row in self.store.indexed():
            _, scope, key = row
            entry = self.store.get(scope, key)
            if entry is None or entry.state not in ("queued", "claimed"):
                gone.append(row)  # settled (its row is normally taken out then) or resolved by a person
            elif self._stranded(entry, older_than, now):
                yield entry
        if gone:
            self.store.unindex(gone)

    def _stranded(self, entry: Entry, older_than: timedelta, now: datetime) -> bool:
        if entry.payload is None:
            return False  # taken by the direct path (no queue): `attention` lists it for a person
        if entry.state == "queued":
            return entry.updated_at + older_than <= now
        return entry.is_stale(now)

    def _stranded_by_scan(self, older_than: timedelta, now: datetime) -> Iterator[Entry]:
        """The whole ledger's open entries, once, indexing them as it goes."""
        found = [e for e in self.store.scan({"queued", "claimed"}) if e.payload is not None]
        self.store.index_open([open_row(e) for e in found])
        yield from (e for e in found if self._stranded(e, older_than, now))
