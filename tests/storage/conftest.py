"""Fixtures for the tests that run against Azurite (blob and table storage) and the sandbox."""

from __future__ import annotations

import time

import pytest

from tests.support.entra import Entra, entra_settings
from tests.support.filedrop import configure_storage
from tests.support.webhook import ACME_NEW_SECRET, ACME_SECRET


@pytest.fixture
def drop(azure_env, azurite, sandbox):
    """A fresh inbox/reports/archive trio and ledger table in Azurite, and the relay pointed at them."""
    return configure_storage(azure_env, azurite)


@pytest.fixture
def env(azure_env, azurite, sandbox):
    """As `drop`, with short leases: a claim goes stale after 2 s, a file lease lasts 15 s."""
    return configure_storage(
        azure_env, azurite, PAYMENTS_LEDGER_LEASE_SECONDS="2", PAYMENTS_FILE_LEASE_SECONDS="15"
    )


@pytest.fixture(scope="module")
def entra():
    """Entra ID's side of inbound authentication on loopback (tests/support/entra.py)."""
    stand_in = Entra()
    yield stand_in
    stand_in.close()


@pytest.fixture
def relay(azure_env, azurite, sandbox, entra, monkeypatch):
    """The relay with the ledger in Azurite, Entra ID callers of the test tenant, and one signed sender,
    acme, whose secrets are ACME_SECRET and ACME_NEW_SECRET (mid-rotation)."""
    monkeypatch.setenv("PAYMENTS_WEBHOOK_SECRET_ACME", f"{ACME_NEW_SECRET} {ACME_SECRET}")
    n = time.monotonic_ns()
    env = configure_storage(
        azure_env,
        azurite,
        **entra_settings(entra),
        PAYMENTS_WEBHOOK_SENDERS="acme",
        PAYMENTS_WEBHOOK_TABLE=f"webhooks{n}",
    )
    env.entra = entra
    return env
