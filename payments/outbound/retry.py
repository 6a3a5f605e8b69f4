"""The one retry policy for every request to the target: single requests, `$batch` envelopes and the
items a `$batch` answers one by one all wait, give up and count attempts the same way.

Only an attempt that certainly did not act at the target is retried (it raises `Retryable`); the
wait is exponential backoff with jitter, or the target's Retry-After when that is longer; attempts
stop at PAYMENTS_MAX_ATTEMPTS or when the next wait would break PAYMENTS_RETRY_MAX_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay
from tenacity.wait import wait_exponential_jitter

from ..errors import TargetUnavailable
from ..settings import Settings


class Retryable(Exception):
    """This attempt certainly did not act at the target; another may be made. Carries what to report
    if no other attempt is made, and the target's Retry-After (seconds) when it gave one."""

    def __init__(self, unavailable: TargetUnavailable, retry_after: float | None):
        super().__init__(unavailable.message)
        self.unavailable = unavailable
        self.retry_after = retry_after


class RetryPolicy:
    """Builds the attempt loop (tenacity) from the settings; one per client."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None]):
        self._max_attempts = settings.max_attempts
        self._budget = settings.retry_max_seconds
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_base_seconds,
            max=settings.backoff_max_seconds,
            jitter=settings.backoff_base_seconds,
        )

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        hinted = exc.retry_after if isinstance(exc, Retryable) else None
        return max(backoff, hinted) if hinted is not None else backoff

    def attempts(self) -> Retrying:
        """`for attempt in policy.attempts(): with attempt: ...`; a final `Retryable` is re-raised."""
        return Retrying(
            stop=stop_after_attempt(self._max_attempts) | stop_before_delay(self._budget),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            reraise=True,
        )
