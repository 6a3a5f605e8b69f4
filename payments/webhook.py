"""The webhook contract: bytes and headers in, a status, headers and JSON body out.

Kept free of the Functions runtime so it is tested directly; `function_app.py` only adapts
`func.HttpRequest` to `handle_post` and the `Answer` back. Errors are RFC 9457 problem details.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec, telemetry
from .errors import (
    AmbiguousOutcome,
    CallerRefused,
    LedgerUnavailable,
    NotAuthorized,
    PermanentRejection,
    SettingsError,
    TargetUnavailable,
)
from .inbound import Caller, Gate
from .inbound.refusal import REFUSALS, challenge
from .ledger import CALLER, Scope, keys_of
from .model import CustomerPayment, FieldError, Rules, as_dicts, check
from .posting import Outcome, Pipeline
from .work import QueuedPipeline, QueueUnavailable, Submission
from .work.submit import accepted

log = logging.getLogger("payments.webhook")

PROBLEM = "urn:payments-relay:problem:"
PROBLEM_JSON = "application/problem+json"
IGNORED_HEADER = "Payments-Ignored-Properties"
ALREADY_HEADER = "Payments-Already-Posted"
# Present when amounts are written as money received (PAYMENTS_AMOUNT_SIGN=positive): they were negated.
NEGATED_HEADER = "Payments-Amounts-Negated"
# The Functions host answers an HTTP trigger within 230 s; stop starting new posts well before.
HTTP_TIME_BUDGET_SECONDS = 180.0
# A validation answer lists at most this many problems and counts the rest: its size stays bounded
# whatever the body holds.
MAX_REPORTED_ERRORS = 100
STATUS_ROUTE = "/api/batches"  # GET {STATUS_ROUTE}/{id}: a batch answered 202 Accepted
SIGNED_ROUTE = "/api/webhooks"  # a Standard Webhooks sender's routes: {SIGNED_ROUTE}/{sender}/...


@dataclass(slots=True)
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"  # always UTF-8
    encoded: bytes | None = None  # the body's bytes, once written (`handle_post` writes them)

    def content(self) -> bytes:
        if self.encoded is None:
            self.encoded = b"" if self.body is None else codec.dumpb(self.body)
        return self.encoded


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Answer:
    body: dict[str, Any] = {"type": PROBLEM + slug, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return Answer(status, body, {}, PROBLEM_JSON)


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


def outcome_problem(outcome: Outcome) -> Answer:
    """The answer for one payment that was not created (shared by single and batch answers)."""
    exc = outcome.error
    rid = outcome.client_request_id
    if isinstance(exc, PermanentRejection):
        status = exc.status if exc.status in (404, 409) else 422
        return problem(
            status,
            "target-rejected",
            "The target API rejected the payment",
            f"{exc.code}: {exc.message}",
            targetStatus=exc.status,
            targetCode=exc.code,
            clientRequestId=rid,
        )
    if isinstance(exc, AmbiguousOutcome):
        return problem(
            502,
            "outcome-unknown",
            "The payment may exist at the target",
            f"{exc.message}. Do not resend it until it has been checked at the target.",
            mayExist=True,
            clientRequestId=rid,
        )
    if isinstance(exc, NotAuthorized):
        answer = problem(
            503,
            "relay-not-authorized",
            "The target refused the relay's identity",
            "Nothing was created. An administrator must grant the relay's managed identity access "
            f"to the target ({exc.code}).",
            targetCode=exc.code,
            clientRequestId=rid,
        )
        answer.headers["Retry-After"] = "300"
        return answer
    if isinstance(exc, TargetUnavailable):
        detail = exc.message if not outcome.attempted else f"{exc.message}; nothing was created"
        answer = problem(
            503,
            "target-unavailable",
            "The target API is unavailable",
            detail,
            clientRequestId=rid,
            attempted=outcome.attempted,
        )
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer
    raise TypeError(f"no answer for outcome {outcome.kind}")  # pragma: no cover


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
    return _safely(answer, "handling a webhook call", detail)


def refused(exc: CallerRefused, *, signed: bool) -> Answer:
    """The answer to a caller the gate refused: a 401 or 403 carries RFC 6750's challenge; the reason,
    which may name the relay's configuration, goes only to the (rate-limited) log."""
    REFUSALS.record(exc)
    answer = problem(exc.status, exc.slug, exc.title, exc.detail)
    if exc.status in (401, 403):
        answer.headers["WWW-Authenticate"] = challenge("webhook-signature" if signed else "Bearer", exc)
    elif exc.status == 503:
        answer.headers["Retry-After"] = "30"
    return answer


def _safely(make: Callable[[], Answer], doing: str, detail: str) -> Answer:
    """`make()`'s answer, written out here (so a failure to write it is answered too); a wrong setting
    or anything unexpected becomes a problem answer, never a traceback."""
    try:
        answer = make()
        answer.content()
        return answer
    except SettingsError as exc:
        log.error("relay misconfigured: %s", exc)
        return problem(500, "relay-misconfigured", "The relay is misconfigured", str(exc))
    except Exception:
        log.exception("unexpected failure %s", doing)
        return problem(
            500,
            "internal-error",
            "Unexpected error",
            detail,
        )


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


def _storage_unavailable(exc: Exception) -> Answer:
    log.error("payments not accepted: %s", exc)
    answer = problem(
        503,
        "relay-storage-unavailable",
        "The relay cannot accept payments right now",
        "its storage is unavailable; nothing was accepted or posted; send the same request again later",
    )
    answer.headers["Retry-After"] = "30"
    return answer


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


def _already(outcome: Outcome, explicit: bool) -> tuple[int, dict[str, str]]:
    """Status and headers for a payment the ledger knows was posted before."""
    if explicit:
        return outcome.replay_status or 201, {"Idempotent-Replayed": "true"}
    return 200, {ALREADY_HEADER: "true"}


def _ledger_problem(outcome: Outcome) -> Answer | None:
    if outcome.kind == "in-flight":
        answer = problem(
            409,
            "request-in-progress",
            "This payment is being posted right now",
            "another request with the same payment (or Idempotency-Key) is in progress; retry shortly",
        )
        answer.headers["Retry-After"] = "5"
        return answer
    if outcome.kind == "conflict":
        return problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused for a different payment",
            "this Idempotency-Key was used before with a different payment; use a new key",
        )
    return None


def _invalid(title: str, detail: str, shown: list[FieldError], count: int) -> Answer:
    """422 with the first MAX_REPORTED_ERRORS problems and how many more there are, so that the answer
    stays small whatever the body holds."""
    if count > len(shown):
        detail += f"; the first {len(shown)} of {count} problems are listed"
    return problem(
        422,
        "validation-failed",
        title,
        detail,
        errors=as_dicts(shown),
        errorCount=count,
        errorsNotShown=(count - len(shown)) or None,
    )


def _single(
    pipeline: Pipeline, company: str, journal: str, data: Any, keyed: Keyed, prefer: set[str]
) -> Answer:
    checked = check(data, pipeline.rules)
    target = pipeline.client.settings.target
    telemetry.received(1, target)
    if not checked.ok:
        telemetry.payment_outcome("invalid", target=target, company=company, journal=journal, location="/")
        count = len(checked.errors)
        return _invalid(
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
        return _storage_unavailable(exc)
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
        status, headers = (201, {}) if outcome.kind == "created" else _already(outcome, key is not None)
        if outcome.client_request_id:
            headers["client-request-id"] = outcome.client_request_id
        if checked.ignored:
            headers[IGNORED_HEADER] = ", ".join(checked.ignored)
        return Answer(status, outcome.created, headers)
    answer = _ledger_problem(outcome) or outcome_problem(outcome)
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
    checked = _check_batch(items, prefix, pipeline.rules)
    target = pipeline.client.settings.target
    telemetry.received(len(items), target)
    if checked.invalid:  # one invalid payment refuses the batch: none of them is posted
        _tell_refused(len(items), prefix, target, company, journal)
        detail = f"{checked.invalid} of {len(items)} payments are invalid; nothing was posted"
        unchecked = len(items) - checked.checked
        if unchecked:
            detail = (
                f"{checked.invalid} of the first {checked.checked} of {len(items)} payments are invalid; "
                f"nothing was posted; the other {unchecked} were not checked once {checked.error_count} "
                "problems were found: fix these and send the batch again"
            )
        answer = _invalid("The batch is invalid", detail, checked.errors, checked.error_count)
        if unchecked and answer.body is not None:
            answer.body["unchecked"] = unchecked
        return answer
    payments = checked.payments
    deadline = time.monotonic() + HTTP_TIME_BUDGET_SECONDS
    key = keyed.key
    try:
        keys = keyed.ledger_keys(pipeline, company, journal, len(payments)) if key else None
    except LedgerUnavailable as exc:
        return _storage_unavailable(exc)
    ignored = checked.ignored
    if isinstance(pipeline, QueuedPipeline):
        queued = _through_queue(pipeline, company, journal, payments, keys, ignored, key, prefer)
        if isinstance(queued, Answer):
            return queued
        outcomes = queued
    else:
        outcomes = pipeline.post_all(company, journal, payments, keys=keys, deadline=deadline)
    results, statuses, retry_after, summary = _results(outcomes, ignored, key is not None)
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


@dataclass(slots=True)
class BatchCheck:
    """A batch validated item by item until MAX_REPORTED_ERRORS problems are found, keeping only what
    its answer needs: so the time and memory a call costs stay bounded whatever the body holds."""

    payments: list[CustomerPayment] = field(default_factory=list)
    ignored: dict[int, list[str]] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS problems
    error_count: int = 0  # problems found in the items checked
    invalid: int = 0  # items checked that have at least one problem
    checked: int = 0  # items checked (the rest were not, once enough problems were found)


def _check_batch(items: list[Any], prefix: str, rules: Rules) -> BatchCheck:
    out = BatchCheck()
    for i, item in enumerate(items):
        if out.error_count >= MAX_REPORTED_ERRORS:
            break  # the batch is refused already: the caller has enough to fix
        out.checked += 1
        checked = check(item, rules)
        if checked.payment is not None:
            if not out.invalid:  # once one is invalid nothing is posted: stop keeping payments
                out.payments.append(checked.payment)
                if checked.ignored:
                    out.ignored[i] = checked.ignored
            continue
        if not out.invalid:
            out.payments, out.ignored = [], {}
        out.invalid += 1
        out.error_count += len(checked.errors)
        room = MAX_REPORTED_ERRORS - len(out.errors)
        out.errors.extend(e.under(f"{prefix}/{i}") for e in checked.errors[:room])
    return out


def _tell_refused(count: int, prefix: str, target: str, company: str, journal: str) -> None:
    """A refused batch's payments are each counted invalid; the first hundred get a log line each with
    their location, the rest one line together, so a hostile body cannot flood the log."""
    for i in range(min(count, MAX_REPORTED_ERRORS)):
        telemetry.payment_outcome(
            "invalid", target=target, company=company, journal=journal, location=f"{prefix}/{i}"
        )
    if count > MAX_REPORTED_ERRORS:
        telemetry.payment_outcome(
            "invalid",
            target=target,
            company=company,
            journal=journal,
            location=f"{prefix}/{MAX_REPORTED_ERRORS} to {prefix}/{count - 1}",
            count=count - MAX_REPORTED_ERRORS,
        )


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
            return _storage_unavailable(exc)
        return _accepted(sub, [accepted(sub.batch)] * len(payments), asked, located=True)
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
    return _accepted(sub, outcomes, asked, located=located)


def status_url(sub: Submission) -> str:
    """Where the batch's sender follows it: a signed sender on its own routes (signing the GET)."""
    owner = sub.owner or ""
    if owner.startswith("webhook:"):
        return f"{SIGNED_ROUTE}/{owner.removeprefix('webhook:')}/batches/{sub.batch}"
    return f"{STATUS_ROUTE}/{sub.batch}"


def _accepted(sub: Submission, outcomes: list[Outcome], asked: bool, *, located: bool) -> Answer:
    location = status_url(sub)
    body: dict[str, Any] = {"id": sub.batch, "status": "running", "summary": _summary(outcomes)}
    headers = {"Retry-After": str(_poll_after(outcomes))}
    if asked:
        headers["Preference-Applied"] = "respond-async"
    if located:
        body["statusUrl"] = headers["Location"] = location
    else:
        body["detail"] = (
            "accepted and queued; its status cannot be followed (the relay's storage is unavailable): "
            "sending the same payments again is safe and answers their outcome"
        )
    return Answer(202, body, headers)


def _poll_after(outcomes: list[Outcome]) -> int:
    """A Retry-After for a batch still running: about a second per fifty payments waiting, 1 to 30."""
    waiting = sum(1 for o in outcomes if o.kind == "accepted")
    return max(1, min(30, waiting // 50))


def _summary(outcomes: list[Outcome]) -> dict[str, int]:
    summary: dict[str, int] = {"total": len(outcomes)}
    for outcome in outcomes:
        summary[outcome.kind] = summary.get(outcome.kind, 0) + 1
    return summary


def _results(
    outcomes: list[Outcome], ignored: dict[int, list[str]], explicit: bool
) -> tuple[list[dict[str, Any]], set[int], list[str], dict[str, int]]:
    """Each payment's item in a batch answer (or status), the statuses among them, their Retry-Afters
    and the summary by outcome."""
    results: list[dict[str, Any]] = []
    statuses: set[int] = set()
    retry_after: list[str] = []
    for index, outcome in enumerate(outcomes):
        item: dict[str, Any] = {"index": index, "outcome": outcome.kind}
        if outcome.ok:
            status = 201 if outcome.kind == "created" else _already(outcome, explicit)[0]
            item.update(status=status, payment=outcome.created, clientRequestId=outcome.client_request_id)
            if outcome.note and outcome.kind == "skipped":
                item["note"] = outcome.note
        elif outcome.kind == "accepted":
            item.update(status=202, note=outcome.note)
        else:
            answer = _ledger_problem(outcome) or outcome_problem(outcome)
            item.update(status=answer.status, problem=answer.body)
            if "Retry-After" in answer.headers:
                retry_after.append(answer.headers["Retry-After"])
        if ignored.get(index):
            item["ignoredProperties"] = ignored[index]
        statuses.add(item["status"])
        results.append(item)
    return results, statuses, retry_after, _summary(outcomes)


def handle_status(
    *,
    batch_id: str | None,
    headers: Mapping[str, str],
    pipeline: Callable[[], Pipeline],
    gate: Callable[[], Gate],
    sender: str | None = None,
) -> Answer:
    """GET /api/batches/{id}: each payment's outcome as the synchronous answer would give it, to the
    caller who sent the batch only; never raises."""

    def answer() -> Answer:
        try:
            caller = gate().admit({k.lower(): v for k, v in headers.items()}, b"", sender=sender, once=False)
        except CallerRefused as exc:
            return refused(exc, signed=sender is not None)
        return _status(batch_id, pipeline, caller)

    detail = "The relay failed unexpectedly; see its logs."
    return _safely(answer, "answering a batch status", detail)


def _status(batch_id: str | None, pipeline: Callable[[], Pipeline], caller: Caller) -> Answer:
    queued = pipeline()
    if not isinstance(queued, QueuedPipeline):
        return problem(404, "batch-not-found", "No such batch", "this relay answers every call at once")
    try:
        sub = queued.batches.get(batch_id or "")
        if sub is None or not caller.owns(sub.owner):  # another caller's batch is not there for this one
            return problem(404, "batch-not-found", "No such batch", f"no batch has the id {batch_id!r}")
        outcomes = queued.status(sub)
    except LedgerUnavailable as exc:
        log.error("batch status unavailable: %s", exc)
        answer = problem(
            503,
            "status-unavailable",
            "The batch's status is unavailable",
            "the relay's storage is unavailable; try again",
        )
        answer.headers["Retry-After"] = "30"
        return answer
    ignored = {int(i): v for i, v in sub.extra.get("ignored", {}).items()}
    results, _, _, summary = _results(outcomes, ignored, bool(sub.extra.get("explicit")))
    running = any(o.kind == "accepted" for o in outcomes)
    body = {"id": sub.batch, "status": "running" if running else "completed", "summary": summary}
    body["results"] = results
    return Answer(200, body, {"Retry-After": str(_poll_after(outcomes))} if running else {})


def handle_openapi(*, headers: Mapping[str, str], gate: Callable[[], Gate]) -> Answer:
    """GET /api/openapi.json: the contract, to an admitted caller; never raises."""

    def answer() -> Answer:
        from . import openapi

        admitted = gate()
        try:
            admitted.admit({k.lower(): v for k, v in headers.items()}, b"")
        except CallerRefused as exc:
            return refused(exc, signed=False)
        return Answer(200, openapi.document(admitted.settings))

    return _safely(answer, "serving the OpenAPI document", "The relay failed unexpectedly; see its logs.")
