"""The composition root: settings, credential, target client, ledger, pipeline and file drop, built
once per process and wired together here only.

Nothing here runs at import: the first invocation builds it, later ones reuse it, so a worker
pays for one credential, one connection pool and one token however many payments it relays. Nor is
anything imported before it is needed: a worker's cold start loads the settings and the functions'
decorators; the first call of a kind loads what that kind uses (the bank readers wait for a statement).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import SettingsError
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .filedrop import FileDrop
    from .inbound import Gate
    from .ledger import Ledger
    from .outbound import TargetClient
    from .outbound.shared import SharedFlow
    from .posting import Pipeline
    from .work import BatchStore, Poster, WorkQueue

log = logging.getLogger("payments.runtime")

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_file_drop: FileDrop | None = None
_poster: TargetClient | None = None  # the posters' client (one attempt per request)
_posters: dict[bool, Poster] = {}  # by priority
_gate: Gate | None = None
_settings: tuple[dict[str, str], Settings] | None = None  # the environment they were read from, and them


def current_settings() -> Settings:
    """The validated settings, read again only when the environment has changed since (the host never
    changes it; tests do): start-up's check, telemetry and the first invocation share one reading, as
    validating them costs a cold start a few milliseconds each time."""
    global _settings
    environment = dict(os.environ)
    kept = _settings
    if kept is not None and kept[0] == environment:
        return kept[1]
    settings = load_settings()
    _settings = (environment, settings)
    return settings


def freeze_startup_objects() -> None:
    """Leave what start-up loaded (modules, schemas, settings: it lives as long as the worker) out of
    later garbage collections. A full collection walking it takes tens of milliseconds, during which
    every payment in flight waits; after this it walks only what was made since."""
    gc.freeze()


def pipeline() -> Pipeline:
    """The process's pipeline; raises SettingsError (a clear message) when a setting is wrong."""
    global _pipeline
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                from .credentials import target_credential
                from .outbound import TargetClient
                from .posting import Pipeline

                settings = current_settings()
                client = TargetClient(
                    settings, target_credential(settings), shared=make_shared_flow(settings)
                )
                ledger = make_ledger(settings)
                if settings.work_queue:
                    from .work import QueuedPipeline

                    if ledger is None:
                        raise SettingsError(
                            "PAYMENTS_WORK_QUEUE needs the function's storage account for the ledger: set "
                            "AzureWebJobsStorage__tableServiceUri (identity-based) or, locally, "
                            "AzureWebJobsStorage"
                        )
                    name = settings.priority_queue
                    priority = make_work_queue(settings, name) if name else None
                    _pipeline = QueuedPipeline(
                        client, ledger, make_work_queue(settings), make_batches(settings), priority=priority
                    )
                else:
                    _pipeline = Pipeline(client, ledger)
    return _pipeline


def gate() -> Gate:
    """The process's gate for HTTP callers; its signed deliveries are kept in the storage account (so
    every instance refuses a replay), or in memory without one (local development)."""
    global _gate
    if _gate is None:
        with _lock:
            if _gate is None:
                from .inbound import Deliveries, Gate, MemoryDeliveries, TableDeliveries
                from .storage import table_client

                settings = current_settings()
                table = table_client(settings, settings.webhook_table)
                deliveries: Deliveries = MemoryDeliveries() if table is None else TableDeliveries(table)
                _gate = Gate(settings, deliveries)
    return _gate


def make_work_queue(settings: Settings, name: str = "") -> WorkQueue:
    from .storage import queue_client
    from .work import WorkQueue

    name = name or settings.work_queue
    return WorkQueue(queue_client(settings, name), queue_client(settings, f"{name}-poison"))


def poster(*, priority: bool = False) -> Poster:
    """The process's poster for the work queue (or the priority queue): the queue trigger's. Its client
    makes one attempt per request: a busy or unavailable target puts the payments back on its queue with
    a delay, not a wait in place. Both posters share one client, so their limits are one."""
    global _poster
    if priority not in _posters:
        with _lock:
            if priority not in _posters:
                from .credentials import target_credential
                from .outbound import TargetClient
                from .work import Poster, QueuedPipeline

                queued = pipeline()
                if not isinstance(queued, QueuedPipeline):
                    raise SettingsError("the work queue is off: set PAYMENTS_WORK_QUEUE to the queue's name")
                if _poster is None:
                    settings = queued.client.settings.model_copy(update={"max_attempts": 1})
                    _poster = TargetClient(settings, target_credential(settings), shared=queued.client.shared)
                queue = queued.priority if priority and queued.priority is not None else queued.queue
                _posters[priority] = Poster(_poster, queued.required_ledger, queue, queued, priority=priority)
    return _posters[priority]


def make_batches(settings: Settings) -> BatchStore:
    from .storage import blob_service
    from .work import BatchStore

    return BatchStore(blob_service(settings).get_container_client(settings.batches_container))


def make_shared_flow(settings: Settings) -> SharedFlow | None:
    """The limits kept with every other instance (PAYMENTS_SHARED_CONCURRENCY), in the storage account."""
    if not settings.shared_concurrency:
        return None
    from .outbound.shared import SharedFlow
    from .storage import blob_service

    container = blob_service(settings).get_container_client(settings.flow_container)
    return SharedFlow(container, settings.shared_concurrency)


def make_ledger(settings: Settings) -> Ledger | None:
    """The exactly-once ledger in the function's storage account (None, with a warning, without one)."""
    from .ledger import Ledger, TableLedgerStore
    from .storage import ledger_table

    table = ledger_table(settings)
    if table is None:
        log.warning(
            "no storage account configured: the idempotency ledger is off, duplicates are not detected"
        )
        return None
    return Ledger(
        TableLedgerStore(table),
        lease=timedelta(seconds=settings.ledger_lease_seconds),
        settle=timedelta(seconds=settings.target_settle_seconds),
        retention=timedelta(days=settings.ledger_retention_days),
    )


def file_drop() -> FileDrop:
    """The process's file-drop processor, sharing the pipeline (and so the token and session)."""
    global _file_drop
    if _file_drop is None:
        with _lock:
            if _file_drop is None:
                from .filedrop import FileDrop
                from .storage import blob_service

                settings = pipeline().client.settings
                _file_drop = FileDrop(blob_service(settings), settings, pipeline())
    return _file_drop


def purge_ledger() -> int:
    """Delete ledger entries past the retention period (the nightly timer); how many were removed."""
    ledger = pipeline().ledger
    if ledger is None:
        log.warning("ledger purge skipped: no storage account configured")
        return 0
    removed = ledger.purge()
    log.info("ledger purge removed %d entries past retention", removed)
    settings = pipeline().client.settings
    if settings.storage_connection_string or settings.storage_blob_uri:
        from .filedrop.plans import forget_old_credits
        from .storage import blob_service

        credits, plans = forget_old_credits(settings, blob_service(settings))
        log.info("ledger purge forgot %d bank credits and %d plans past their retention", credits, plans)
    if gate().settings.senders:
        forgotten = gate().purge()
        log.info("ledger purge forgot %d signed deliveries past the tolerance", forgotten)
    return removed


def post_journals() -> list[Any]:
    """Post the journals PAYMENTS_POST_JOURNALS names, each only when it holds nothing but the relay's own
    lines (the hourly timer); what each came to, logged."""
    from .posting.journal import post_journal

    queued = pipeline()
    results = []
    for company, journal in queued.client.settings.journals_to_post:
        if queued.ledger is None:
            raise SettingsError("posting a journal needs the ledger: set the function's storage account")
        result = post_journal(queued.client, queued.ledger, company, journal)
        if result.ok:
            log.info("journal %s posted: %d lines (%d adopted)", journal, result.posted, result.adopted)
        else:
            log.warning("journal %s not posted: %s", journal, result.refused)
        results.append(result)
    return results


def redrive_inbox() -> int:
    """Process inbox files no worker took (the timer); how many were found."""
    from .filedrop.redrive import redrive

    results = redrive(file_drop())
    for item, result in results:
        log.warning(
            "stranded file %s (%s): %s", item.name, item.why, result.status if result else "busy, left"
        )
    return len(results)


def start_telemetry() -> bool:
    """Switch telemetry on for this worker when the settings ask for it (once; see payments.telemetry)."""
    from .telemetry import configure

    try:
        return configure(current_settings())
    except SettingsError:
        return False  # check_settings() has said why; the relay answers relay-misconfigured
    except Exception:  # telemetry must never keep the relay from starting
        log.exception("telemetry could not be switched on; the relay runs without it")
        return False


def measure_queues() -> dict[str, int]:
    """The depths the alerts watch (the timer emits them every five minutes): the work queue, its poison
    queue, and the Event Grid dead letters waiting in their container (counted up to 1,000)."""
    from .storage import blob_service
    from .telemetry import queue_depth
    from .work import QueuedPipeline

    depths: dict[str, int] = {}
    queued = pipeline()
    if isinstance(queued, QueuedPipeline):
        depths["work"], depths["poison"] = queued.queue.depth()
        if queued.priority is not None:  # its poison counts with the work queue's: one alert
            depths["priority"], poisoned = queued.priority.depth()
            depths["poison"] += poisoned
    settings = queued.client.settings
    container = blob_service(settings).get_container_client(settings.deadletter_container)
    try:
        depths["deadletter"] = sum(1 for _, _ in zip(range(1000), container.list_blobs(), strict=False))
    except Exception:  # a container not created yet holds nothing
        depths["deadletter"] = 0
    for queue, depth in depths.items():
        queue_depth(queue, depth)
    return depths


def redrive_work() -> int:
    """Queue again what was accepted and no poster has (the timer): accepted payments whose message was
    lost or poisoned, and claims whose poster died. How many payments."""
    from .work import QueuedPipeline
    from .work.redrive import redrive, redrive_intakes

    queued = pipeline()
    if not isinstance(queued, QueuedPipeline):
        return 0
    after = timedelta(seconds=queued.client.settings.redrive_after_seconds)
    return redrive_intakes(queued.batches, queued.queue, after) + redrive(
        queued.required_ledger, queued.queue, after
    )


def check_settings() -> bool:
    """Validate the settings at worker start-up, so a wrong value shows in the host's log at once
    (each call then answers `relay-misconfigured` rather than the app failing to load)."""
    try:
        current_settings()
    except SettingsError as exc:
        log.error("payments relay: %s", exc)
        return False
    return True


def reset() -> None:
    """Forget the process state (tests change settings between cases)."""
    global _pipeline, _file_drop, _poster, _gate, _settings
    from .inbound.refusal import REFUSALS

    with _lock:
        _gate = None
        _settings = None
        REFUSALS.reset()
        if _pipeline is not None:
            _pipeline.client.close()
        if _poster is not None:
            _poster.close()
        _pipeline = None
        _file_drop = None
        _poster = None
        _posters.clear()
