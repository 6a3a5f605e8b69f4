"""POST: a webhook call's bytes and headers in, its answer out. Validates the route, the media type, the
size, the JSON and every payment, then posts (or queues) them; errors are RFC 9457 problem details."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import codec, telemetry
from ..errors import CallerRefused, LedgerUnavailable
from ..inbound import Caller, Gate
from ..ledger import CALLER, Scope, keys_of
from ..model import CustomerPayment, check
from ..posting import Outcome, Pipeline
from ..work import QueuedPipeline, QueueUnavailable
from ..work.submission import accepted
from .answers import (
    accepted_answer,
    already,
    invalid,
    itemised,
    ledger_problem,
    outcome_problem,
    refused,
    safely,
    storage_unavailable,
)
from .check import check_batch, tell_refused
from .contract import (
    HTTP_TIME_BUDGET_SECONDS,
    IGNORED_HEADER,
    MAX_REPORTED_ERRORS,
    NEGATED_HEADER,
    PROBLEM,
    Answer,
    problem,
)

log = logging.getLogger("payments.webhook")


def _is_json_media_type(content_type: str) -> tuple[bool, str | None]:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        return False, None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False, value.strip()
    return True, None


def _guid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value or ""))
    except ValueError:
        return None


def _batch_items(data: Any) -> tuple[list[Any], str] | None:
    """The records of a batch body and the JSON Pointer prefix to them, or None for one object."""
    if isinstance(data, list):
        return data, ""
    if isinstance(data, dict) and "value" in data and set(data) <= {"value", "@odata.context"}:
        return (data["value"], "/value") if isinstance(data["value"], list) else ([], "/value")
    return None


def handle_post(
    *,
    body: bytes,
    headers: Mapping[str, str],
    company_id: str | None,
    journal_id: str | None,
    pipeline: Callable[[], Pipeline],
    gate: Callable[[], Gate],
    sender: str | None = None,
) -> Answer:
    """Answer one webhook call; never raises, never leaks a traceback. `sender`: the call came on a
    Standard Webhooks sender's route and must be signed with its secret."""

    def answer() -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            caller = gate().admit(lowered, body, sender=sender)
        except CallerRefused as exc:
            return refused(exc, signed=sender is not None)
        entered = CALLER.set(caller.id)  # every ledger entry this call creates records its caller
        entry = telemetry.ENTRY_POINT.set("webhook")
        try:
            given = _handle(body, lowered, company_id, journal_id, pipeline, caller)
        finally:
            CALLER.reset(entered)
            telemetry.ENTRY_POINT.reset(entry)
        log.info("webhook call from %s answered %d", caller.id, given.status)
        if pipeline().rules.amount_sign == "positive":
            given.headers[NEGATED_HEADER] = "true"
        return given

    detail = "The relay failed unexpectedly before posting anything further; see its logs."
    return safely(answer, "handling a webhook call", detail)


def _handle(
    body: bytes,
    headers: dict[str, str],
    company_id: str | None,
    journal_id: str | None,
    make_pipeline: Callable[[], Pipeline],
    caller: Caller,
) -> Answer:
    pipeline = make_pipeline()
    settings = pipeline.client.settings
    company, journal = _guid(company_id), _guid(journal_id)
    if company is None or journal is None:
        bad = [("companyId", company_id)] if company is None else []
        bad += [("journalId", journal_id)] if journal is None else []
        return problem(
            400,
            "invalid-route",
            "The URL does not name a company and journal",
            "; ".join(f"{name} {value!r} is not a GUID" for name, value in bad),
            errors=[{"parameter": name, "detail": f"{value!r} is not a GUID"} for name, value in bad],
        )
    content_type = headers.get("content-type", "")
    ok, charset = _is_json_media_type(content_type)
    if not ok:
        detail = (
            f"charset {charset} is not supported; send UTF-8"
            if charset
            else f"send Content-Type: application/json (got {content_type or 'none'!r})"
        )
        return problem(415, "unsupported-media-type", "Unsupported media type", detail)
    declared = headers.get("content-length", "")
    size = max(len(body), int(declared) if declared.isdigit() else 0)
    if size > settings.max_body_bytes:
        return problem(
            413,
            "body-too-large",
            "Request body too large",
            f"the body is {size} bytes; at most {settings.max_body_bytes} are accepted: split the batch",
        )
    if not body.strip():
        return problem(
            400,
            "malformed-body",
            "The body is empty",
            "send a customerPayment JSON object or an array of them",
        )
    try:
        data = codec.loads(body)
    except codec.NotUtf8Error as exc:
        return problem(400, "malformed-body", "The body is not UTF-8", f"the body is {exc}")
    except codec.JsonSyntaxError as exc:
        return problem(400, "malformed-body", "The body is not valid JSON", str(exc))

    raw_key = headers.get("idempotency-key")
    key = _idempotency_key(raw_key) if raw_key is not None else None
    if raw_key is not None and key is None:
        return problem(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be a string of 1 to 255 printable ASCII characters, quoted or bare",
        )
    if key is None and caller.delivery is not None:
        # A signed delivery's webhook-id is its idempotency key (Standard Webhooks: a retry keeps it).
        # The sender in the text is what its former (shared) ledger key hashed: kept for the migration.
        key = f"webhook-id:{caller.id}:{caller.delivery}"
    prefer = _preferences(headers.get("prefer", ""))
    batch = _batch_items(data)
    if batch is None:
        return _single(pipeline, company, journal, data, Keyed(caller.id, key), prefer)
    items, prefix = batch
    return _batch(pipeline, company, journal, items, prefix, Keyed(caller.id, key), prefer)


@dataclass(frozen=True, slots=True)
class Keyed:
    """A call's explicit idempotency key (None: keys derive from each payment) and whose it is."""

    caller: str
    key: str | None

    def ledger_keys(self, pipeline: Pipeline, company: str, journal: str, count: int | None) -> list[str]:
        """The caller's own ledger keys (`ledger.callers`); raises LedgerUnavailable."""
        assert self.key is not None
        return keys_of(pipeline.ledger, Scope(company, journal), self.caller, self.key, count)


def _preferences(value: str) -> set[str]:
    """The preference names of a Prefer header (RFC 7240), lower-case, parameters dropped."""
    return {p.split(";")[0].split("=")[0].strip().lower() for p in value.split(",") if p.strip()}


def _idempotency_key(value: str) -> str | None:
    """The key of an `Idempotency-Key` header (an RFC 8941 string per the IETF draft; a bare token is
    accepted too)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(value) <= 255 or not all(" " <= ch <= "~" for ch in value):
        return None
    return value


def _single(
    pipeline: Pipeline, company: str, journal: str, data: Any, keyed: Keyed, prefer: set[str]
) -> Answer:
    checked = check(data, pipeline.rules)
    target = pipeline.client.settings.target
    telemetry.received(1, target)
    if not checked.ok:
        telemetry.payment_outcome("invalid", target=target, company=company, journal=journal, location="/")
        count = len(checked.errors)
        return invalid(
            "The payment is invalid",
            f"{count} problem(s); nothing was posted",
            checked.errors[:MAX_REPORTED_ERRORS],
            count,
        )
    assert checked.payment is not None
    key = keyed.key
    try:
        ledger_key = keyed.ledger_keys(pipeline, company, journal, None)[0] if key else None
    except LedgerUnavailable as exc:
        return storage_unavailable(exc)
    if isinstance(pipeline, QueuedPipeline):
        ignored = {0: checked.ignored} if checked.ignored else {}
        queued = _through_queue(
            pipeline, company, journal, [checked.payment], [ledger_key], ignored, key, prefer
        )
        if isinstance(queued, Answer):
            return queued
        outcome = queued[0]
    else:
        outcome = pipeline.post_one(company, journal, checked.payment, key=ledger_key)
    if outcome.ok:
        status, headers = (201, {}) if outcome.kind == "created" else already(outcome, key is not None)
        if outcome.client_request_id:
            headers["client-request-id"] = outcome.client_request_id
        if checked.ignored:
            headers[IGNORED_HEADER] = ", ".join(checked.ignored)
        return Answer(status, outcome.created, headers)
    answer = ledger_problem(outcome) or outcome_problem(outcome)
    if checked.ignored and answer.body is not None:
        answer.body["ignoredProperties"] = checked.ignored
    return answer


def _batch(
    pipeline: Pipeline,
    company: str,
    journal: str,
    items: list[Any],
    prefix: str,
    keyed: Keyed,
    prefer: set[str],
) -> Answer:
    if not items:
        return problem(
            422,
            "validation-failed",
            "The batch is empty",
            "send at least one customerPayment",
            errors=[{"pointer": prefix, "detail": "must be a non-empty array of customerPayment objects"}],
        )
    checked = check_batch(items, prefix, pipeline.rules)
    target = pipeline.client.settings.target
    telemetry.received(len(items), target)
    if checked.invalid:  # one invalid payment refuses the batch: none of them is posted
        tell_refused(len(items), prefix, target, company, journal)
        detail = f"{checked.invalid} of {len(items)} payments are invalid; nothing was posted"
        unchecked = len(items) - checked.checked
        if unchecked:
            detail = (
                f"{checked.invalid} of the first {checked.checked} of {len(items)} payments are invalid; "
                f"nothing was posted; the other {unchecked} were not checked once {checked.error_count} "
                "problems were found: fix these and send the batch again"
            )
        answer = invalid("The batch is invalid", detail, checked.errors, checked.error_count)
        if unchecked and answer.body is not None:
            answer.body["unchecked"] = unchecked
        return answer
    payments = checked.payments
    deadline = time.monotonic() + HTTP_TIME_BUDGET_SECONDS
    key = keyed.key
    try:
        keys = keyed.ledger_keys(pipeline, company, journal, len(payments)) if key else None
    except LedgerUnavailable as exc:
        return storage_unavailable(exc)
    ignored = checked.ignored
    if isinstance(pipeline, QueuedPipeline):
        queued = _through_queue(pipeline, company, journal, payments, keys, ignored, key, prefer)
        if isinstance(queued, Answer):
            return queued
        outcomes = queued
    else:
        outcomes = pipeline.post_all(company, journal, payments, keys=keys, deadline=deadline)
    results, statuses, retry_after, summary = itemised(outcomes, ignored, key is not None)
    if len(statuses) == 1 and statuses <= {200, 201}:
        return Answer(statuses.pop(), {"summary": summary, "results": results})
    if len(statuses) == 1:
        # Every payment failed the same way: answer with that status, so a sender's retry logic works.
        first = results[0]["problem"]
        answer = problem(
            first["status"],
            first["type"].removeprefix(PROBLEM),
            first["title"],
            f"none of the {len(results)} payments was created; each result says why",
            summary=summary,
            results=results,
        )
        if retry_after:
            answer.headers["Retry-After"] = max(retry_after, key=int)
        return answer
    answer = Answer(207, {"summary": summary, "results": results})
    if retry_after:
        answer.headers["Retry-After"] = max(retry_after, key=int)
    return answer


# -- the work queue: accepted now, posted by the queue's posters -----------------------------------


def _through_queue(
    pipeline: QueuedPipeline,
    company: str,
    journal: str,
    payments: list[CustomerPayment],
    keys: list[str | None] | list[str] | None,
    ignored: dict[int, list[str]],
    key: str | None,
    prefer: set[str],
) -> list[Outcome] | Answer:
    """Accept and queue the payments; their outcomes when the posters settle them within the answer
    budget, else `202 Accepted` pointing at the batch's status. A large batch, or one sent with
    `Prefer: respond-async`, is kept as it is and answered at once; a poster takes it in."""
    settings = pipeline.client.settings
    extra = {"explicit": key is not None, "ignored": {str(i): v for i, v in ignored.items()}}
    asked = "respond-async" in prefer
    if asked or len(payments) > settings.async_above:
        try:
            sub = pipeline.defer(company, journal, payments, keys=keys, extra=extra)
        except (LedgerUnavailable, QueueUnavailable) as exc:
            return storage_unavailable(exc)
        return accepted_answer(sub, [accepted(sub.batch)] * len(payments), asked, located=True)
    # A caller waits for this answer: a small call goes on the priority queue, not behind queued batches.
    small = len(payments) <= settings.priority_at_most
    sub = pipeline.submit(company, journal, payments, keys=keys, priority=small)
    sub.extra = extra
    outcomes = pipeline.wait(sub, time.monotonic() + settings.answer_within_seconds)
    if all(o.kind != "accepted" for o in outcomes):
        return outcomes
    try:
        pipeline.batches.put(sub)
        located = True
    except LedgerUnavailable as exc:
        log.error("batch %s accepted, but its status cannot be kept: %s", sub.batch, exc)
        located = False
    return accepted_answer(sub, outcomes, asked, located=located)
