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


def test_a_cold_start_reads_the_settings_once_and_again_only_when_the_environment_changes(monkeypatch):
    """Start-up's check, telemetry and the first invocation share one reading; a changed environment (as
    tests make, or an app setting changed, which restarts the worker anyway) is read anew, never stale."""
    from payments import runtime

    runtime.reset()
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "7")
    first = runtime.current_settings()
    assert runtime.current_settings() is first and first.batch_size == 7
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "8")
    assert runtime.current_settings().batch_size == 8
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "21")
    monkeypatch.setenv("PAYMENTS_TARGET", "graph")
    with pytest.raises(SettingsError, match="PAYMENTS_BATCH_SIZE: graph accepts at most 20"):
        runtime.current_settings()
    runtime.reset()


def test_settings_come_from_the_environment_and_from_code_only(monkeypatch, tmp_path):
    """No .env file is read (a developer's file beside the app must not change what the relay does)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PAYMENTS_BATCH_SIZE=9\n")
    monkeypatch.delenv("PAYMENTS_BATCH_SIZE", raising=False)
    assert load_settings().batch_size == 0
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "5")
    assert load_settings().batch_size == 5
