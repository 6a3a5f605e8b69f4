"""Queue-levelled posting: entry points accept payments and queue them; posters send them.

`submit.QueuedPipeline` (accept, enqueue, read outcomes), `submission.Submission` (a batch handed to the
queue), `poster.Poster` (the queue trigger's work), `message` (what a queue message holds),
`queue.WorkQueue` (the Storage queue), `batches.BatchStore` (what GET /api/batches/{id} reads).
"""

from .batches import BatchStore
from .message import BadMessage, Item, Work, decode
from .poster import Handled, Poster
from .queue import QueueUnavailable, WorkQueue
from .submission import Submission
from .submit import QueuedPipeline

__all__ = [
    "BadMessage",
    "BatchStore",
    "Handled",
    "Item",
    "Poster",
    "QueueUnavailable",
    "QueuedPipeline",
    "Submission",
    "Work",
    "WorkQueue",
    "decode",
]
