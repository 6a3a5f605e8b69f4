"""The target API client: creates and reads customerPayments at Graph or Business Central.

A facade over the pieces in this package: routes (URLs), auth (the token), transport (the wire),
flow (throttle gate, in-flight limit), retry (the one policy), responses (what an answer means) and
batch (`$batch`). Retrying is safe only when the target certainly did not act: a 429, a 503, a
502/504 that carries `Retry-After`, a 401 (once, with a fresh token) or a connection that failed
before the request left. Anything else after the request was sent is ambiguous and is reported,
never re-posted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import requests
from azure.core.credentials import TokenCredential

from .. import codec, telemetry
from ..errors import AmbiguousOutcome, NotAuthorized, TargetError, TargetUnavailable, Transient
from ..settings import Settings
from . import batch
from .auth import claims_challenge
from .flow import InFlightLimit, JournalLocks, RateWindow, ThrottleGate
from .principals import DEFAULT, Principal, principals_of
from .responses import Created, classify, odata_error, parse_retry_after
from .retry import Retryable, RetryPolicy
from .routes import Routes
from .shared import SharedFlow, SharedRate
from .transport import Transport, sent_nothing

log = logging.getLogger("payments.target")

CONTINUE_ON_ERROR = "odata.continue-on-error"  # RFC 7240 preference, OData 4.01


@dataclass(frozen=True, slots=True)
class Request:
    """What a request is, as far as retrying and flow control go."""

    idempotent: bool = False  # a read: safe to send again whatever happened to it
    auto_numbered: bool = False  # an insert whose line number the target assigns
    journal: tuple[str, str] | None = None  # an insert into this (company, journal): one at a time
    prefer: str | None = None  # the Prefer header
    send_by: float | None = None  # monotonic: no attempt leaves after this (its ledger claim ends)
    company: str | None = None  # the company a read is about (for its span)


READ = Request(idempotent=True)


class TargetClient:
    """Creates and reads customerPayments, with retries, flow control and a cached token."""

    def __init__(
        self,
        settings: Settings,
        credential: TokenCredential | Sequence[tuple[str, TokenCredential]],
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedFlow | None = None,
    ):
        self.settings = settings
        self.shared = shared  # limits kept with every other instance (None: this worker's own only)
        self.routes = Routes.of(settings)
        self.journals = JournalLocks()  # one insert at a time per journal, whichever identity sends it
        self._turn = threading.local()  # the journal whose turn this thread holds (journal_turn)
        limit, window = settings.target_rate_requests, settings.target_rate_window_seconds

        def rate(identity: str | None) -> RateWindow | SharedRate:
            if shared is not None:
                return shared.rate(limit, window, settings.retry_max_seconds, identity)
            return RateWindow(limit, window, settings.retry_max_seconds, sleep, clock)

        credentials = [(DEFAULT, credential)] if hasattr(credential, "get_token") else list(credential)  # type: ignore[arg-type]
        # Each identity's concurrency limit is about its requests in flight, so that is what is bounded:
        # workers may prepare and record payments while others' requests are out.
        self.principals = principals_of(
            credentials,
            settings.scope,
            max_concurrency=settings.max_concurrency,
            rate=rate,
            sleep=sleep,
            clock=clock,
        )
        self.retry = RetryPolicy(settings, sleep)
        self._transport = Transport(settings, session, identities=len(self.principals))

    # The first (with one identity: the only) identity's budget, as tests and benchmarks read it.
    @property
    def gate(self) -> ThrottleGate:
        return self.principals.all[0].gate

    @property
    def in_flight(self) -> InFlightLimit:
        return self.principals.all[0].in_flight

    @property
    def rate(self) -> RateWindow | SharedRate:
        return self.principals.all[0].rate

    def close(self) -> None:
        self._transport.close()

    # -- operations ------------------------------------------------------------------------------

    def create_payment(
        self, company_id: str, journal_id: str, payload: dict[str, Any], *, send_by: float | None = None
    ) -> Created:
        """POST one customerPayment; raises a TargetError subclass unless the target created it.
        `send_by` (monotonic): no attempt leaves after it (the payment's ledger claim ends then)."""
        url = self.routes.collection_url(company_id, journal_id)
        insert = Request(
            auto_numbered="lineNumber" not in payload, journal=(company_id, journal_id), send_by=send_by
        )
        response, request_id, attempts = self._send("POST", url, codec.dumpb(payload), insert)
        try:
            created = codec.loads(response.content, unique_keys=False)
        except ValueError:
            created = None
        if not isinstance(created, dict):
            log.warning("payment created but the answer was unreadable client-request-id=%s", request_id)
            created = {}
        # DEBUG: the payment's outcome line (payments.outcome) says it at INFO, with its search keys.
        log.debug(
            "payment created id=%s client-request-id=%s attempts=%d", created.get("id"), request_id, attempts
        )
        return Created(created, request_id, attempts)

    def create_payments_batch(
        self,
        company_id: str,
        journal_id: str,
        payloads: list[dict[str, Any]],
        *,
        send_by: float | None = None,
    ) -> list[Created | TargetError]:
        """POST many customerPayments in one JSON `$batch`; one result per payload, in order.

        The envelope is sent like any POST (a 429 or 503 on it means nothing was done). Inside it,
        each item has its own answer: items the target certainly did not act on (429, 503) are sent
        again in a smaller batch, under the same retry policy; the others are final.
        """
        item_url = self.routes.collection_path(company_id, journal_id)
        # Business Central stops a $batch at its first failed operation unless asked not to: one
        # refused payment must not leave the others unanswered (and so ambiguous).
        insert = Request(journal=(company_id, journal_id), prefer=CONTINUE_ON_ERROR, send_by=send_by)
        results: dict[int, Created | TargetError | Retryable] = {}
        pending = list(range(len(payloads)))

        def judge(i: int, *answer: Any) -> Retryable | TargetError:
            return self._judge(*answer, auto_numbered="lineNumber" not in payloads[i])

        try:
            for attempt in self.retry.attempts():
                with attempt:
                    body = batch.envelope(item_url, payloads, pending)
                    response, request_id, _ = self._send("POST", self.routes.batch_url, body, insert)
                    pending = batch.read_answers(response, request_id, pending, results, judge)
                    if pending:
                        raise _longest(results, pending)
        except Retryable:
            pass  # out of attempts or time: each item still pending reports its own unavailability
        except TargetError as exc:
            # The envelope itself failed: unavailable or refused (nothing was done), or ambiguous
            # (it may have been applied in full or in part). Every pending item shares that fate.
            results.update({i: exc for i in pending})
        ordered = (results[i] for i in range(len(payloads)))
        return [r.unavailable if isinstance(r, Retryable) else r for r in ordered]

    def post_journal(self, company_id: str, journal_id: str) -> None:
        """Post every line of a journal (Business Central checks them all first: all or nothing); raises a
        TargetError subclass unless it answered 204. Held to the journal's turn, as an insert is."""
        url = self.routes.journal_post_url(company_id, journal_id)
        self._send("POST", url, b"", Request(journal=(company_id, journal_id)))

    def find_payments(self, company_id: str, journal_id: str, odata_filter: str) -> list[dict[str, Any]]:
        """GET the journal's customerPayments matching an OData `$filter` (for reconciliation)."""
        url = self.routes.search_url(company_id, journal_id, odata_filter)
        response, _, _ = self._send("GET", url, None, READ)
        found = codec.loads(response.content, unique_keys=False)
        return list(found.get("value", [])) if isinstance(found, dict) else []

    def find_posted(self, company_id: str, odata_filter: str) -> list[dict[str, Any]]:
        """GET the company's posted G/L entries matching an OData `$filter` (for reconciliation)."""
        url = self.routes.posted_entries_url(company_id, odata_filter)
        response, _, _ = self._send("GET", url, None, READ)
        found = codec.loads(response.content, unique_keys=False)
        return list(found.get("value", [])) if isinstance(found, dict) else []

    def read_all(
        self, company_id: str, entity: str, query: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a company's entity set (`customers`, `salesInvoices`, `companyInformation`),
        following `@odata.nextLink` (Business Central pages server-side), amounts as exact Decimals."""
        return self._pages(self.routes.company_url(company_id, entity, query), entity)

    def journal_lines(self, company_id: str, journal_id: str, select: str) -> Iterator[dict[str, Any]]:
        """Every customerPayment still in a journal (not posted yet), with the properties named."""
        url = self.routes.collection_url(company_id, journal_id) + "?$select=" + quote(select, safe="")
        return self._pages(url, "customerPayments")

    def _pages(self, url: str | None, entity: str, max_pages: int = 1000) -> Iterator[dict[str, Any]]:
        for _ in range(max_pages):
            if url is None:
                return
            response, _, _ = self._send("GET", url, None, READ)
            found = codec.loads(response.content, unique_keys=False)
            if not isinstance(found, dict):
                raise TargetUnavailable(
                    f"the target's {entity} answer is not an OData collection", status=502
                )
            yield from (item for item in found.get("value", []) if isinstance(item, dict))
            url = found.get("@odata.nextLink")
            if url is not None and not (isinstance(url, str) and self.routes.same_service(url)):
                raise TargetUnavailable(
                    f"the target's {entity} answer points its next page outside the API root", status=502
                )
        raise TargetUnavailable(f"the target's {entity} answer has more than {max_pages} pages", status=502)

    @contextmanager
    def journal_turn(
        self, company_id: str, journal_id: str, until: float | None, *, eager: bool = False
    ) -> Iterator[bool]:
        """Hold a journal's turn (this worker's, and every instance's with shared limits) for several
        inserts in a row, instead of taking and giving it back for each: yields False, holding nothing,
        when it could not be had before `until` (monotonic). `eager`: a caller is waiting for the answer
        (the priority queue's poster): the turn is asked for more often than batches ask."""
        key = (company_id, journal_id)
        held = self.journals.acquire(key, until)
        if held is None:
            yield False
            return
        try:
            shared = nullcontext(True)
            if self.shared is not None:
                shared = self.shared.journal(*key, until=until, eager=eager)
            with shared as ours:
                if not ours:
                    yield False
                    return
                # The turn's inserts go as one identity, the one with the most room now, holding one of
                # its shared slots for the whole turn: an insert into this journal is the only request
                # the turn makes at a time, and taking a slot per insert cost two storage round trips.
                principal = self.principals.pick()
                slot = self.shared.slot(principal.shared_name()) if self.shared is not None else nullcontext()
                with slot:
                    self._turn.journal, self._turn.principal = key, principal
                    yield True
        finally:
            self._turn.journal = self._turn.principal = None
            held.release()

    def _holds_turn(self) -> bool:
        return getattr(self._turn, "journal", None) is not None

    # -- one request, under the retry policy ------------------------------------------------------

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


def _longest(results: dict[int, Any], pending: list[int]) -> Retryable:
    """One `Retryable` for a batch round: the longest Retry-After any pending item was given."""
    hints = [results[i].retry_after for i in pending if results[i].retry_after is not None]
    return Retryable(results[pending[0]].unavailable, max(hints) if hints else None)
