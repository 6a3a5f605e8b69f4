"""The relay's own objects as the tests build them from the environment (see the `azure_env` fixture)."""

from __future__ import annotations

from payments.credentials import target_credential
from payments.ledger import Ledger, MemoryLedgerStore
from payments.outbound import TargetClient
from payments.posting import Pipeline
from payments.settings import load_settings

from .clock import FakeClock


def make_client(sleeps: list[float] | None = None) -> TargetClient:
    """A client from the current settings; given `sleeps`, its waits are recorded there, not slept."""
    settings = load_settings()
    if sleeps is None:
        return TargetClient(settings, target_credential(settings))
    fake = FakeClock(sleeps)
    return TargetClient(settings, target_credential(settings), sleep=fake.sleep, clock=fake.monotonic)


def make_pipeline(sleeps: list[float] | None = None) -> Pipeline:
    """A pipeline with an in-memory ledger (the protocol is the production one)."""
    return Pipeline(make_client(sleeps), Ledger(MemoryLedgerStore()))
