"""Reading the target's answers, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from payments.target import parse_retry_after


def test_parse_retry_after_forms():
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now.timestamp())
        == 90
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp()) == 0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
