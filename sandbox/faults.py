"""Injected faults: the queues `inject()` and `inject_inner()` fill, their answers, held requests."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from .odata import ODataError

if TYPE_CHECKING:
    from .server import Handler

FAULTS = ("401", "429", "502", "503", "504", "drop-before", "drop-after", "timeout")
# Answered as one inner response of a $batch; "none" answers that inner request normally, so a test can
# aim a fault at the second request of a batch.
INNER_FAULTS = ("400", "429", "503", "none")
TIMEOUT_HOLD_SECONDS = 30.0

Fault = tuple[str, str | None]  # the fault's name and the Retry-After it was injected with

_FAULT_STATUS = {
    # A refusal as Business Central words its validation errors (an OData error, code DialogException),
    # for tests of what follows a rejection; the sandbox's own checks give the real messages.
    "400": (400, "Application_DialogException", "Customer 50000 is blocked for this transaction (injected)."),
    "401": (401, "Authentication_InvalidCredentials", "The access token has expired."),
    "429": (429, "Application_TooManyRequests", "Too many requests reached. Please try again later."),
    "502": (502, "BadGateway", "The service is temporarily unavailable (bad gateway)."),
    "503": (503, "Application_ServiceUnavailable", "The service is temporarily unavailable."),
    "504": (504, "GatewayTimeout", "The request timed out at the gateway."),
}


def is_status_fault(name: str | None) -> bool:
    """A fault answered with an error status (rather than a dropped or held connection)."""
    return name in _FAULT_STATUS


def status_fault(fault: Fault) -> ODataError:
    """The error answer of an injected status fault (429 gets `Retry-After: 1` unless told otherwise)."""
    name, retry_after = fault
    status, code, message = _FAULT_STATUS[name]
    if retry_after is None and name == "429":
        retry_after = "1"
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return ODataError(status, code, message, headers)


class FaultQueues:
    """The outer faults (one per payments request or batch) and inner ones (one per inner request of a
    batch), served FIFO, and the event that frees requests held by a "timeout". Guarded by the sandbox's
    lock, which the caller may already hold."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._outer: deque[Fault] = deque()
        self._inner: deque[Fault] = deque()
        self._release = threading.Event()  # set (and replaced) by release_held() to free held requests

    def inject(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._outer.extend([(fault, retry_after)] * times)

    def inject_inner(self, fault: str, *, times: int = 1, retry_after: str | None = None) -> None:
        if fault not in INNER_FAULTS:
            raise ValueError(f"unknown inner fault {fault!r}; expected one of {', '.join(INNER_FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._inner.extend([(fault, retry_after)] * times)

    def pending(self) -> list[str]:
        with self._lock:
            return [f for f, _ in self._outer]

    def pending_inner(self) -> list[str]:
        with self._lock:
            return [f for f, _ in self._inner]

    def take(self) -> Fault | None:
        """The next outer fault, if any, for a payments request (or batch) being served."""
        with self._lock:
            return self._outer.popleft() if self._outer else None

    def take_inner(self) -> Fault | None:
        """The next inner fault, if any, for an inner request of a batch."""
        with self._lock:
            fault = self._inner.popleft() if self._inner else None
            return None if fault is not None and fault[0] == "none" else fault

    def clear(self) -> None:
        with self._lock:
            self._outer.clear()
            self._inner.clear()

    def release_held(self) -> None:
        """Free every request a "timeout" holds now; later ones are held again."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()

    def hold_or_drop(self, h: Handler, fault: str) -> None:
        """Never answer: hold a "timeout" until release_held() or TIMEOUT_HOLD_SECONDS, then close."""
        if fault == "timeout":
            with self._lock:
                release = self._release
            release.wait(TIMEOUT_HOLD_SECONDS)
        h.drop()
