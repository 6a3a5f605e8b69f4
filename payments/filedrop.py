"""File drops: a payment file in the inbox container becomes posted payments, a report and a
failed-records CSV, and the file leaves the inbox for the archive's processed/ or failed/ area.

The file is read twice over in effect but downloaded once: a first pass streams and validates
every record into a local spool (so a file that cannot be read as a whole, or is over the limits,
posts nothing), a second pass posts the spooled payments through the shared pipeline in chunks.
Memory stays bounded by the chunk size, not the file size.

While a worker holds a file it holds a renewable lease on the inbox blob: a second delivery of
the same upload (Event Grid and the blob extension deliver at least once) finds the lease and is
retried by the host later, by which time the file has left the inbox and the retry does nothing.
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContentSettings

from . import codec
from .errors import TargetError, TargetUnavailable
from .model import WRITABLE, Checked, FieldError, check
from .pipeline import Outcome, Pipeline
from .readers import ERROR_COLUMN, InputError, Record, guard_cell, read_stream
from .settings import Settings

log = logging.getLogger("payments.filedrop")

POST_CHUNK = 100  # least payments handed to the pipeline at a time: bounds memory, not throughput
SPOOL_MEMORY = 1024 * 1024  # temp files stay in memory up to this size, then go to disk


class FileBusy(Exception):
    """Another worker holds this file; the host should deliver it again later."""


@dataclass(slots=True)
class DropResult:
    """What one delivery did: the report's totals and where things went."""

    status: str  # "processed", "failed" (file moved to failed/), or "gone" (nothing to do)
    totals: dict[str, int] = field(default_factory=dict)
    report: str | None = None
    failed_csv: str | None = None
    archived: str | None = None
    error: str | None = None


def target_of(name: str, settings: Settings) -> tuple[str, str, str]:
    """Company, journal and file name from `<companyId>/<journalId>/<file>` or a root-level file."""
    parts = name.split("/")
    if len(parts) == 3:
        company, journal, file = parts
        try:
            return str(uuid.UUID(company)), str(uuid.UUID(journal)), file
        except ValueError:
            raise InputError(f"the folders of {name!r} must be <companyId>/<journalId>, both GUIDs") from None
    if len(parts) == 1:
        if settings.default_company_id and settings.default_journal_id:
            return settings.default_company_id, settings.default_journal_id, name
        raise InputError(
            "a file at the inbox root needs PAYMENTS_DEFAULT_COMPANY_ID and PAYMENTS_DEFAULT_JOURNAL_ID; "
            "otherwise drop it as <companyId>/<journalId>/<file>"
        )
    raise InputError(f"{name!r} must be <companyId>/<journalId>/<file> or a file at the inbox root")


class _Lease:
    """A blob lease renewed in the background until released, so a long file stays ours."""

    def __init__(self, blob: BlobClient, seconds: int):
        self.client = BlobLeaseClient(blob)
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        self.client.acquire(lease_duration=self.seconds)
        self._thread = threading.Thread(target=self._renew, name="payments-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.client.renew()
            except HttpResponseError as exc:  # the blob was deleted, or the lease lost
                log.warning("lease renewal failed: %s", exc.error_code)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _ChunkReader(io.RawIOBase):
    """A readable stream over the downloader's chunks, so the readers can stream a blob."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


class _Report:
    """Accumulates one line per record (spooled, not in memory) and the failed records for the CSV."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.entries: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.failed: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.columns: dict[str, None] = {}
        self.csv_header: list[str] | None = None
        self._first = True

    def add(self, location: str, outcome: str, record: Record | None, **detail: Any) -> None:
        self.totals[outcome] += 1
        entry = {
            "location": location,
            "outcome": outcome,
            **{k: v for k, v in detail.items() if v is not None},
        }
        self.entries.write((b"" if self._first else b",\n") + codec.dumpb(entry))
        self._first = False
        if outcome not in ("created", "skipped") and record is not None:
            self._add_failed(record, detail)

    def _add_failed(self, record: Record, detail: dict[str, Any]) -> None:
        if record.raw is not None:
            cells: dict[str, Any] = dict(record.raw)
            if self.csv_header is None:
                self.csv_header = list(record.raw)
        else:
            data = record.data if isinstance(record.data, dict) else {}
            cells = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
            for key in cells:
                self.columns.setdefault(key, None)
        cells[ERROR_COLUMN] = _one_line(detail)
        self.failed.write(codec.dumpb(cells) + b"\n")

    def failed_csv(self) -> IO[bytes] | None:
        """The failed records in the input's own columns plus `error`, safe to open in a spreadsheet."""
        if not self.failed.tell():
            return None
        if self.csv_header is not None:
            header = [h for h in self.csv_header if h.lower() != ERROR_COLUMN]
        else:
            header = [c for c in WRITABLE if c in self.columns] + [
                c for c in self.columns if c not in WRITABLE and c != ERROR_COLUMN
            ]
        columns = [*header, ERROR_COLUMN]
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(columns)
        self.failed.seek(0)
        for line in self.failed:
            cells = codec.loads(line)
            writer.writerow([guard_cell(_cell(cells.get(name))) for name in columns])
        text.detach()
        out.seek(0)
        return out

    def document(self, head: dict[str, Any]) -> IO[bytes]:
        """The report: the head (totals first) and then every record, streamed from the spool."""
        doc = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        head = {**head, "totals": {"records": sum(self.totals.values()), **dict(sorted(self.totals.items()))}}
        text = codec.dumps(head)
        doc.write(text[:-1].encode("utf-8") + b',"records":[\n')
        self.entries.seek(0)
        while chunk := self.entries.read(1 << 20):
            doc.write(chunk)
        doc.write(b"\n]}\n")
        doc.seek(0)
        return doc


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return codec.format_decimal(value) if hasattr(value, "as_tuple") else str(value)


def _one_line(detail: dict[str, Any]) -> str:
    if detail.get("errors"):
        return "; ".join(f"{e['pointer'] or '(record)'}: {e['detail']}" for e in detail["errors"])
    err = detail.get("error") or {}
    return f"{err.get('code') + ': ' if err.get('code') else ''}{err.get('message', '')}"


def _outcome_detail(outcome: Outcome) -> dict[str, Any]:
    if outcome.ok and outcome.created is not None:
        return {
            "id": outcome.created.get("id"),
            "lineNumber": outcome.created.get("lineNumber"),
            "note": outcome.note,
        }
    exc: TargetError | None = outcome.error
    error = {
        "code": getattr(exc, "code", None),
        "status": exc.status if exc else None,
        "message": exc.message if exc else "",
        "clientRequestId": outcome.client_request_id,
        "attempted": outcome.attempted,
        "note": outcome.note,
    }
    return {"error": {k: v for k, v in error.items() if v is not None}}


def _errors(errors: list[FieldError]) -> list[dict[str, str]]:
    return [e.as_dict() for e in errors]


class FileDrop:
    """Processes one inbox blob end to end; safe to call again for the same upload."""

    def __init__(self, service: BlobServiceClient, settings: Settings, pipeline: Pipeline):
        self.service = service
        self.settings = settings
        self.pipeline = pipeline
        self._containers_ready = False

    def _put(self, container: str, name: str, data: bytes | IO[bytes], content_type: str) -> str:
        client = self.service.get_blob_client(container, name)
        client.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_type=content_type))
        return f"{container}/{name}"

    def _ensure_containers(self) -> None:
        """The deployment creates the containers; a fresh local emulator may not have them yet."""
        if self._containers_ready:
            return
        for name in (self.settings.reports_container, self.settings.archive_container):
            try:
                self.service.create_container(name)
            except ResourceExistsError:
                pass
        self._containers_ready = True

    def process(self, name: str) -> DropResult:
        settings = self.settings
        inbox = self.service.get_blob_client(settings.inbox_container, name)
        lease = _Lease(inbox, settings.file_lease_seconds)
        try:
            lease.acquire()
        except ResourceNotFoundError:
            log.info("file %s is no longer in the inbox: already processed (repeat delivery)", name)
            return DropResult("gone")
        except HttpResponseError as exc:
            if exc.error_code in ("LeaseAlreadyPresent", "LeaseIdMissing"):
                raise FileBusy(f"{name} is being processed by another worker") from None
            raise
        try:
            self._ensure_containers()
            return self._process_leased(inbox, lease, name)
        finally:
            lease.stop()

    def _process_leased(self, inbox: BlobClient, lease: _Lease, name: str) -> DropResult:
        settings = self.settings
        started = datetime.now(UTC)
        stamp = started.strftime("%Y%m%dT%H%M%S%fZ")
        props = inbox.get_blob_properties()
        head: dict[str, Any] = {
            "source": {
                "container": settings.inbox_container,
                "name": name,
                "etag": props.etag,
                "size": props.size,
            },
            "processedAt": started.isoformat().replace("+00:00", "Z"),
        }
        report = _Report()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        file_error: str | None = None
        company = journal = None
        try:
            company, journal, _ = target_of(name, settings)
            head.update(companyId=company, journalId=journal)
            if props.size > settings.max_file_bytes:
                raise InputError(
                    f"the file is {props.size} bytes, over the limit of {settings.max_file_bytes}: split it"
                )
            valid = self._validate(inbox, name, report, spool)
        except InputError as exc:
            file_error = str(exc)
        if file_error is None and company and journal:
            self._post(company, journal, spool, valid, report)
        failed = file_error is not None or any(k not in ("created", "skipped") for k in report.totals)
        status = "failed" if failed else "processed"
        head["status"] = status
        if file_error is not None:
            head["error"] = file_error + "; nothing in this file was posted"
        report_name = f"{name}.{stamp}.report.json"
        result = DropResult(status, error=file_error)
        with report.document(head) as doc:
            result.report = self._put(settings.reports_container, report_name, doc, "application/json")
        failed_csv = report.failed_csv()
        if failed_csv is not None:
            result.failed_csv = self._put(
                settings.reports_container,
                f"{name}.{stamp}.failed.csv",
                failed_csv,
                "text/csv; charset=utf-8",
            )
        result.totals = {"records": sum(report.totals.values()), **report.totals}
        result.archived = self._archive(inbox, lease, name, status, stamp)
        log.info("file %s %s: %s", name, status, dict(result.totals))
        return result

    def _validate(self, inbox: BlobClient, name: str, report: _Report, spool: IO[bytes]) -> int:
        """First pass: read and check every record; spool the valid payments, report the rest."""
        limit = self.settings.max_file_records
        rules = self.pipeline.rules
        text_rules = replace(rules, from_text=True)
        stream = io.BufferedReader(_ChunkReader(inbox.download_blob().chunks()), buffer_size=1 << 16)
        count = valid = 0
        for record in read_stream(stream, name):
            count += 1
            if count > limit:
                raise InputError(f"the file holds more than {limit} records: split it")
            if record.error is not None:
                checked = Checked(None, [FieldError("", record.error)])
            else:
                checked = check(record.data, text_rules if record.from_text else rules)
            if checked.payment is None:
                report.add(record.location, "invalid", record, errors=_errors(checked.errors))
                continue
            valid += 1
            line = {
                "location": record.location,
                "payload": checked.payment.payload(),
                "record": _keep(record),
            }
            if checked.ignored:
                line["ignored"] = checked.ignored
            spool.write(codec.dumpb(line) + b"\n")
        if count == 0:
            raise InputError("the file holds no payment records")
        return valid

    def _post(self, company: str, journal: str, spool: IO[bytes], valid: int, report: _Report) -> None:
        """Second pass: post the spooled payments in chunks through the shared pipeline."""
        spool.seek(0)
        settings = self.settings
        # Enough payments per call to keep every allowed request in flight busy.
        chunk_size = max(POST_CHUNK, settings.batch_size * settings.max_concurrency * 2)
        halted = False
        while True:
            chunk = [codec.loads(line) for _, line in zip(range(chunk_size), spool, strict=False)]
            if not chunk:
                return
            # The payloads passed validation in the first pass; checking again restores the model.
            payments = [check(item["payload"], self.pipeline.rules).payment for item in chunk]
            if halted:
                skipped = TargetUnavailable("not attempted: the target was unavailable")
                outcomes = [Outcome("unavailable", error=skipped, attempted=False) for _ in chunk]
            else:
                outcomes = self.pipeline.post_all(company, journal, [p for p in payments if p is not None])
            for item, outcome in zip(chunk, outcomes, strict=True):
                report.add(
                    item["location"], outcome.kind, _restore(item["record"]), **_outcome_detail(outcome)
                )
                if not outcome.attempted or outcome.kind in ("unavailable", "denied"):
                    halted = True

    def _archive(self, inbox: BlobClient, lease: _Lease, name: str, status: str, stamp: str) -> str:
        """Copy the file to processed/ or failed/ in the archive container, then remove it from the inbox."""
        area = "processed" if status == "processed" else "failed"
        target = f"{area}/{name}.{stamp}"
        data = io.BufferedReader(_ChunkReader(inbox.download_blob().chunks()), buffer_size=1 << 20)
        where = self._put(self.settings.archive_container, target, data, "application/octet-stream")
        lease.stop()
        inbox.delete_blob(lease=lease.client)
        return where


def _keep(record: Record) -> dict[str, Any]:
    return {"location": record.location, "raw": record.raw, "data": None if record.raw else record.data}


def _restore(kept: dict[str, Any]) -> Record:
    return Record(kept["location"], kept["data"], raw=kept["raw"])


# The binding: the container comes from the app setting the code reads too, so the two never differ.
TRIGGER_PATH = "%PAYMENTS_INBOX_CONTAINER%/{name}"
CONNECTION = "AzureWebJobsStorage"


def on_blob(container: str, name: str, processor: Any) -> DropResult | None:
    """Entry point for the trigger: a busy file is raised (the host retries); everything else about a
    file is answered with a report, never an exception that would make the host retry it forever."""
    drop: FileDrop = processor()
    if container != drop.settings.inbox_container:
        log.error(
            "ignoring %s/%s: not the inbox container %s", container, name, drop.settings.inbox_container
        )
        return None
    return drop.process(name)
