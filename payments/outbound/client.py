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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any
from urllib.parse import quote

import requests
from azure.core.credentials import TokenCredential

from .. import codec
from ..errors import TargetError, TargetUnavailable
from ..settings import Settings
from . import batch
from .exchange import Exchanging
from .flow import InFlightLimit, JournalLocks, RateWindow, ThrottleGate
from .principals import DEFAULT, principals_of
from .request import READ, Request
from .responses import Created
from .retry import Retryable, RetryPolicy
from .routes import Routes
from .shared import NoPlace, Place, SharedFlow, SharedRate
from .transport import Transport

log = logging.getLogger("payments.target")

CONTINUE_ON_ERROR = "odata.continue-on-error"  # RFC 7240 preference, OData 4.01


class TargetClient(Exchanging):
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

    def journal_place(self, company_id: str, journal_id: str) -> Place | NoPlace | None:
        """A place in the journal's line, to be handed to `journal_turn`; None when a message (of this
        worker, or of any instance with shared limits) already waits for the journal's turn: this one
        steps aside. Without shared limits, or without their storage, only this worker's line counts
        (the turn itself then says what the storage does)."""
        if self.journals.crowded((company_id, journal_id)):
            return None
        if self.shared is None:
            return NoPlace()
        try:
            return self.shared.place(company_id, journal_id)
        except TargetUnavailable:
            return NoPlace()

    @contextmanager
    def journal_turn(
        self,
        company_id: str,
        journal_id: str,
        until: float | None,
        *,
        eager: bool = False,
        place: Place | NoPlace | None = None,
    ) -> Iterator[bool]:
        """Hold a journal's turn (this worker's, and every instance's with shared limits) for several
        inserts in a row, instead of taking and giving it back for each: yields False, holding nothing,
        when it could not be had before `until` (monotonic). `eager`: a caller is waiting for the answer
        (the priority queue's poster): the turn is asked for more often than batches ask. `place`: the
        place in line this waiter holds, left once the turn is had (or given up), for the next one."""
        key = (company_id, journal_id)
        held = None
        try:
            held = self.journals.acquire(key, until)
        finally:
            if place is not None and (held is None or self.shared is None):
                place.leave()  # no turn across instances to wait for: the next waiter may take the place
        if held is None:
            yield False
            return
        try:
            shared = nullcontext(True)
            if self.shared is not None:
                shared = self.shared.journal(*key, until=until, eager=eager, place=place)
            with shared as ours:
                if not ours:
                    yield False
                    return
                # The turn's inserts go as one identity, holding one of its shared slots for the whole
                # turn: an insert into this journal is the only request the turn makes at a time, and
                # taking a slot per insert cost two storage round trips. The identity is the first, in
                # order of room as this worker sees it, with a slot free across every instance.
                ranked = self.principals.ranked()
                if self.shared is None:
                    self._turn.journal, self._turn.principal = key, ranked[0]
                    yield True
                    return
                with self.shared.slot_among([p.shared_name() for p in ranked]) as which:
                    self._turn.journal, self._turn.principal = key, ranked[which]
                    yield True
        finally:
            self._turn.journal = self._turn.principal = None
            held.release()

    # -- one request, under the retry policy ------------------------------------------------------


def _longest(results: dict[int, Any], pending: list[int]) -> Retryable:
    """One `Retryable` for a batch round: the longest Retry-After any pending item was given."""
    hints = [results[i].retry_after for i in pending if results[i].retry_after is not None]
    return Retryable(results[pending[0]].unavailable, max(hints) if hints else None)
