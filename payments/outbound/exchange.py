"""One request to the target under the retry policy: the identity it goes as, the journal turn an
insert holds, the shared slot, the token (fetched again once on a 401), and what the answer means for
the payment and for that identity's flow.

Mixed into `client.TargetClient`, whose settings, routes, principals, journal locks, shared limits and
transport it uses.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import Any

import requests

from .. import telemetry
from ..errors import AmbiguousOutcome, NotAuthorized, TargetError, TargetUnavailable, Transient
from ..settings import Settings
from .auth import claims_challenge
from .flow import JournalLocks
from .principals import Principal, Principals
from .request import Request
from .responses import classify, odata_error, parse_retry_after
from .retry import Retryable, RetryPolicy
from .routes import Routes
from .shared import SharedFlow
from .transport import Transport, sent_nothing

log = logging.getLogger("payments.target")


class Exchanging:
    """Sending one request and judging its answer (part of `TargetClient`)."""

    settings: Settings
    routes: Routes
    principals: Principals
    journals: JournalLocks
    shared: SharedFlow | None
    retry: RetryPolicy
    _turn: threading.local
    _transport: Transport

    def _holds_turn(self) -> bool:
        return getattr(self._turn, "journal", None) is not None

    def _send(
        self, method: str, url: str, body: bytes | None, request: Request
    ) -> tuple[requests.Response, str, int]:
        """A 2xx answer, its client-request-id and the attempts it took; otherwise a TargetError."""
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        attempts = 0
        operation = "read" if body is None else "batch" if url == self.routes.batch_url else "insert"
        if body == b"":  # a bound action (posting a journal), not an insert
            operation = "post"
        company, journal = request.journal or (request.company, None)
        with telemetry.target_request(
            operation, method, client_request_id=request_id, company=company, journal=journal
        ) as exchange:
            self._turn.exchange = exchange
            try:
                for attempt in self.retry.attempts():
                    with attempt:
                        attempts = attempt.retry_state.attempt_number
                        response = self._attempt(method, url, body, request_id, request)
            except Retryable as exc:
                unavailable = exc.unavailable
                unavailable.client_request_id = request_id
                exchange.settled("unavailable", unavailable.status, attempts)
                log.warning(
                    "%s gave up after %d attempts in %.1fs client-request-id=%s: %s",
                    method,
                    attempts,
                    time.monotonic() - started,
                    request_id,
                    unavailable.message,
                )
                raise unavailable from None
            except TargetError as exc:
                exchange.settled(_outcome_of(exc), exc.status, attempts)
                raise
            finally:
                self._turn.exchange = None
            exchange.settled("answered", response.status_code, attempts)
        return response, request_id, attempts

    def _attempt(
        self, method: str, url: str, body: bytes | None, request_id: str, request: Request
    ) -> requests.Response:
        """One attempt; an insert holds its journal's turn for the whole of it."""
        if request.journal is None or getattr(self._turn, "journal", None) == request.journal:
            return self._exchange(method, url, body, request_id, request)  # no turn needed, or held
        busy = TargetUnavailable(
            "not sent: the journal was busy with other inserts until this payment's claim ran out",
            retry_after=30,
            client_request_id=request_id,
        )
        held = self.journals.acquire(request.journal, request.send_by)
        if held is None:
            raise busy
        try:
            if self.shared is None:
                return self._exchange(method, url, body, request_id, request)
            with self.shared.journal(*request.journal, until=request.send_by) as ours:
                if not ours:
                    raise busy
                return self._exchange(method, url, body, request_id, request)
        finally:
            held.release()

    def _exchange(
        self, method: str, url: str, body: bytes | None, request_id: str, request: Request
    ) -> requests.Response:
        refreshed = False
        idempotent = request.idempotent
        turn = getattr(self._turn, "principal", None) if self._holds_turn() else None
        principal = turn or self.principals.pick()
        while True:
            principal.gate.wait()
            principal.rate.acquire()
            if request.send_by is not None and time.monotonic() > request.send_by:
                raise TargetUnavailable(
                    "not sent: this payment's claim ran out before the target was free",
                    retry_after=30,
                    client_request_id=request_id,
                )
            headers = {
                "Authorization": "Bearer " + principal.tokens.token(),
                "client-request-id": request_id,
                "return-client-request-id": "true",
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            if request.prefer is not None:
                headers["Prefer"] = request.prefer
            # A shared slot per request, unless this thread's journal turn holds one already.
            slot: Callable[[], Any] = nullcontext
            if self.shared is not None and turn is None:
                slot = partial(self.shared.slot, principal.shared_name())
            exchange = getattr(self._turn, "exchange", None)
            began = time.monotonic()
            principal.sent += 1
            try:
                response = self._transport.exchange(method, url, body, headers, principal.in_flight, slot)
            except requests.RequestException as exc:
                if exchange is not None:
                    exchange.answered(None, time.monotonic() - began)
                if sent_nothing(exc) or idempotent:
                    raise Retryable(
                        Transient(f"could not reach the target: {type(exc).__name__}", retry_after=30), None
                    ) from None
                log.error(
                    "%s outcome unknown client-request-id=%s: %s", method, request_id, type(exc).__name__
                )
                raise AmbiguousOutcome(
                    "the request was sent but no answer came back "
                    f"({'timed out' if isinstance(exc, requests.Timeout) else 'connection dropped'}); "
                    "the payment may exist at the target",
                    client_request_id=request_id,
                ) from None
            status = response.status_code
            if exchange is not None:
                exchange.answered(status, time.monotonic() - began)
            if 200 <= status < 300:
                principal.in_flight.succeeded()
                principal.gate.through()
                return response
            if status == 401 and not refreshed:
                refreshed = True
                log.info("target answered 401; fetching a new token client-request-id=%s", request_id)
                principal.tokens.token(force=True, claims=claims_challenge(response.headers))
                continue
            code, message = odata_error(response)
            if status in (401, 403) and turn is None and self.principals.refused(principal):
                # This identity's grant is refused (nothing was done): the others carry on without it.
                log.error(
                    "the target refused identity %s (%d %s); it sits out while the others send",
                    principal.name,
                    status,
                    code,
                )
                principal, refreshed = self.principals.pick(avoid=principal), False
                continue
            raise self._judge(
                status,
                code,
                message,
                response.headers.get("Retry-After"),
                request_id,
                idempotent,
                request.auto_numbered,
                principal,
            )

    def _judge(
        self,
        status: int,
        code: str,
        message: str,
        retry_header: str | None,
        request_id: str,
        idempotent: bool = False,
        auto_numbered: bool = False,
        principal: Principal | None = None,
    ) -> Retryable | TargetError:
        """What an answer means (responses.classify), and what it does to the flow of the identity that
        got it: a 429 closes its gate for every worker and lowers its in-flight bound; any Retry-After
        closes its gate. The other identities go on."""
        retry_after = parse_retry_after(retry_header)
        verdict = classify(
            status, code, message, retry_after, request_id, idempotent=idempotent, auto_numbered=auto_numbered
        )
        principal = principal or self.principals.all[0]
        if status == 429:
            principal.in_flight.throttled()
            settings = self.settings
            pause = retry_after
            if pause is None:
                pause = principal.gate.backoff(settings.backoff_base_seconds, settings.backoff_max_seconds)
            principal.gate.pause(pause, throttled=True)
        elif isinstance(verdict, Retryable) and retry_after is not None:
            principal.gate.pause(retry_after)
        return verdict


def _outcome_of(exc: TargetError) -> str:
    """What a failed request came to, in the outcome words the reports use (for its span)."""
    if exc.may_exist:
        return "ambiguous"
    if isinstance(exc, NotAuthorized):
        return "denied"
    return "unavailable" if isinstance(exc, TargetUnavailable) else "rejected"
