"""Running relays side by side, as several invocations or instances would, and watching the sandbox."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from sandbox import SANDBOX_COMPANY_ID as C


def side_by_side(jobs: Sequence[tuple[Any, str, Sequence[Any]]]) -> list[list[Any]]:
    """Each (pipeline, journal, payments) job's `post_all` on its own thread; outcomes in job order."""
    results: list[list[Any]] = [[] for _ in jobs]

    def run(i: int, pipeline: Any, journal: str, items: Sequence[Any]) -> None:
        results[i] = pipeline.post_all(C, journal, list(items))

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@contextmanager
def peak_in_flight(sandbox: Any) -> Any:
    """The most requests the sandbox processed at once while the block ran (`peak[0]` afterwards)."""
    peak, done = [0], threading.Event()

    def watch(read: Callable[[], int] = lambda: sandbox.in_flight) -> None:
        while not done.is_set():
            peak[0] = max(peak[0], read())
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield peak
    finally:
        done.set()
        watcher.join()
