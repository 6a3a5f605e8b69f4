"""What a refused caller is told, and what the log keeps of it.

The caller gets RFC 6750's challenge (`WWW-Authenticate` with `error` and `error_description`) and a
problem detail that says what failed without naming the relay's tenant, audience or settings. The
operator gets the reason, which may name them, in the log; but refusals cost an attacker nothing, so
each reason is logged at most `PER_MINUTE` times a minute and the rest counted, the count logged with
the next refusal of that reason after the minute. Every refusal is also counted in the `callers.refused`
metric (telemetry), which no rate can flood.

Written here rather than taken from a library: the standard library's logging has no rate limit, and
the few PyPI packages that add one keep a window per message text, which an attacker varies at will.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import telemetry
from ..errors import CallerRefused

log = logging.getLogger("payments.inbound")

REALM = "payments-relay"
PER_MINUTE = 10
WINDOW_SECONDS = 60.0


def challenge(scheme: str, refusal: CallerRefused) -> str:
    """The WWW-Authenticate value for a 401 or 403 (RFC 6750 section 3): no error code when no
    credential was sent, else the code and the refusal's title as its description."""
    value = f'{scheme} realm="{REALM}"'
    if refusal.error:
        # error_description allows printable ASCII except '"' and '\\' (RFC 6750 section 3).
        described = "".join(ch for ch in refusal.title if " " <= ch <= "~" and ch not in '"\\')
        value += f', error="{refusal.error}", error_description="{described}"'
    return value


@dataclass(slots=True)
class _Window:
    started: float
    logged: int = 0
    unlogged: int = 0


class RefusalLog:
    """Logs refusals with their reason, at most `per_minute` lines per reason (problem type) a minute."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Start every reason's minute afresh (a new worker's state)."""
        with self._lock:
            self._windows.clear()

    def record(self, refusal: CallerRefused) -> None:
        telemetry.caller_refused(refusal.status, refusal.slug)
        now = self.clock()
        with self._lock:
            current = self._windows.get(refusal.slug)
            unlogged = 0
            if current is None or now - current.started >= self.window:
                unlogged = current.unlogged if current is not None else 0
                current = self._windows[refusal.slug] = _Window(now)
            speak = current.logged < self.per_minute
            if speak:
                current.logged += 1
            else:
                current.unlogged += 1
        if unlogged:
            log.warning(
                "%d more callers refused (%s) in the minute before were counted, not logged one by one",
                unlogged,
                refusal.slug,
            )
        if speak:
            log.warning("caller refused (%d %s): %s", refusal.status, refusal.slug, refusal.reason)


REFUSALS = RefusalLog()
