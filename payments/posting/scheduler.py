"""Running many payments at once: groups handed to a pool of workers, repeats after their first
occurrence, and a halt once the target is down, so payments not yet started are not attempted."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..errors import TargetError, TargetUnavailable
from .outcome import Outcome, kind_of, stops_posting

Progress = Callable[[int, Outcome], None]


class Halt:
    """Remembers why posting stopped (the target unavailable, refusing our identity, or time up).
    One per call, or one shared by every call that posts the same file: once set, later payments are
    answered "not attempted" with that reason; nothing is lost, and a retry may send them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: TargetError | None = None

    def note(self, outcome: Outcome) -> None:
        if stops_posting(outcome):
            self._set(outcome.error or TargetUnavailable("target unavailable"))

    def check(self, deadline: float | None) -> None:
        if self.error is None and deadline is not None and time.monotonic() >= deadline:
            self._set(TargetUnavailable("not attempted: the request ran out of time", retry_after=5))

    def _set(self, error: TargetError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error

    def skipped(self, count: int) -> list[Outcome]:
        error = self.error
        assert error is not None
        return [Outcome(kind_of(error), error=error, attempted=False) for _ in range(count)]


def schedule(
    count: int,
    size: int,
    workers: int,
    key_of: Callable[[int], str | None],
    post: Callable[[list[int]], list[Outcome]],
    halt: Halt,
    *,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Post payments 0..count-1 in groups of `size` on `workers` threads; outcomes in input order.

    `key_of(i)` names payment i's ledger key (None without a ledger): a payment repeated within this
    call waits for its first occurrence (after every first has finished), so the repeat is answered
    "already posted" rather than "in flight"."""
    outcomes: list[Outcome | None] = [None] * count
    lock = threading.Lock()

    def run(group: list[int]) -> None:
        halt.check(deadline)
        results = halt.skipped(len(group)) if halt.error is not None else post(group)
        with lock:
            for i, outcome in zip(group, results, strict=True):
                outcomes[i] = outcome
                halt.note(outcome)
                if progress is not None:
                    progress(i, outcome)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="payments-post") if workers > 1 else None
    futures: list[Future[None]] = []
    # Groups are identified no further ahead than there are workers to take them: hashing the
    # whole input at once would hold the interpreter lock while the first requests try to go out.
    ahead = threading.BoundedSemaphore(max(workers, 1))

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
            # In a copy of the caller's context: what it set (the ledger's CALLER) holds in the workers.
            futures.append(pool.submit(contextvars.copy_context().run, run_then_free, group))

    def drain() -> None:
        for future in futures:
            future.result()
        futures.clear()

    try:
        # Groups go out as soon as they are identified, so the first request does not wait for the
        # whole input to be hashed.
        repeats: list[int] = []
        seen: set[str] = set()
        group: list[int] = []
        for i in range(count):
            key = key_of(i)
            if key is not None:
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
        drain()
        for start in range(0, len(repeats), size):
            submit(repeats[start : start + size])
        drain()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return [o for o in outcomes if o is not None]
