"""The one fake clock: time passes only when told, so waits are asserted without waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """`sleep` records each wait and moves the clock on by it. Read it as monotonic seconds
    (`monotonic`, for the target client) or as a UTC datetime (call it, for the ledger)."""

    START = datetime(2026, 11, 24, 12, tzinfo=UTC)

    def __init__(self, sleeps: list[float] | None = None):
        self.sleeps = sleeps if sleeps is not None else []
        self.elapsed = 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds

    def advance(self, delta: timedelta) -> None:
        self.elapsed += delta.total_seconds()

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def __call__(self) -> datetime:
        return self.START + timedelta(seconds=self.elapsed)
