"""What a caller is answered: a payment's problem, a batch's results and summary, a refusal, and the
guard that turns anything unexpected into a problem answer rather than a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import (
    AmbiguousOutcome,
    CallerRefused,
    NotAuthorized,
    PermanentRejection,
    SettingsError,
    TargetUnavailable,
)
from ..inbound.refusal import REFUSALS, challenge
from ..model import FieldError, as_dicts
from ..posting import Outcome
from ..work import Submission
from .contract import ALREADY_HEADER, SIGNED_ROUTE, STATUS_ROUTE, Answer, problem

log = logging.getLogger("payments.webhook")


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


def safely(make: Callable[[], Answer], doing: str, detail: str) -> Answer:
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


def storage_unavailable(exc: Exception) -> Answer:
    log.error("payments not accepted: %s", exc)
    answer = problem(
        503,
        "relay-storage-unavailable",
        "The relay cannot accept payments right now",
        "its storage is unavailable; nothing was accepted or posted; send the same request again later",
    )
    answer.headers["Retry-After"] = "30"
    return answer


def already(outcome: Outcome, explicit: bool) -> tuple[int, dict[str, str]]:
    """Status and headers for a payment the ledger knows was posted before."""
    if explicit:
        return outcome.replay_status or 201, {"Idempotent-Replayed": "true"}
    return 200, {ALREADY_HEADER: "true"}


def ledger_problem(outcome: Outcome) -> Answer | None:
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


def invalid(title: str, detail: str, shown: list[FieldError], count: int) -> Answer:
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


def status_url(sub: Submission) -> str:
    """Where the batch's sender follows it: a signed sender on its own routes (signing the GET)."""
    owner = sub.owner or ""
    if owner.startswith("webhook:"):
        return f"{SIGNED_ROUTE}/{owner.removeprefix('webhook:')}/batches/{sub.batch}"
    return f"{STATUS_ROUTE}/{sub.batch}"


def accepted_answer(sub: Submission, outcomes: list[Outcome], asked: bool, *, located: bool) -> Answer:
    location = status_url(sub)
    body: dict[str, Any] = {"id": sub.batch, "status": "running", "summary": tally(outcomes)}
    headers = {"Retry-After": str(poll_after(outcomes))}
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


def poll_after(outcomes: list[Outcome]) -> int:
    """A Retry-After for a batch still running: about a second per fifty payments waiting, 1 to 30."""
    waiting = sum(1 for o in outcomes if o.kind == "accepted")
    return max(1, min(30, waiting // 50))


def tally(outcomes: list[Outcome]) -> dict[str, int]:
    summary: dict[str, int] = {"total": len(outcomes)}
    for outcome in outcomes:
        summary[outcome.kind] = summary.get(outcome.kind, 0) + 1
    return summary


def itemised(
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
            status = 201 if outcome.kind == "created" else already(outcome, explicit)[0]
            item.update(status=status, payment=outcome.created, clientRequestId=outcome.client_request_id)
            if outcome.note and outcome.kind == "skipped":
                item["note"] = outcome.note
        elif outcome.kind == "accepted":
            item.update(status=202, note=outcome.note)
        else:
            answer = ledger_problem(outcome) or outcome_problem(outcome)
            item.update(status=answer.status, problem=answer.body)
            if "Retry-After" in answer.headers:
                retry_after.append(answer.headers["Retry-After"])
        if ignored.get(index):
            item["ignoredProperties"] = ignored[index]
        statuses.add(item["status"])
        results.append(item)
    return results, statuses, retry_after, tally(outcomes)
