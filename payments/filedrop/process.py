"""File drops: a payment file in the inbox container becomes posted payments, a report and a
failed-records CSV, and the file leaves the inbox for the archive's processed/ or failed/ area.

The file is downloaded once and read in two passes: the first streams and validates every record
into a local spool (so a file that cannot be read as a whole, or is over the limits, posts nothing),
the second posts the spooled payments through the shared pipeline in chunks. Memory stays bounded
by the chunk size, not the file size.

While a worker holds a file it holds a renewable lease on the inbox blob: a second delivery of
the same upload (Event Grid and the blob extension deliver at least once) finds the lease and is
retried by the host later, by which time the file has left the inbox and the retry does nothing.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient

from .. import bank, codec, telemetry
from ..bank.review import MAX_REVIEW_BYTES, is_review
from ..errors import FileBusy, InputError, PartlyPosted
from ..model import as_dicts, check
from ..posting import Halt, Pipeline
from ..readers import NO_RECORDS, Record, check_record, read_stream
from ..settings import Settings
from . import blobs, statements
from .report import SPOOL_MEMORY, Report, outcome_detail

log = logging.getLogger("payments.filedrop")

POST_CHUNK = 100  # least payments handed to the pipeline at a time: bounds memory, not throughput
NEGATED_NOTE = (
    "written as money received (PAYMENTS_AMOUNT_SIGN=positive) and sent negated: Business Central "
    "records a customer payment as a credit"
)


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


class FileDrop:
    """Processes one inbox blob end to end; safe to call again for the same upload."""

    def __init__(self, service: BlobServiceClient, settings: Settings, pipeline: Pipeline):
        self.service = service
        self.settings = settings
        self.pipeline = pipeline
        self.containers = blobs.Containers(
            service, (settings.reports_container, settings.archive_container, settings.batches_container)
        )

    def process(self, name: str) -> DropResult:
        settings = self.settings
        inbox = self.service.get_blob_client(settings.inbox_container, name)
        lease = blobs.Lease(inbox, settings.file_lease_seconds)
        try:
            lease.acquire()
        except ResourceNotFoundError:
            log.info("file %s is no longer in the inbox: already processed (repeat delivery)", name)
            return DropResult("gone")
        except HttpResponseError as exc:
            if exc.error_code in ("LeaseAlreadyPresent", "LeaseIdMissing"):
                raise FileBusy(f"{name} is being processed by another worker") from None
            raise
        entry, source = telemetry.ENTRY_POINT.set("file"), telemetry.SOURCE.set(name)
        try:
            self.containers.ensure()
            return self._process_leased(inbox, lease, name)
        finally:
            lease.stop()
            telemetry.ENTRY_POINT.reset(entry)
            telemetry.SOURCE.reset(source)

    def _process_leased(self, inbox: BlobClient, lease: blobs.Lease, name: str) -> DropResult:
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
        if settings.amount_sign == "positive":
            head["amounts"] = NEGATED_NOTE
        report = Report()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        file_error: str | None = None
        company = journal = None
        kind: str | None = None
        bank_result: statements.Result | None = None
        partly = False
        try:
            company, journal, _ = target_of(name, settings)
            head.update(companyId=company, journalId=journal)
            if props.size > settings.max_file_bytes:
                raise InputError(
                    f"the file is {props.size} bytes, over the limit of {settings.max_file_bytes}: split it"
                )
            stream = blobs.read_stream(inbox, 1 << 16)
            head_bytes = stream.peek(bank.HEAD_BYTES)[: bank.HEAD_BYTES]
            kind = bank.kind_of(head_bytes)
            if kind is not None:
                telemetry.ENTRY_POINT.set("statement")
                bank_result = statements.process_statement(
                    self, stream, kind, name, company, journal, stamp, report
                )
            elif is_review(head_bytes):
                telemetry.ENTRY_POINT.set("review")
                data = stream.read(MAX_REVIEW_BYTES + 1)
                bank_result = statements.process_review(self, data, name, company, journal, stamp, report)
            else:
                self._validate(stream, name, report, spool)
        except PartlyPosted as exc:
            file_error, partly = str(exc), True
        except InputError as exc:
            file_error = str(exc)
            if kind is not None:  # a statement read partly before it broke: none of it is reported
                report = Report()
        except AzureError:
            raise  # storage trouble: the host delivers the file again later
        except Exception:  # a bad file is reported, never a crash the host would retry five times
            log.exception("file %s could not be read", name)
            file_error = "the file could not be read (an unexpected error, logged under this file's name)"
        if file_error is None and company and journal and bank_result is None:
            self._post(company, journal, spool, report)
        if bank_result is not None:
            head.update(bank_result.head())
        settled = ("created", "skipped", "review")
        failed = file_error is not None or any(k not in settled for k in report.totals)
        status = "failed" if failed else "processed"
        head["status"] = status
        if file_error is not None:
            head["error"] = file_error if partly else file_error + "; nothing in this file was posted"
        report_name = f"{name}.{stamp}.report.json"
        result = DropResult(status, error=file_error)
        with report.document(head) as doc:
            result.report = self.containers.put(
                settings.reports_container, report_name, doc, "application/json"
            )
        failed_csv = report.failed_csv()
        if failed_csv is not None:
            result.failed_csv = self.containers.put(
                settings.reports_container,
                f"{name}.{stamp}.failed.csv",
                failed_csv,
                "text/csv; charset=utf-8",
            )
        result.totals = {"records": sum(report.totals.values()), **report.totals}
        area = "processed" if status == "processed" else "failed"
        result.archived = self.containers.archive(
            inbox, lease, settings.archive_container, f"{area}/{name}.{stamp}"
        )
        log.info("file %s %s: %s", name, status, dict(result.totals))
        return result

    def _validate(self, stream: IO[bytes], name: str, report: Report, spool: IO[bytes]) -> None:
        """First pass: read and check every record; spool the valid payments, report the rest."""
        limit = self.settings.max_file_records
        rules = self.pipeline.rules
        text_rules = replace(rules, from_text=True)
        count = 0
        for record in read_stream(stream, name):  # type: ignore[arg-type]
            count += 1
            if count > limit:
                raise InputError(f"the file holds more than {limit} records: split it")
            checked = check_record(record, rules, text_rules)
            if checked.payment is None:
                report.add(record.location, "invalid", record, errors=as_dicts(checked.errors))
                telemetry.payment_outcome("invalid", target=self.settings.target, location=record.location)
                continue
            line = {
                "location": record.location,
                "payload": checked.payment.payload(),
                "record": _keep(record),
            }
            if checked.ignored:
                line["ignored"] = checked.ignored
            spool.write(codec.dumpb(line) + b"\n")
        if count == 0:
            raise InputError(NO_RECORDS)
        telemetry.received(count, self.settings.target)

    def _post(self, company: str, journal: str, spool: IO[bytes], report: Report) -> None:
        """Second pass: post the spooled payments in chunks through the shared pipeline; once the
        target is down, the rest of the file is reported as not attempted (one halt for the file)."""
        spool.seek(0)
        settings = self.settings
        # Enough payments per call to keep every allowed request in flight busy.
        chunk_size = max(POST_CHUNK, settings.batch_size * settings.max_concurrency * 2)
        halt = Halt()
        # The spool holds payloads as they go to the target (a credit: negative), whatever the setting.
        target_form = replace(self.pipeline.rules, amount_sign="negative")
        while True:
            chunk = [codec.loads(line) for _, line in zip(range(chunk_size), spool, strict=False)]
            if not chunk:
                return
            # The payloads passed validation in the first pass; checking again restores the model.
            payments = [check(item["payload"], target_form).payment for item in chunk]
            outcomes = self.pipeline.post_all(
                company,
                journal,
                [p for p in payments if p is not None],
                halt=halt,
                labels=[item["location"] for item in chunk],
            )
            for item, outcome in zip(chunk, outcomes, strict=True):
                report.add(
                    item["location"], outcome.kind, _restore(item["record"]), **outcome_detail(outcome)
                )


def _keep(record: Record) -> dict[str, Any]:
    return {"location": record.location, "raw": record.raw, "data": None if record.raw else record.data}


def _restore(kept: dict[str, Any]) -> Record:
    return Record(kept["location"], kept["data"], raw=kept["raw"])


def on_blob(container: str, name: str, processor: Callable[[], FileDrop]) -> DropResult | None:
    """Entry point for the trigger: a busy file is raised (the host retries); everything else about a
    file is answered with a report, never an exception that would make the host retry it forever."""
    drop = processor()
    if container != drop.settings.inbox_container:
        log.error(
            "ignoring %s/%s: not the inbox container %s", container, name, drop.settings.inbox_container
        )
        return None
    return drop.process(name)
