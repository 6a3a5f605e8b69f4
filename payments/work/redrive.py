"""Nothing stranded on the queue side: payments accepted whose message never came (lost, expired or
poisoned) and claims whose poster died are queued again from the ledger, which holds their payloads."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from .. import codec
from ..ledger import Entry, Ledger, Scope
from .batches import BatchStore
from .message import Item, Work
from .queue import WorkQueue

log = logging.getLogger("payments.work")


def redrive(ledger: Ledger, queue: WorkQueue, older_than: timedelta) -> int:
    """Queue the stranded entries again (see `Ledger.stranded`); how many payments."""
    groups: dict[tuple[Scope, str], list[Entry]] = defaultdict(list)
    for entry in ledger.stranded(older_than):
        groups[(entry.scope, entry.batch or "redrive")].append(entry)
    count = 0
    for (scope, batch), entries in groups.items():
        items = [
            # A queued entry is claimed by its etag in one write; a stale claim by the full protocol
            # (its payment may have reached the target).
            Item(
                e.key, codec.loads(e.payload or "{}"), e.fingerprint, e.etag if e.state == "queued" else None
            )
            for e in entries
        ]
        queue.send(Work(scope.company_id, scope.journal_id, batch, items, caller=entries[0].caller))
        count += len(items)
        log.warning("re-drove %d stranded payments of batch %s to the work queue", len(items), batch)
    return count


def redrive_intakes(batches: BatchStore, queue: WorkQueue, older_than: timedelta) -> int:
    """Queue again the intake of deferred batches still waiting for it (their message was lost)."""
    count = 0
    for batch in batches.stranded(older_than):
        queue.send_intake(batch)
        log.warning("re-drove the intake of deferred batch %s", batch)
        count += 1
    return count
