"""GET: a batch's status, to the caller who sent it, and the OpenAPI document, to any admitted caller."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..errors import CallerRefused, LedgerUnavailable
from ..inbound import Caller, Gate
from ..posting import Pipeline
from ..work import QueuedPipeline
from .answers import itemised, poll_after, refused, safely
from .contract import Answer, problem

log = logging.getLogger("payments.webhook")


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
    return safely(answer, "answering a batch status", detail)


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
    results, _, _, summary = itemised(outcomes, ignored, bool(sub.extra.get("explicit")))
    running = any(o.kind == "accepted" for o in outcomes)
    body = {"id": sub.batch, "status": "running" if running else "completed", "summary": summary}
    body["results"] = results
    return Answer(200, body, {"Retry-After": str(poll_after(outcomes))} if running else {})


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

    return safely(answer, "serving the OpenAPI document", "The relay failed unexpectedly; see its logs.")
