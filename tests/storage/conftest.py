"""Fixtures for the tests that run against Azurite (blob and table storage) and the sandbox."""

from __future__ import annotations

import pytest

from tests.support.filedrop import configure_storage


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
