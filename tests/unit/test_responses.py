"""Reading the target's answers, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from payments.outbound import parse_retry_after


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
    from payments.outbound.responses import classify

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


def test_a_batch_item_refused_on_a_line_number_the_target_chose_is_sent_again():
    """In a $batch answer, a duplicate key on an item without a lineNumber is resent; with one, final."""
    import json

    import requests

    from payments.outbound import batch
    from payments.outbound.responses import classify, parse_retry_after
    from payments.outbound.retry import Retryable

    duplicate = {
        "status": 409,
        "body": {"error": {"code": "Internal_EntityWithSameKeyExists", "message": "Line No.='10000'"}},
    }
    answer = requests.Response()
    answer._content = json.dumps({"responses": [{"id": "0", **duplicate}, {"id": "1", **duplicate}]}).encode()
    payloads = [{"amount": 1}, {"amount": 2, "lineNumber": 10000}]

    def judge(i, status, code, message, retry, rid):  # as the client judges an item
        auto = "lineNumber" not in payloads[i]
        return classify(
            status, code, message, parse_retry_after(retry), rid, idempotent=False, auto_numbered=auto
        )

    results: dict = {}
    again = batch.read_answers(answer, "rid", [0, 1], results, judge)
    assert again == [0]
    assert isinstance(results[0], Retryable) and results[0].unavailable.may_exist is False
    assert results[1].code == "Internal_EntityWithSameKeyExists" and results[1].client_request_id == "rid"
