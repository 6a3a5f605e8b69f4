"""Settings are validated once, with messages that name the environment variable."""

from __future__ import annotations

import pytest

from payments.settings import SettingsError, load_settings


def test_batch_size_is_limited_by_the_target(monkeypatch):
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "21")
    monkeypatch.setenv("PAYMENTS_TARGET", "graph")
    with pytest.raises(
        SettingsError, match="PAYMENTS_BATCH_SIZE: graph accepts at most 20 requests in one \\$batch"
    ):
        load_settings()


def test_graph_v1_has_no_financials(monkeypatch):
    monkeypatch.setenv("PAYMENTS_TARGET", "graph")
    monkeypatch.setenv("PAYMENTS_API_BASE_URL", "https://graph.example.test/v1.0")  # the path is what counts
    with pytest.raises(SettingsError, match=r"Microsoft Graph has financials .* only under /beta"):
        load_settings()
    monkeypatch.setenv("PAYMENTS_API_BASE_URL", "https://graph.example.test/beta")
    assert load_settings().base_url.endswith("/beta")
