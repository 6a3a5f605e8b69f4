"""Settings are validated once, with messages that name the environment variable."""

from __future__ import annotations

import pytest

from payments.settings import SettingsError, load_settings


def test_batch_size_is_limited_by_the_target(monkeypatch):
    monkeypatch.setenv("PAYMENTS_BATCH_SIZE", "21")
    monkeypatch.setenv("PAYMENTS_TARGET", "graph")
    with pytest.raises(SettingsError, match="PAYMENTS_BATCH_SIZE: graph accepts at most 20 requests in one \\$batch"):
        load_settings()
