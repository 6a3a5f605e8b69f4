"""Limits that every instance keeps together, through blob leases in the function's own storage account.

The in-process limits (`flow.py`) hold within one worker; Azure runs many. Business Central processes
five requests at once per identity, wants one insert at a time per journal and takes 6,000 requests
per five minutes, whatever the number of callers, so with PAYMENTS_SHARED_CONCURRENCY set every
request also holds one of that many slots, and every insert its journal's turn, each a lease on a
small blob in PAYMENTS_FLOW_CONTAINER, and the rate window is counted in one blob there. A worker that
dies holding one frees it when the lease runs out (LEASE_SECONDS); a live holder renews it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

from ..errors import TargetUnavailable
from .flow import pace

log = logging.getLogger("payments.target")

LEASE_SECONDS = 15  # the shortest lease Azure grants: a dead worker's slot is free again this soon
# A waiter asks for a taken lease again after 20 ms, doubling up to this (a blob lease has no notice of
# its release); a caller waiting for its answer (the priority queue) asks every PRIORITY_POLL seconds,
# so it takes a journal's turn ahead of the batches waiting for it.
LONGEST_POLL = 0.5
PRIORITY_POLL = 0.1
_BUSY = ("LeaseAlreadyPresent", "LeaseIdMismatchWithLeaseOperation")


class _Renewer:
    """One thread renewing every lease this process holds, a third of the way through each period."""

    def __init__(self) -> None:
        self._held: set[Any] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lease: Any) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="payments-shared-flow", daemon=True)
                self._thread.start()

    def discard(self, lease: Any) -> None:
        with self._lock:
            self._held.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(LEASE_SECONDS / 3)
            with self._lock:
                held = list(self._held)
                if not held:
                    self._thread = None
                    return
            for lease in held:
                with self._lock:
                    if lease not in self._held:
                        continue  # given back since
                try:
                    lease.renew()
                except Exception as exc:  # this thread must outlive any one failure
                    with self._lock:
                        still_held = lease in self._held
                        self._held.discard(lease)
                    if still_held:  # lost (it ran out while this process stalled), not just given back
                        log.error("shared flow lease lost: %s", getattr(exc, "error_code", None) or exc)


class SharedFlow:
    """`slots` requests in flight to the target across every instance, and one insert per journal."""

    def __init__(
        self,
        container: Any,  # azure.storage.blob.ContainerClient
        slots: int,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.container = container
        self.slots = slots
        self._sleep = sleep
        self._clock = clock
        self._renewer = _Renewer()
        self._made: set[str] = set()
        self._made_lock = threading.Lock()
        self.waits = 0  # times a request found every slot (or its journal) taken and waited

    def rate(self, limit: int, window: float, max_wait: float, identity: str | None = None) -> SharedRate:
        """An identity's rate window, kept with every other instance in the same container (`identity`
        None: the single identity's, under the names it always had)."""
        blob = "rate/window" if identity is None else f"rate/{identity}"
        return SharedRate(self.container, limit, window, max_wait, sleep=self._sleep, blob=blob)

    @contextmanager
    def slot(self, identity: str | None = None) -> Iterator[None]:
        """One of an identity's request slots, for the length of one exchange."""
        with self.slot_among([identity]):
            yield

    @contextmanager
    def slot_among(self, identities: Sequence[str | None]) -> Iterator[int]:
        """A request slot of the first of `identities` (in order of preference) that has one free, across
        every instance, waiting while none has one; yields which identity's (its index). An instance's
        own choice of identity counts only its own requests: asking every identity's slots in turn sends
        the request as one with room rather than wait for a busy one while another is free."""
        names: list[str] = []
        owner: dict[str, int] = {}
        for index, identity in enumerate(identities):
            prefix = "slots/" if identity is None else f"slots/{identity}/"
            for i in random.sample(range(self.slots), self.slots):  # spread within one identity's
                owner[f"{prefix}{i}"] = index
                names.append(f"{prefix}{i}")
        name, lease = self._take_named(names, until=None, shuffle=False)
        try:
            yield owner[name]
        finally:
            self._give_back(lease)

    @contextmanager
    def journal(
        self,
        company_id: str,
        journal_id: str,
        until: float | None,
        *,
        eager: bool = False,
        place: Place | NoPlace | None = None,
    ) -> Iterator[bool]:
        """The journal's insert turn; yields False when `until` (monotonic) passed before it was free.
        `eager`: a caller waits for the answer: ask for the turn more often than the batches do. `place`:
        the waiter's place in the journal's line, left as soon as the wait is over."""
        longest = PRIORITY_POLL if eager else LONGEST_POLL
        blob = _journal_blob(company_id, journal_id)
        try:
            lease = self._take([blob], until=until, shuffle=False, longest=longest)
        finally:
            if place is not None:  # the turn is had (or given up): the next waiter may take the place
                place.leave()
        if lease is None:
            yield False
            return
        try:
            yield True
        finally:
            self._give_back(lease)

    def place(self, company_id: str, journal_id: str) -> Place | None:
        """The journal's one place in line, if it is free now (one try, no waiting): held by the message
        that waits for the journal's turn next, whichever instance has it, until that turn is its own.
        None: another message holds it, so this one steps aside rather than hold a message slot of its
        worker in a line while messages for free journals wait on the queue."""
        blob = _journal_blob(company_id, journal_id) + "-next"
        lease = self._take([blob], until=self._clock(), shuffle=False)
        return None if lease is None else Place(self, lease)

    def _take(
        self, names: list[str], until: float | None, shuffle: bool, longest: float = LONGEST_POLL
    ) -> Any:
        """A lease on the first of `names` free (in their order, or shuffled), waiting until `until`;
        None when that passed first."""
        return self._take_named(names, until, shuffle, longest)[1]

    def _take_named(
        self, names: list[str], until: float | None, shuffle: bool, longest: float = LONGEST_POLL
    ) -> tuple[str, Any]:
        try:
            return self._take_lease(names, until, shuffle, longest)
        except AzureError as exc:
            raise _storage_down(exc) from None

    def _take_lease(
        self, names: list[str], until: float | None, shuffle: bool, longest: float
    ) -> tuple[str, Any]:
        from azure.storage.blob import BlobLeaseClient

        delay = 0.02
        while True:
            order = random.sample(names, len(names)) if shuffle else names
            for name in order:
                blob = self._blob(name)
                lease = BlobLeaseClient(blob)
                try:
                    lease.acquire(lease_duration=LEASE_SECONDS)
                except HttpResponseError as exc:
                    if exc.error_code in _BUSY or getattr(exc, "status_code", None) == 409:
                        continue
                    raise
                self._renewer.add(lease)
                return name, lease
            if until is not None and self._clock() + delay > until:
                return "", None
            self.waits += 1
            self._sleep(delay)
            delay = min(delay * 2, longest)

    def _give_back(self, lease: Any) -> None:
        self._renewer.discard(lease)
        try:
            lease.release()
        except HttpResponseError as exc:  # it ran out: someone else may hold it now, nothing to undo
            log.warning("shared flow lease could not be released: %s", exc.error_code)

    def _blob(self, name: str) -> Any:
        blob = self.container.get_blob_client(name)
        if name not in self._made:
            with self._made_lock:
                if name not in self._made:
                    try:
                        _create(blob)
                    except ResourceNotFoundError:  # the container itself is missing (a fresh emulator)
                        try:
                            self.container.create_container()
                        except ResourceExistsError:
                            pass
                        _create(blob)
                    self._made.add(name)
        return blob


class NoPlace:
    """No line to stand in (no shared limits): nothing to leave."""

    def leave(self) -> None:
        pass


class Place:
    """A held place in a journal's line; `leave` gives it back (once, however often it is called)."""

    def __init__(self, flow: SharedFlow, lease: Any):
        self._flow = flow
        self._lease: Any = lease

    def leave(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            self._flow._give_back(lease)


def _journal_blob(company_id: str, journal_id: str) -> str:
    """The blob whose lease is a journal's turn (GUIDs: one journal however its ids are cased)."""
    key = f"{company_id.lower()}_{journal_id.lower()}"
    return "journals/" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _create(blob: Any) -> None:
    """The empty blob a lease is taken on; one that exists (leased or not) is left as it is."""
    try:
        blob.upload_blob(b"", overwrite=False)
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if getattr(exc, "status_code", None) not in (409, 412):  # exists, under someone's lease
            raise


class SharedRate:
    """The target's rate window kept by every instance together. Reservations are counted by the time
    they were made in one small blob, updated only if unchanged since read (its etag); a worker
    reserves a few requests at a time so that most requests cost no storage round trip.
    Reserved requests not sent soon are simply wasted: they were counted, so the count stays high, never
    low. A request that would wait longer than `max_wait` is not sent (as with `flow.RateWindow`)."""

    BLOCK = 10  # requests reserved per round trip

    def __init__(
        self,
        container: Any,
        limit: int,
        window: float,
        max_wait: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,  # wall clock: instances share it, not their monotonic ones
        blob: str = "rate/window",
    ):
        self.container = container
        self.blob = blob
        self.limit = limit
        self.window = window
        self.span = window + min(1.0, 0.05 * window)  # the target counts from arrival, a little later
        self.max_wait = max_wait
        self._sleep = sleep
        self._now = now
        self._lock = threading.Lock()
        self._tokens = 0
        self._expiry = 0.0

    def acquire(self) -> None:
        pace(self._try, self.limit, self.window, self.max_wait, self._sleep, ", every instance together")

    def _try(self) -> float | None:
        """None when a request may go now (a reserved one is used), else the seconds until one may."""
        with self._lock:
            if self._tokens and self._now() < self._expiry:
                self._tokens -= 1
                return None
            try:
                granted, expiry, wait = self._reserve()
            except AzureError as exc:
                raise _storage_down(exc) from None
            if granted:
                self._tokens, self._expiry = granted - 1, expiry
                return None
            return wait

    def _reserve(self) -> tuple[int, float, float]:
        """(requests granted, until when they may be sent, or how long to wait before asking again)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        blob = self.container.get_blob_client(self.blob)
        margin = self.span - self.window
        for _ in range(20):
            try:
                download = blob.download_blob()
                counts = json.loads(download.readall() or b"{}")
                etag = download.properties.etag
            except ResourceNotFoundError:
                counts, etag = {}, None
            t = round(self._now(), 3)
            live = {float(k): int(v) for k, v in counts.items() if float(k) > t - self.span}
            free = self.limit - sum(live.values())
            if free <= 0:
                return 0, 0.0, max(0.01, min(live) + self.span - t)
            take = min(self.BLOCK, free)
            live[t] = live.get(t, 0) + take
            body = json.dumps({repr(k): v for k, v in live.items()}).encode()
            try:
                if etag is None:
                    blob.upload_blob(body, overwrite=False)
                else:
                    blob.upload_blob(
                        body, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            except (ResourceModifiedError, ResourceExistsError):
                continue  # another instance counted in between: read again
            except ResourceNotFoundError:
                _create_container(self.container)
                continue
            # Sent by then, each is counted by the target (from its arrival) no longer than by us.
            return take, t + margin, 0.0
        return 0, 0.0, 0.05


def _create_container(container: Any) -> None:
    try:
        container.create_container()
    except ResourceExistsError:
        pass


def _storage_down(exc: Exception) -> TargetUnavailable:
    """Without its storage the relay cannot keep the shared limits, so it sends nothing (the error's own
    text goes to the log, not to callers)."""
    log.error("shared flow: storage unavailable: %s: %s", type(exc).__name__, exc)
    return TargetUnavailable(
        "not sent: the relay's storage (which keeps the limits shared by its instances) is unavailable; "
        "send it again later",
        retry_after=30,
    )
