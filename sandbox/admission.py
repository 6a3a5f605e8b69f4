"""Who is calling and whether Business Central takes the request now: tokens issued to client ids,
applications not registered in Business Central refused, and each identity's limits (five processed at
once, the rest queued or throttled, the operation and request timeouts).

Mixed into `service.Sandbox`, whose lock, counters, limits and error answers it uses.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable

from .faults import Fault, FaultQueues
from .limits import Admission, Deadline, Limits
from .odata import ODataError
from .server import Handler
from .store import RecordedRequest

_JOURNAL_IN_URL = re.compile(rb"customerPaymentJournals(?:\(|/)([0-9a-fA-F-]{36})")


class Admitting:
    """Identities and their limits (part of `Sandbox`)."""

    _lock: threading.RLock
    _faults: FaultQueues
    _admissions: dict[str, Admission]
    _token_owners: dict[str, str]
    _token_counter: int
    _in_flight: int
    _journal_writers: Counter[str]
    issued_tokens: set[str]
    unregistered: set[str]
    identity_limits: dict[str, Limits]
    requests_by_identity: Counter[str]
    requests: list[RecordedRequest]
    limits: Limits
    latency: float
    stopping: threading.Event
    throttled_count: int
    queue_timeouts: int
    timeouts: int
    peak_in_flight: int
    peak_journal_writers: int
    _error: Callable[..., None]

    def _issue_token(self, client_id: str) -> str:
        with self._lock:
            self._token_counter += 1
            token = f"sandbox-token-{self._token_counter}"
            self.issued_tokens.add(token)
            self._token_owners[token] = client_id
        return token

    def _identity_of(self, h: Handler) -> str:
        """The limits apply per user or service principal: tokens issued here belong to their client
        id; any other bearer value stands for an identity of its own."""
        auth = h.headers.get("Authorization") or ""
        token = auth[7:] if auth[:7].lower() == "bearer " else auth
        with self._lock:
            return self._token_owners.get(token, token)

    def _admission_of(self, identity: str) -> Admission:
        with self._lock:
            admission = self._admissions.get(identity)
            if admission is None:
                admission = self._admissions[identity] = Admission(self.stopping)
        return admission

    def unregister(self, client_id: str) -> None:
        """Take an application off Business Central's "Microsoft Entra Applications" page: its requests
        are refused with 401 Authentication_InvalidCredentials ("The server has rejected the client
        credentials."), whatever token it gets (dev-itpro automation-apis-using-s2s-authentication.md:
        the application must be registered there before it can call)."""
        with self._lock:
            self.unregistered.add(client_id.lower())

    def _admit(
        self, h: Handler, recorded: RecordedRequest, graph: bool, serve: Callable[[Fault | None], None]
    ) -> None:
        """Record one payments request (or batch), wait for its identity's processing slot (or refuse
        it, as the limits say), then serve it with its fault, if any."""
        with self._lock:
            self.requests.append(recorded)
        identity = self._identity_of(h)
        if identity.lower() in self.unregistered:
            refused = ODataError(
                401, "Authentication_InvalidCredentials", "The server has rejected the client credentials."
            )
            self._error(h, graph, refused)
            return
        with self._lock:
            self.requests_by_identity[identity] += 1
        admission = self._admission_of(identity)
        arrived = h.arrived or time.monotonic()
        try:
            started = admission.enter(self.identity_limits.get(identity.lower(), self.limits), arrived)
        except ODataError as err:
            with self._lock:
                if err.status == 429:
                    self.throttled_count += 1
                else:
                    self.queue_timeouts += 1
            self._error(h, graph, err)
            return
        writes = _journals_written(recorded)
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            for journal in writes:
                self._journal_writers[journal] += 1
                self.peak_journal_writers = max(self.peak_journal_writers, self._journal_writers[journal])
        # An operation takes `latency`, the sandbox's own work included (as with a real service): the
        # answer is held until then, so `concurrent / latency` requests per second is reachable.
        h.started = started
        h.deadline = Deadline(self.limits, arrived, started)
        h.due = started + self.latency
        try:
            serve(self._faults.take())
        finally:
            admission.leave()
            with self._lock:
                self._in_flight -= 1
                for journal in writes:
                    self._journal_writers[journal] -= 1

    def _within_deadline(self, h: Handler, finish: float) -> None:
        """Raise the operation or request timeout (answered when it falls) if work ending at `finish`
        cannot be done in time; Business Central cancels the session, so that work never happens."""
        deadline: Deadline = h.deadline
        if not deadline.allows(finish):
            h.due = deadline.at
            with self._lock:
                self.timeouts += 1
            raise deadline.error


def _journals_written(recorded: RecordedRequest) -> set[str]:
    """The journals a POST writes to: named in its path, or in the inner requests of a `$batch`."""
    if recorded.method != "POST":
        return set()
    found = _JOURNAL_IN_URL.findall(recorded.path.encode() + b" " + recorded.body)
    return {j.decode().lower() for j in found}
