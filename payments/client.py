"""The target API client: one pooled HTTP session, one cached token, retries that never double-post.

Retrying is safe only when the target certainly did not act: a 429, a 503, a 502/504 that carries
`Retry-After`, a 401 (once, with a fresh token) or a connection that failed before the request left.
Anything else after the request was sent is an ambiguous outcome and is reported, not re-posted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from azure.core.credentials import AccessTokenInfo, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay
from tenacity.wait import wait_exponential_jitter

from . import __version__, codec
from .errors import (
    AmbiguousOutcome,
    IdentityUnavailable,
    NotAuthorized,
    PermanentRejection,
    TargetError,
    TargetUnavailable,
    Throttled,
    Transient,
)
from .settings import Settings

log = logging.getLogger("payments.client")

USER_AGENT = f"payments-relay/{__version__} (+azure-functions; python-requests)"
_REFRESH_MARGIN = 300  # seconds before expiry at which a cached token is replaced


class Created(NamedTuple):
    """The target's answer to a successful create: its object (amounts exact) and our correlation id.
    (A tuple: a `$batch` answer makes a hundred of these, and a frozen dataclass costs several times more.)"""

    body: dict[str, Any]
    client_request_id: str
    attempts: int


class _Retry(Exception):
    """Internal: this attempt certainly did not act at the target; another may be made."""

    def __init__(self, unavailable: TargetUnavailable, retry_after: float | None):
        super().__init__(unavailable.message)
        self.unavailable = unavailable
        self.retry_after = retry_after


class ThrottleGate:
    """One gate per client: a 429 (or a Retry-After) closes it for every worker at once, so the
    relay slows down as a whole instead of each worker hammering the target on its own."""

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic):
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._open_at = 0.0
        self.pauses = 0  # times the gate was closed (or its closing extended)
        self.throttled = 0  # 429 answers seen, batch items included

    def pause(self, seconds: float, *, throttled: bool = False) -> None:
        with self._lock:
            self.throttled += throttled
            until = self._clock() + seconds
            if until > self._open_at:
                self._open_at = until
                self.pauses += 1

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._open_at - self._clock()
            if delay <= 0:
                return
            self._sleep(delay)


class InFlightLimit:
    """Bounds requests in flight to the target, and adapts: each 429 lowers the bound by one (never
    below one), a run of successes raises it again up to the configured maximum. The relay thus
    settles at the target's real limit instead of provoking 429s forever at a bound set too high."""

    def __init__(self, maximum: int, *, handoff_seconds: float = 0.005, yield_seconds: float = 0.0005):
        self.maximum = maximum
        self.limit = maximum
        self.handoff_seconds = handoff_seconds
        self.yield_seconds = yield_seconds
        self._busy = 0
        self._waiting = 0
        self._handoffs = 0  # slots given up while someone waited; a waiter that takes one counts it down
        self._successes = 0
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # a slot is free
        self._taken = threading.Condition(lock)  # a waiter has taken the slot handed to it

    def __enter__(self) -> None:
        with self._cond:
            self._waiting += 1
            try:
                while self._busy >= self.limit:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._busy += 1
            if self._handoffs:
                self._handoffs -= 1
                self._taken.notify()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify()
            handed = self._waiting > 0
            if handed:
                # Hand the slot over: wait (briefly) until the waiter has it. Otherwise the waiter,
                # though woken, would wait for the interpreter lock while this thread goes on with
                # its answer, up to the switch interval (5 ms) during which the target sees a slot idle.
                self._handoffs += 1
                self._taken.wait(self.handoff_seconds)
        if handed:
            # Then stand aside a little longer: the new holder still has Python work (and a poll of
            # its pooled connection, which gives up the interpreter lock) before its request is on
            # the wire; this thread's answer can wait half a millisecond, the slot cannot.
            time.sleep(self.yield_seconds)

    def throttled(self) -> None:
        with self._cond:
            self.limit = max(1, self.limit - 1)
            self._successes = 0

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self.limit < self.maximum and self._successes >= 4 * self.limit:
                self.limit += 1
                self._successes = 0
                self._cond.notify()


class TokenSource:
    """One token per scope, reused until shortly before it expires, refreshed on demand after a 401.

    azure-identity's managed identity credential caches too, but the developer credentials do
    not (Azure CLI starts a process per call), so the relay keeps its own copy.
    """

    def __init__(self, credential: TokenCredential, scope: str):
        self._credential = credential
        self._scope = scope
        self._lock = threading.Lock()
        self._info: AccessTokenInfo | None = None

    def token(self, *, force: bool = False, claims: str | None = None) -> str:
        with self._lock:
            now = time.time()
            info = self._info
            fresh = info is not None and now < (info.refresh_on or info.expires_on - _REFRESH_MARGIN)
            if fresh and not force:
                return info.token  # type: ignore[union-attr]
            options: dict[str, Any] = {}
            if force:
                # A claims value makes azure-identity bypass its own cache and fetch a new token.
                options["claims"] = claims or "{}"
            try:
                if hasattr(self._credential, "get_token_info"):
                    info = self._credential.get_token_info(self._scope, options=options or None)  # type: ignore[attr-defined]
                else:  # pragma: no cover - every azure-identity credential has get_token_info today
                    tok = self._credential.get_token(self._scope, claims=options.get("claims"))
                    info = AccessTokenInfo(tok.token, tok.expires_on)
            except ClientAuthenticationError as exc:
                raise IdentityUnavailable(
                    f"no token for {self._scope}: {exc.message.splitlines()[0]}"
                ) from None
            self._info = info
            return info.token


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header given as delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (when - current).total_seconds())


def _sent_nothing(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request reached the target."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def _read_body(response: requests.Response) -> None:
    """Read the whole answer in one call. requests reads it in 10 KiB pieces, each a system call that
    gives up the interpreter lock and, while other workers run Python code, may wait up to the switch
    interval (5 ms) to get it back: a 60 KiB `$batch` answer could take tens of milliseconds."""
    try:
        response._content = response.raw.read(decode_content=True)  # what `response.content` returns
        response._content_consumed = True  # so close() keeps the connection for the next request
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc, request=response.request) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(exc, request=response.request) from None
    finally:
        response.close()  # the connection goes back to the pool (or is closed if not fully read)


def _odata_error(response: requests.Response) -> tuple[str, str]:
    try:
        err = codec.loads(response.content, unique_keys=False).get("error") or {}
        return str(err.get("code") or f"HTTP{response.status_code}"), str(err.get("message") or "")[:1000]
    except (ValueError, AttributeError):
        return f"HTTP{response.status_code}", (response.text or response.reason or "")[:300]


class TargetClient:
    """Creates and reads customerPayments at Graph or Business Central, with retries and a cached token."""

    def __init__(
        self,
        settings: Settings,
        credential: TokenCredential,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._tokens = TokenSource(credential, settings.scope)
        self._session = session or self._new_session()
        self._transport: dict[str, dict[str, Any]] = {}
        self._sleep = sleep
        self.gate = ThrottleGate(sleep, clock)
        # The target's concurrency limit is about requests in flight, so that is what is bounded:
        # workers may prepare and record payments while others' requests are out.
        self.in_flight = InFlightLimit(settings.max_concurrency)
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_base_seconds,
            max=settings.backoff_max_seconds,
            jitter=settings.backoff_base_seconds,
        )

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        size = max(8, self.settings.max_concurrency * 2)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, pool_block=False, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def close(self) -> None:
        self._session.close()

    def _transport_options(self, url: str) -> dict[str, Any]:
        """Proxy and CA settings from the environment, as requests would merge them on every call
        (scanning the whole environment each time); the target's host does not change, so once."""
        host = urlsplit(url).netloc
        options = self._transport.get(host)
        if options is None:
            options = self._session.merge_environment_settings(url, {}, None, None, None)
            options["stream"] = True  # the body is read by _read_body, in one call
            self._transport[host] = options
        return options  # read-only: the caller unpacks it into keyword arguments

    # -- public operations -------------------------------------------------------------------

    def create_payment(self, company_id: str, journal_id: str, payload: dict[str, Any]) -> Created:
        """POST one customerPayment; raises a TargetError subclass unless the target created it."""
        url = self.settings.collection_url(company_id, journal_id)
        body = codec.dumpb(payload)
        response, request_id, attempts = self._with_retries("POST", url, body, idempotent=False)
        if response.status_code in (200, 201):
            try:
                created = codec.loads(response.content, unique_keys=False)
            except ValueError:
                created = None
            if not isinstance(created, dict):
                log.warning("payment created but the answer was unreadable client-request-id=%s", request_id)
                created = {}
            log.info(
                "payment created id=%s client-request-id=%s attempts=%d",
                created.get("id"),
                request_id,
                attempts,
            )
            return Created(created, request_id, attempts)
        raise self._failure(response, request_id)  # pragma: no cover - _with_retries returns only 2xx

    def create_payments_batch(
        self, company_id: str, journal_id: str, payloads: list[dict[str, Any]]
    ) -> list[Created | TargetError]:
        """POST many customerPayments in one JSON `$batch`; one result per payload, in order.

        The batch request itself is retried like any POST (a 429 or 503 on it means nothing was
        done). Inside it, each item has its own answer: items throttled on their own (429, 503) are
        sent again in a smaller batch after their Retry-After, the others are final.
        """
        item_url = self.settings.collection_path(company_id, journal_id)
        results: dict[int, Created | TargetError] = {}
        pending = list(range(len(payloads)))
        started = time.monotonic()
        for attempt in range(1, self.settings.max_attempts + 1):
            body = {
                "requests": [
                    {
                        "id": str(i),
                        "method": "POST",
                        "url": item_url,
                        "headers": {"Content-Type": "application/json"},
                        "body": payloads[i],
                    }
                    for i in pending
                ]
            }
            try:
                response, request_id, _ = self._with_retries(
                    "POST", self.settings.batch_url, codec.dumpb(body), idempotent=False
                )
            except TargetError as exc:
                # The envelope itself failed: unavailable or refused (nothing was done), or ambiguous
                # (it may have been applied in full or in part). Every pending item shares that fate.
                results.update({i: exc for i in pending})
                return [results[i] for i in range(len(payloads))]
            retry_wait, pending = self._batch_answers(response, request_id, pending, results)
            if not pending:
                break
            elapsed = time.monotonic() - started
            if (
                attempt == self.settings.max_attempts
                or elapsed + retry_wait > self.settings.retry_max_seconds
            ):
                break
            self._sleep(retry_wait)
        for i in pending:
            exc = results[i]
            if isinstance(exc, _Retry):
                results[i] = exc.unavailable
        return [results[i] for i in range(len(payloads))]

    def _batch_answers(
        self,
        response: requests.Response,
        request_id: str,
        pending: list[int],
        results: dict[int, Any],
    ) -> tuple[float, list[int]]:
        """Map each inner response back to its payment by id; return the wait and the items to resend."""
        try:
            answers = codec.loads(response.content, unique_keys=False).get("responses") or []
        except (ValueError, AttributeError):
            answers = []
        by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
        retry: list[int] = []
        wait = 0.0
        for i in pending:
            answer = by_id.get(str(i))
            if answer is None:
                results[i] = AmbiguousOutcome(
                    "the batch answer has no response for this payment; it may exist at the target",
                    client_request_id=request_id,
                )
                continue
            status = answer.get("status")
            if type(status) is not int:
                status = int(status) if isinstance(status, str) and status.isdigit() else 0
            body = answer.get("body")
            if 200 <= status < 300:
                results[i] = Created(body if isinstance(body, dict) else {}, request_id, 1)
                continue
            error = body.get("error") if isinstance(body, dict) else None
            code = str((error or {}).get("code") or f"HTTP{status}")
            message = str((error or {}).get("message") or "")[:1000]
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            outcome = self._classify(status, code, message, headers.get("retry-after"), request_id, False)
            if isinstance(outcome, _Retry):
                retry.append(i)
                wait = max(wait, outcome.retry_after or self._backoff_seconds(len(retry)))
                outcome.unavailable.client_request_id = request_id
            elif isinstance(outcome, TargetError):
                outcome.client_request_id = request_id
            results[i] = outcome
        return wait, retry

    def _backoff_seconds(self, attempt: int) -> float:
        return min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** (attempt - 1))

    def find_payments(self, company_id: str, journal_id: str, odata_filter: str) -> list[dict[str, Any]]:
        """GET the journal's customerPayments matching an OData `$filter` (for reconciliation)."""
        url = (
            self.settings.collection_url(company_id, journal_id) + "?$filter=" + quote(odata_filter, safe="")
        )
        response, _, _ = self._with_retries("GET", url, None, idempotent=True)
        found = codec.loads(response.content, unique_keys=False)
        return list(found.get("value", [])) if isinstance(found, dict) else []

    # -- the retry loop ----------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        hinted = exc.retry_after if isinstance(exc, _Retry) else None
        return max(backoff, hinted) if hinted is not None else backoff

    def _with_retries(
        self, method: str, url: str, body: bytes | None, *, idempotent: bool
    ) -> tuple[requests.Response, str, int]:
        request_id = str(uuid.uuid4())
        s = self.settings
        retrying = Retrying(
            stop=stop_after_attempt(s.max_attempts) | stop_before_delay(s.retry_max_seconds),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            reraise=True,
        )
        started = time.monotonic()
        attempts = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = self._attempt(method, url, body, request_id, idempotent=idempotent)
        except _Retry as exc:
            unavailable = exc.unavailable
            unavailable.client_request_id = request_id
            log.warning(
                "%s gave up after %d attempts in %.1fs client-request-id=%s: %s",
                method,
                attempts,
                time.monotonic() - started,
                request_id,
                unavailable.message,
            )
            raise unavailable from None
        return response, request_id, attempts

    def _attempt(
        self, method: str, url: str, body: bytes | None, request_id: str, *, idempotent: bool
    ) -> requests.Response:
        refreshed = False
        while True:
            self.gate.wait()
            headers = {
                "Authorization": "Bearer " + self._tokens.token(),
                "client-request-id": request_id,
                "return-client-request-id": "true",
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            # Everything but the exchange itself happens before taking a slot: the target's
            # concurrency limit counts requests, and a slot held while preparing is a slot wasted.
            session = self._session
            try:
                prepared = session.prepare_request(requests.Request(method, url, data=body, headers=headers))
                options = self._transport_options(prepared.url or url)
                with self.in_flight:
                    response = session.send(
                        prepared,
                        timeout=(self.settings.connect_timeout_seconds, self.settings.read_timeout_seconds),
                        allow_redirects=False,
                        **options,
                    )
                    _read_body(response)
            except requests.RequestException as exc:
                if _sent_nothing(exc) or idempotent:
                    raise _Retry(
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
            if 200 <= status < 300:
                self.in_flight.succeeded()
                return response
            if status == 401 and not refreshed:
                refreshed = True
                log.info("target answered 401; fetching a new token client-request-id=%s", request_id)
                self._tokens.token(force=True, claims=_claims(response))
                continue
            raise self._failure(response, request_id, idempotent=idempotent)

    def _failure(
        self, response: requests.Response, request_id: str, *, idempotent: bool = False
    ) -> Exception:
        code, message = _odata_error(response)
        return self._classify(
            response.status_code, code, message, response.headers.get("Retry-After"), request_id, idempotent
        )

    def _classify(
        self,
        status: int,
        code: str,
        message: str,
        retry_header: str | None,
        request_id: str,
        idempotent: bool,
    ) -> Exception:
        """What a non-2xx answer means for the payment; shared by single requests and $batch items."""
        retry_after = parse_retry_after(retry_header)
        hint = int(retry_after + 0.999) if retry_after is not None else 30
        log.warning("target answered %d %s client-request-id=%s", status, code, request_id)
        if status == 429:
            self.in_flight.throttled()
            self.gate.pause(
                retry_after if retry_after is not None else self.settings.backoff_base_seconds, throttled=True
            )
            return _Retry(
                Throttled(f"throttled by the target ({code})", retry_after=hint, status=status), retry_after
            )
        if (
            status == 503
            or (status in (502, 504) and (retry_after is not None or idempotent))
            or (idempotent and status >= 500)
        ):
            if retry_after is not None:
                self.gate.pause(retry_after)
            return _Retry(
                Transient(f"target unavailable: {status} {code}", retry_after=hint, status=status),
                retry_after,
            )
        if status in (401, 403):
            return NotAuthorized(
                f"the target refused the relay's identity: {code}: {message}",
                status=status,
                code=code,
                client_request_id=request_id,
            )
        if 400 <= status < 500 and status != 408:
            return PermanentRejection(message or code, status=status, code=code, client_request_id=request_id)
        return AmbiguousOutcome(
            f"the target answered {status} {code} after receiving the request; "
            "the payment may exist at the target",
            status=status,
            client_request_id=request_id,
        )


def _claims(response: requests.Response) -> str | None:
    """The claims challenge of a 401, if the target sent one (CAE); otherwise None."""
    header = response.headers.get("WWW-Authenticate", "")
    marker = 'claims="'
    if marker in header:
        start = header.index(marker) + len(marker)
        end = header.find('"', start)
        if end > start:
            import base64

            raw = header[start:end]
            try:
                return base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
            except ValueError:
                return None
    return None
