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


def test_every_target_error_says_whether_the_payment_may_exist():
    from payments.errors import (
        AmbiguousOutcome,
        IdentityUnavailable,
        NotAuthorized,
        PermanentRejection,
        RelayError,
        TargetRefusal,
        Throttled,
        Transient,
    )
    from payments.target.responses import classify

    answers = {
        (400, False): PermanentRejection,
        (403, False): NotAuthorized,
        (500, False): AmbiguousOutcome,
        (502, False): AmbiguousOutcome,  # a gateway that may have passed the request on
        (408, False): AmbiguousOutcome,
    }
    for (status, idempotent), kind in answers.items():
        verdict = classify(status, "Code", "message", None, "rid", idempotent=idempotent)
        assert type(verdict) is kind, status
        assert verdict.may_exist is (kind is AmbiguousOutcome)
        assert isinstance(verdict, RelayError)
    for status in (429, 503):
        retry = classify(status, "Code", "message", 2.0, "rid", idempotent=False)
        assert type(retry.unavailable) is (Throttled if status == 429 else Transient)
        assert retry.unavailable.may_exist is False and retry.retry_after == 2.0
    refusal = classify(404, "Internal_RecordNotFound", "gone", None, "rid", idempotent=False)
    assert isinstance(refusal, TargetRefusal) and refusal.code == "Internal_RecordNotFound"
    assert IdentityUnavailable("no token").may_exist is False
