"""Limits that every instance keeps together, through blob leases in the function's own storage account.

The in-process limits (`flow.py`) hold within one worker; Azure runs many. Business Central processes
five requests at once per identity and wants one insert at a time per journal, whatever the number of
callers, so with PAYMENTS_SHARED_CONCURRENCY set every request also holds one of that many slots, and
every insert its journal's turn, each a lease on a small blob in PAYMENTS_FLOW_CONTAINER. A worker that
dies holding one frees it when the lease runs out (LEASE_SECONDS); a live holder renews it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

log = logging.getLogger("payments.target")

LEASE_SECONDS = 15  # the shortest lease Azure grants: a dead worker's slot is free again this soon
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
                try:
                    lease.renew()
                except HttpResponseError as exc:  # lost (it ran out while this process stalled)
                    log.error("shared flow lease lost: %s", exc.error_code)
                    self.discard(lease)


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

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the identity's request slots, for the length of one exchange."""
        names = [f"slots/{i}" for i in range(self.slots)]
        lease = self._take(names, until=None, shuffle=True)
        assert lease is not None
        try:
            yield
        finally:
            self._give_back(lease)

    @contextmanager
    def journal(self, company_id: str, journal_id: str, until: float | None) -> Iterator[bool]:
        """The journal's insert turn; yields False when `until` (monotonic) passed before it was free."""
        key = hashlib.sha256(f"{company_id.lower()}_{journal_id.lower()}".encode()).hexdigest()[:32]
        lease = self._take([f"journals/{key}"], until=until, shuffle=False)
        if lease is None:
            yield False
            return
        try:
            yield True
        finally:
            self._give_back(lease)

    def _take(self, names: list[str], until: float | None, shuffle: bool) -> Any:
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
                return lease
            if until is not None and self._clock() + delay > until:
                return None
            self.waits += 1
            self._sleep(delay)
            delay = min(delay * 2, 0.5)

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


def _create(blob: Any) -> None:
    """The empty blob a lease is taken on; one that exists (leased or not) is left as it is."""
    try:
        blob.upload_blob(b"", overwrite=False)
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if getattr(exc, "status_code", None) not in (409, 412):  # exists, under someone's lease
            raise
