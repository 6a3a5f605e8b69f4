"""The work queue: a Storage queue in the function's own account, reached with its identity.

The Functions host reads it (the queue trigger, base64 by default) and moves a message that failed
`maxDequeueCount` times to `<queue>-poison`; this side only sends, delays and counts.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import RelayError
from .message import Work, intake_message

log = logging.getLogger("payments.work")

MAX_DELAY_SECONDS = 7 * 24 * 3600 - 60  # a message cannot stay invisible longer than it lives (7 days)


class QueueUnavailable(RelayError):
    """The work queue could not be written; what was accepted is in the ledger and is re-driven."""


class WorkQueue:
    """Sends work messages; `poison` is the host's queue of messages that kept failing."""

    def __init__(self, queue: Any, poison: Any):  # azure.storage.queue.QueueClient
        self.queue = queue
        self.poison = poison
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            for q in (self.queue, self.poison):
                try:
                    q.create_queue()
                except ResourceExistsError:
                    pass
            self._ready = True

    def send(self, work: Work, *, delay: float = 0) -> int:
        """Send `work` (split into messages that fit); visible after `delay` seconds. How many messages."""
        from azure.core.exceptions import AzureError

        count = 0
        try:
            self._ensure()
            for part in work.split():
                self.queue.send_message(
                    part.encode(), visibility_timeout=int(min(max(delay, 0), MAX_DELAY_SECONDS))
                )
                count += 1
        except AzureError as exc:
            raise QueueUnavailable(f"work queue unavailable: {type(exc).__name__}: {exc}") from None
        return count

    def send_intake(self, batch: str) -> None:
        """Queue the intake of a deferred batch (kept in the batch store)."""
        from azure.core.exceptions import AzureError

        try:
            self._ensure()
            self.queue.send_message(intake_message(batch))
        except AzureError as exc:
            raise QueueUnavailable(f"work queue unavailable: {type(exc).__name__}: {exc}") from None

    def depth(self) -> tuple[int, int]:
        """Approximate message counts: (work, poison)."""
        self._ensure()
        return (
            self.queue.get_queue_properties().approximate_message_count,
            self.poison.get_queue_properties().approximate_message_count,
        )
