"""Nothing stranded: files the blob trigger never took, found and processed again.

A file stays in the inbox when its event was never delivered: Event Grid gave up on it (it is then
dead-lettered to PAYMENTS_DEADLETTER_CONTAINER, one JSON array of events per blob), or the file was
uploaded while the subscription did not exist. A timer (and `python -m payments inbox redrive`) lists
inbox files older than PAYMENTS_REDRIVE_AFTER_SECONDS and the dead-lettered events, and processes each
file as its event would have: the file's lease and the ledger make a second processing harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from .. import codec
from ..errors import FileBusy, JsonSyntaxError
from ..settings import Settings
from .process import DropResult, FileDrop

log = logging.getLogger("payments.filedrop")


@dataclass(frozen=True, slots=True)
class Stranded:
    """An inbox file no worker took: its name, why it counts as stranded, and the dead-letter blobs
    (if any) that name it."""

    name: str
    why: str
    dead_letters: tuple[str, ...] = ()


def stranded(service: BlobServiceClient, settings: Settings, now: datetime | None = None) -> list[Stranded]:
    """Inbox files older than the threshold, and files named by dead-lettered events, oldest first."""
    now = now or datetime.now(UTC)
    threshold = now - timedelta(seconds=settings.redrive_after_seconds)
    inbox = service.get_container_client(settings.inbox_container)
    found: dict[str, list[str]] = {}
    why: dict[str, str] = {}
    modified: dict[str, datetime] = {}
    for blob in inbox.list_blobs():
        modified[blob.name] = blob.last_modified
        if blob.last_modified <= threshold and blob.lease.state != "leased":
            minutes = int((now - blob.last_modified).total_seconds() // 60)
            why[blob.name] = f"in the inbox for {minutes} minutes"
    for letter, events in _dead_letters(service, settings):
        for event in events:
            name = _inbox_name(event, settings.inbox_container)
            if name is None:
                log.warning("dead-lettered event %s names no inbox blob: ignored", event.get("id"))
                continue
            found.setdefault(name, []).append(letter)
            reason = event.get("deadLetterReason") or "undeliverable"
            why.setdefault(name, f"its event was dead-lettered ({reason})")
    names = sorted(why, key=lambda n: modified.get(n, now))
    return [Stranded(n, why[n], tuple(dict.fromkeys(found.get(n, [])))) for n in names]


def redrive(drop: FileDrop, now: datetime | None = None) -> list[tuple[Stranded, DropResult | None]]:
    """Process every stranded file; a dead-letter blob is deleted once every file it names has left
    the inbox. A file another worker holds right now is left for it (result None)."""
    settings = drop.settings
    results: list[tuple[Stranded, DropResult | None]] = []
    kept: set[str] = set()
    for item in stranded(drop.service, settings, now):
        log.warning("re-driving stranded file %s: %s", item.name, item.why)
        try:
            result: DropResult | None = drop.process(item.name)
        except FileBusy:
            result = None
            kept.update(item.dead_letters)
        results.append((item, result))
    letters = {letter for item, _ in results for letter in item.dead_letters}
    dead = drop.service.get_container_client(settings.deadletter_container)
    for letter in sorted(letters - kept):
        try:
            dead.delete_blob(letter)
        except ResourceNotFoundError:
            pass
    return results


def _dead_letters(service: BlobServiceClient, settings: Settings) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each dead-letter blob with its events (Event Grid writes a JSON array of one or more)."""
    container = service.get_container_client(settings.deadletter_container)
    letters: list[tuple[str, list[dict[str, Any]]]] = []
    try:
        blobs = list(container.list_blobs())
    except ResourceNotFoundError:
        return letters  # no dead letter ever written
    for blob in blobs:
        try:
            events = codec.loads(container.download_blob(blob.name).readall(), unique_keys=False)
        except JsonSyntaxError:
            log.error("dead-letter blob %s is not JSON: left for a person", blob.name)
            continue
        events = events if isinstance(events, list) else [events]
        letters.append((blob.name, [e for e in events if isinstance(e, dict)]))
    return letters


def _inbox_name(event: dict[str, Any], inbox: str) -> str | None:
    """The inbox blob a BlobCreated event is about, from its subject
    (`/blobServices/default/containers/<container>/blobs/<name>`)."""
    subject = str(event.get("subject") or "")
    prefix = f"/blobServices/default/containers/{inbox}/blobs/"
    return subject[len(prefix) :] or None if subject.startswith(prefix) else None
