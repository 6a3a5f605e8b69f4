"""Flow control towards the target: a gate every worker waits at after a 429, and a bound on
requests in flight that adapts to the target's real limit."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from ..errors import Throttled


class ThrottleGate:
    """One gate per client: a 429 (or a Retry-After) closes it for every worker at once, so the
    relay slows down as a whole instead of each worker hammering the target on its own."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic):
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._open_at = 0.0
        self._streak = 0  # 429s without Retry-After since the last answer that came through
        self.pauses = 0  # times the gate was closed (or its closing extended)
        self.throttled = 0  # 429 answers seen, batch items included

    def pause(self, seconds: float, *, throttled: bool = False) -> None:
        with self._lock:
            self.throttled += throttled
            until = self._clock() + seconds
            if until > self._open_at:
                self._open_at = until
                self.pauses += 1

    def backoff(self, base: float, most: float) -> float:
        """How long to pause after a 429 that named no Retry-After: twice as long as after the one
        before, until an answer comes through (`through`)."""
        with self._lock:
            self._streak += 1
            return min(most, base * 2 ** (self._streak - 1))

    def through(self) -> None:
        """An answer came through: the next 429 starts the backoff afresh."""
        self._streak = 0

    def opens_at(self) -> float:
        """When the gate opens (monotonic; in the past when it is open)."""
        with self._lock:
            return self._open_at

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._open_at - self._clock()
            if delay <= 0:
                return
            self._sleep(delay)


class InFlightLimit:
    """Bounds requests in flight to the target, and adapts: each 429 lowers the bound by one (never
    below one), a run of successes raises it again up to the configured maximum. The relay thus
    settles at the target's real limit instead of provoking 429s forever at a bound set too high."""

    def __init__(self, maximum: int, *, handoff_seconds: float = 0.005, yield_seconds: float = 0.0005):
        self.maximum = maximum
        self.limit = maximum
        self.handoff_seconds = handoff_seconds
        self.yield_seconds = yield_seconds
        self._busy = 0
        self._waiting = 0
        self._handoffs = 0  # slots given up while someone waited; a waiter that takes one counts it down
        self._successes = 0
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # a slot is free
        self._taken = threading.Condition(lock)  # a waiter has taken the slot handed to it

    def __enter__(self) -> None:
        with self._cond:
            self._waiting += 1
            try:
                while self._busy >= self.limit:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._busy += 1
            if self._handoffs:
                self._handoffs -= 1
                self._taken.notify()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify()
            handed = self._waiting > 0
            if handed:
                # Hand the slot over: wait (briefly) until the waiter has it. Otherwise the waiter,
                # though woken, would wait for the interpreter lock while this thread goes on with
                # its answer, up to the switch interval (5 ms) during which the target sees a slot idle.
                self._handoffs += 1
                self._taken.wait(self.handoff_seconds)
        if handed:
            # Then stand aside a little longer: the new holder still has Python work (and a poll of
            # its pooled connection, which gives up the interpreter lock) before its request is on
            # the wire; this thread's answer can wait half a millisecond, the slot cannot.
            time.sleep(self.yield_seconds)

    @property
    def busy(self) -> int:
        """Requests in flight now."""
        return self._busy

    def throttled(self) -> None:
        with self._cond:
            self.limit = max(1, self.limit - 1)
            self._successes = 0

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self.limit < self.maximum and self._successes >= 4 * self.limit:
                self.limit += 1
                self._successes = 0
                self._cond.notify()


class JournalLocks:
    """One insert at a time per journal. Business Central numbers a new line by reading the journal's
    last line and inserting after it, so two inserts into one journal at once can take the same number;
    Microsoft advises against parallel inserts under one parent. Different journals go in parallel."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._waiting: Counter[tuple[str, str]] = Counter()  # threads waiting for each journal's lock

    def acquire(self, journal: tuple[str, str], until: float | None) -> threading.Lock | None:
        """The journal's lock, held; None if `until` (monotonic) passed before it was free."""
        key = (journal[0].lower(), journal[1].lower())  # GUIDs: one journal however its id is cased
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if lock.acquire(blocking=False):
            return lock
        timeout = -1.0 if until is None else max(0.0, until - time.monotonic())
        with self._guard:
            self._waiting[key] += 1
        try:
            return lock if lock.acquire(timeout=timeout) else None
        finally:
            with self._guard:
                self._waiting[key] -= 1

    def crowded(self, journal: tuple[str, str]) -> bool:
        """Whether a thread of this worker is already waiting for the journal (another holds it): a
        further message for it would only hold one of the worker's message slots while it waits."""
        key = (journal[0].lower(), journal[1].lower())
        with self._guard:
            return self._waiting[key] > 0


class RateWindow:
    """At most `limit` requests in any `window` seconds: the target's rate window (Business Central:
    6,000 per five minutes per identity), kept by pacing instead of by provoking 429s. A request that
    would have to wait longer than `max_wait` is not sent: the caller is told when to try again."""

    def __init__(
        self,
        limit: int,
        window: float,
        max_wait: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window = window
        # The target counts a request from its arrival, a little after it is counted here: keep a
        # margin (5 %, at most a second) so its window has always slid as far as ours.
        self._span = window + min(1.0, 0.05 * window)
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()

    def acquire(self) -> None:
        pace(self._try, self.limit, self.window, self.max_wait, self._sleep)

    def _try(self) -> float | None:
        """None when a request may go now (it is counted), else the seconds until one may."""
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self._span:
                self._sent.popleft()
            if len(self._sent) < self.limit:
                self._sent.append(now)
                return None
            return self._sent[0] + self._span - now


def pace(
    attempt: Callable[[], float | None],
    limit: int,
    window: float,
    max_wait: float,
    sleep: Callable[[float], None],
    whose: str = "",
) -> None:
    """Wait until `attempt` lets a request go (returns None; otherwise how long to wait), but never
    longer than `max_wait` in all: then the request is not sent, and the caller learns when to retry."""
    waited = 0.0
    while (delay := attempt()) is not None:
        if waited + delay > max_wait:
            raise Throttled(
                f"not sent: the target's rate window is full ({limit} requests in {window:g} s{whose}); "
                f"send it again in {math.ceil(delay)} s",
                retry_after=math.ceil(delay),
            )
        sleep(delay)
        waited += delay
