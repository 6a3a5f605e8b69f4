"""Business Central online's OData limits, per user or service principal (docs
`administration/operational-limits-online.md`, REFERENCE section 3): five requests processed at once,
up to 95 more queued, `429` only beyond the queue or beyond 6,000 requests in a sliding five-minute
window, `503` for a request queued for eight minutes, `408` at the eight-minute operation timeout and
`504` at the ten-minute request timeout. Every size and time is a field, so tests can run them fast."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from .odata import ODataError


@dataclass
class Limits:
    """The sizes and times; the defaults are Business Central online's."""

    concurrent: int = 5  # "Max concurrent requests": processed at the same time
    queue: int = 95  # "Max request queue size": waiting beyond the concurrent ones
    rate: int = 6000  # requests per sliding window
    window: float = 300.0  # seconds: the sliding window
    queue_timeout: float = 480.0  # seconds a request may wait in the queue (then 503)
    operation_timeout: float = 480.0  # seconds a request may be processed (then 408, the rest undone)
    request_timeout: float = 600.0  # seconds from arrival to answer (then 504, the rest undone)


def throttled(reason: str) -> ODataError:
    # Business Central documents Retry-After on 502 and 503 only: a 429 carries none.
    return ODataError(429, "Application_TooManyRequests", reason)


class Admission:
    """One identity's share of the service: who is processed, who waits in line, who is refused."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._cond = threading.Condition()
        self._processing = 0
        self._line: deque[object] = deque()  # waiting requests, first come first served
        self._arrivals: deque[float] = deque()  # admitted requests' arrival times within the window

    @property
    def processing(self) -> int:
        with self._cond:
            return self._processing

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._line)

    def enter(self, limits: Limits, arrived: float) -> float:
        """Wait for a processing slot (the time it was had), or raise the 429 or 503 the caller gets."""
        with self._cond:
            now = time.monotonic()
            while self._arrivals and self._arrivals[0] <= now - limits.window:
                self._arrivals.popleft()
            if len(self._arrivals) >= limits.rate:
                wait = math.ceil(self._arrivals[0] + limits.window - now)
                raise throttled(
                    f"More than {limits.rate} requests in {limits.window:g} seconds. "
                    f"Please try again in {wait} seconds."
                )
            if self._processing < limits.concurrent and not self._line:
                self._arrivals.append(arrived)
                self._processing += 1
                return now
            if len(self._line) >= limits.queue:
                raise throttled("Too many concurrent requests. Please try again later.")
            self._arrivals.append(arrived)
            ticket = object()
            self._line.append(ticket)
            give_up = now + limits.queue_timeout
            try:
                while self._line[0] is not ticket or self._processing >= limits.concurrent:
                    remaining = give_up - time.monotonic()
                    if remaining <= 0 or self._stopping.is_set():
                        raise ODataError(
                            503,
                            "Application_ServiceUnavailable",
                            "The request waited in the queue for too long. Please try again later.",
                            {"Retry-After": "5"},
                        )
                    self._cond.wait(min(remaining, 0.5))
                self._processing += 1
                return time.monotonic()
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()

    def leave(self) -> None:
        with self._cond:
            self._processing -= 1
            self._cond.notify_all()


class Deadline:
    """When a request being processed must stop: the operation timeout counts from the start of its
    processing, the request timeout from its arrival. An operation that cannot finish before then is
    not done (Business Central cancels the session)."""

    def __init__(self, limits: Limits, arrived: float, started: float) -> None:
        operation_end = started + limits.operation_timeout
        request_end = arrived + limits.request_timeout
        self.at = min(operation_end, request_end)
        self.error = (
            ODataError(408, "Request_Timeout", "The operation exceeded the time allowed for a request.")
            if operation_end <= request_end
            else ODataError(504, "Gateway_Timeout", "The request exceeded the time allowed and was aborted.")
        )

    def allows(self, finish: float) -> bool:
        return finish <= self.at
