"""Bank statements and review files dropped into the inbox: credits matched to invoices and posted,
everything else reported with its reason, and a review file for what the relay would not decide.

A statement is read once, streamed (camt) or whole (MT940, BAI2, which are small): every transaction
is classified (debits, reversals, pending and information entries are skipped with the reason),
every credit matched against one picture of the books, and the payments to post spooled. They are
then posted through the shared pipeline under keys from the bank transaction, so the same credit,
read again from the same statement or from an overlapping one, is posted once. A credit paying
several invoices is posted as one payment per invoice: its first part first, the others only once the
first is known created (or posted before in the same way), so two readings that split differently
can never both post.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import IO, Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient

from .. import codec
from ..bank import Reader, Transaction, reader_for
from ..bank.matching import Match, Matcher
from ..bank.posting import Credit, part_key, payloads
from ..bank.receivables import PAYERS_BLOB, Customer, Invoice, Receivables, load
from ..bank.review import MAX_REVIEW_BYTES, Choice, ReviewWriter, load_record, parse_choice, read_rows
from ..bank.statement import Statement, mask
from ..errors import InputError, TargetError
from ..ledger import Scope
from ..model import check
from ..posting import Halt, Outcome
from .report import SPOOL_MEMORY, Report, outcome_detail

log = logging.getLogger("payments.filedrop")

CHUNK = 500  # credits handed to the pipeline at a time
FAILED = ("rejected", "ambiguous", "unavailable", "denied", "in-flight", "invalid", "conflict")


@dataclass(slots=True)
class Tally:
    """Count and sum of one kind of transaction in one statement."""

    count: int = 0
    sum: Decimal = Decimal(0)

    def add(self, amount: Decimal | None) -> None:
        self.count += 1
        self.sum += amount or 0

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum}


@dataclass(slots=True)
class Summary:
    """What one statement held and what became of it, for the operator to tie to the bank's totals."""

    statement: Statement | None
    transactions: int = 0
    credits: Tally = field(default_factory=Tally)
    applied: Tally = field(default_factory=Tally)
    on_account: Tally = field(default_factory=Tally)
    posted_before: Tally = field(default_factory=Tally)
    review: Tally = field(default_factory=Tally)
    failed: Tally = field(default_factory=Tally)
    skipped: dict[str, Tally] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        s = self.statement
        head: dict[str, Any] = {}
        if s is not None:
            head = {
                "id": s.id,
                "format": s.format,
                "account": mask(s.account) if s.account else "",
                "currency": s.currency,
                "entries": s.entries,
            }
            if s.checks:
                head["checks"] = dict(s.checks)
        return {
            **head,
            "transactions": self.transactions,
            "credits": self.credits.as_json(),
            "applied": self.applied.as_json(),
            "onAccount": self.on_account.as_json(),
            "postedBefore": self.posted_before.as_json(),
            "review": self.review.as_json(),
            "failed": self.failed.as_json(),
            "skipped": {k: v.as_json() for k, v in sorted(self.skipped.items())},
        }


@dataclass(slots=True)
class Result:
    """What handling a statement or a review file adds to the file's report."""

    summaries: list[Summary]
    review_csv: str | None = None
    review_record: str | None = None
    notes: list[str] = field(default_factory=list)

    def head(self) -> dict[str, Any]:
        """What the report's head says of the statements and the review file."""
        out: dict[str, Any] = {"statements": [s.as_json() for s in self.summaries]}
        if self.review_csv is not None:
            out["reviewFile"] = self.review_csv
        if self.notes:
            out["notes"] = self.notes
        return out


class CreditFlow:
    """Matches, spools and posts the credits of one file, and reports each one."""

    def __init__(
        self, drop: Any, company: str, journal: str, report: Report, review: ReviewWriter, book: Receivables
    ):
        self.drop = drop
        self.book = book
        self.settings = drop.settings
        self.pipeline = drop.pipeline
        self.company, self.journal = company, journal
        self.report = report
        self.review = review
        self.spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.summaries: dict[int, Summary] = {}
        self.target_form = replace(self.pipeline.rules, amount_sign="negative")

    def summary(self, index: int, statement: Statement | None) -> Summary:
        found = self.summaries.get(index)
        if found is None:
            found = self.summaries[index] = Summary(statement)
        return found

    # -- deciding ------------------------------------------------------------------------------------

    def to_review(
        self, summary: Summary, credit: Credit, account: str, reason: str, match: Match | None
    ) -> None:
        """Send a credit to review unless the ledger knows it already (posted from an earlier reading, or
        from a review choice): then it is reported as posted before, and nothing is asked twice."""
        known = self._known(credit.key)
        if known is not None:
            summary.posted_before.add(credit.amount)
            self.report.add(credit.location, "skipped", None, key=credit.key, amount=credit.amount, **known)
            return
        summary.review.add(credit.amount)
        self.review.add(credit, account, reason, match)
        detail: dict[str, Any] = {"key": credit.key, "amount": credit.amount, "currency": credit.currency}
        self.report.add(credit.location, "review", None, reason=reason, **detail)

    def _known(self, key: str) -> dict[str, Any] | None:
        ledger = self.pipeline.ledger
        if ledger is None:
            return None
        entry = ledger.store.get(Scope(self.company, self.journal), key)
        if entry is None or entry.state == "rejected":
            return None
        if entry.state == "posted":
            return {"id": entry.target_id, "note": "posted before (an earlier reading or review choice)"}
        return {"note": f"handled before and {entry.state}: see the ledger (python -m payments ledger list)"}

    def post(
        self, summary_index: int, credit: Credit, customer: Customer, invoices: tuple[Invoice, ...], why: str
    ) -> str | None:
        """Spool the payments for a credit, and take what they apply from the invoices (later credits of
        the file see only the rest); an error message when they cannot be posted as they are."""
        left = tuple(self.book.left[i.number] for i in invoices)
        made = payloads(
            credit, customer, invoices, left, document_numbers=self.settings.bank_document_numbers
        )
        if any(p["amount"] >= 0 for p in made):
            return "the credit is less than the other invoices' remaining amounts: choose fewer invoices"
        for payload in made:
            checked = check(payload, self.target_form)
            if checked.payment is None:
                return "cannot be posted as read: " + "; ".join(
                    f"{e.pointer.lstrip('/')} {e.detail}" for e in checked.errors
                )
        for invoice, payload in zip(invoices, made, strict=False):
            self.book.apply(invoice, -payload["amount"])
        line = {
            "summary": summary_index,
            "credit": credit.to_json(),
            "kind": "applied" if invoices else "on account",
            "why": why,
            "invoices": [i.number for i in invoices],
            "customer": customer.number,
            "payloads": made,
        }
        self.spool.write(codec.dumpb(line) + b"\n")
        return None

    # -- posting -------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Post everything spooled, a chunk of credits at a time: first parts, then the rest."""
        self.spool.seek(0)
        halt = Halt()
        while True:
            chunk = [codec.loads(line) for _, line in zip(range(CHUNK), self.spool, strict=False)]
            if not chunk:
                return
            firsts = self._send([(item, 1) for item in chunk], halt)
            rest = [
                (item, n)
                for item, outcome in zip(chunk, firsts, strict=True)
                if outcome.kind in ("created", "skipped")
                for n in range(2, len(item["payloads"]) + 1)
            ]
            later = iter(self._send(rest, halt)) if rest else iter(())
            for item, outcome in zip(chunk, firsts, strict=True):
                parts = [outcome]
                if outcome.kind in ("created", "skipped"):
                    parts += [next(later) for _ in range(len(item["payloads"]) - 1)]
                self._account(item, parts)

    def _send(self, parts: list[tuple[dict[str, Any], int]], halt: Halt) -> list[Outcome]:
        payments = []
        for item, n in parts:
            payment = check(item["payloads"][n - 1], self.target_form).payment
            assert payment is not None  # checked when it was spooled
            payments.append(payment)
        keys: list[str | None] = [part_key(item["credit"]["key"], n) for item, n in parts]
        return self.pipeline.post_all(self.company, self.journal, payments, keys=keys, halt=halt)

    def _account(self, item: dict[str, Any], parts: list[Outcome]) -> None:
        """Report one credit's parts and count it once in its statement's summary."""
        credit = Credit.from_json(item["credit"])
        summary = self.summaries[item["summary"]]
        first = parts[0]
        for n, outcome in enumerate(parts, start=1):
            where = credit.location if len(item["payloads"]) == 1 else f"{credit.location}, part {n}"
            detail = outcome_detail(outcome)
            if outcome.kind == "conflict":
                detail = {"note": "posted before with other details (an earlier reading or review choice)"}
            payload = item["payloads"][n - 1]
            self.report.add(
                where,
                "skipped" if outcome.kind == "conflict" else outcome.kind,
                None,
                key=part_key(credit.key, n),
                amount=-Decimal(payload["amount"]),
                customerNumber=item["customer"],
                invoice=payload.get("appliesToInvoiceNumber"),
                reason=item["why"],
                **detail,
            )
        kinds = {o.kind for o in parts}
        if first.kind == "skipped" or first.kind == "conflict":
            summary.posted_before.add(credit.amount)
        elif kinds == {"created"}:
            (summary.applied if item["invoices"] else summary.on_account).add(credit.amount)
        else:
            summary.failed.add(credit.amount)
            if first.kind == "rejected":
                message = first.error.message if first.error is not None else "rejected"
                self.review.add(credit, "", f"Business Central refused it: {message}", None)


def _credit(tx: Transaction) -> Credit:
    day = tx.booking_date or tx.value_date
    return Credit(
        tx.key,
        tx.location,
        tx.amount if tx.amount is not None else Decimal(0),
        tx.currency,
        day.isoformat() if day else "",
        tx.bank_reference or tx.entry_reference,
        tx.end_to_end,
        tx.payer_name,
        tx.text,
    )


def _books(drop: Any, company: str, journal: str, with_payers: bool) -> Receivables:
    payers = _payers(drop, company) if with_payers else None
    try:
        return load(drop.pipeline.client, company, journal, payers)
    except TargetError as exc:
        raise InputError(
            f"the customers and invoices could not be read from Business Central ({exc.message}); nothing "
            "was posted: drop the file again once it answers"
        ) from None


def _payers(drop: Any, company: str) -> bytes | None:
    container = drop.settings.config_container
    for name in (f"{company}/{PAYERS_BLOB}", PAYERS_BLOB):
        try:
            return drop.service.get_blob_client(container, name).download_blob(max_concurrency=1).readall()
        except ResourceNotFoundError:
            continue
    return None


def process_statement(
    drop: Any, stream: IO[bytes], kind: str, name: str, company: str, journal: str, stamp: str, report: Report
) -> Result:
    """Read one bank statement file and post its credits (see the module docstring)."""
    book = _books(drop, company, journal, with_payers=True)
    settings = drop.settings
    matcher = Matcher(book, tolerance=settings.bank_amount_tolerance, on_account=settings.bank_on_account)
    review = ReviewWriter(f"{name}.{stamp}.review.json", company, journal, name)
    flow = CreditFlow(drop, company, journal, report, review, book)
    reader: Reader = reader_for(kind, stream, name)
    count = 0
    for tx in _bounded(reader.transactions(), settings.max_file_records):
        count += 1
        statement = reader.statements[tx.statement] if tx.statement < len(reader.statements) else None
        summary = flow.summary(tx.statement, statement)
        summary.transactions += 1
        skip = tx.skip_reason
        if skip is not None:
            summary.skipped.setdefault(skip, Tally()).add(tx.amount)
            report.add(
                tx.location, "skipped", None, key=tx.key, amount=tx.amount, currency=tx.currency, reason=skip
            )
            continue
        summary.credits.add(tx.amount)
        credit = _credit(tx)
        match = matcher.match(tx)
        if match.decision == "review" or match.customer is None or match.applied is None:
            flow.to_review(summary, credit, tx.payer_account, match.reason, match)
            continue
        problem = flow.post(tx.statement, credit, match.customer, match.applied.invoices, match.reason)
        if problem is not None:
            flow.to_review(summary, credit, tx.payer_account, problem, match)
    for index, statement in enumerate(reader.statements):  # a day without movements is a statement too
        flow.summary(index, statement)
    flow.flush()
    return _finish(drop, flow, review, name, stamp, book.notes)


def _bounded(items: Iterator[Transaction], limit: int) -> Iterator[Transaction]:
    for n, item in enumerate(items, start=1):
        if n > limit:
            raise InputError(f"the statement holds more than {limit} transactions: split it")
        yield item


def process_review(
    drop: Any, data: bytes, name: str, company: str, journal: str, stamp: str, report: Report
) -> Result:
    """Post the choices of a review file dropped back; what is still undecided goes to a new one."""
    if len(data) > MAX_REVIEW_BYTES:
        raise InputError(f"the review file is over {MAX_REVIEW_BYTES // (1024 * 1024)} MiB")
    rows = list(read_rows(data))
    if not rows:
        raise InputError("the review file holds no rows")
    records: dict[str, dict[str, Any]] = {}
    for record_name in {r.record for r in rows}:
        records[record_name] = _record(drop, record_name, company, journal)
    book = _books(drop, company, journal, with_payers=False)
    review = ReviewWriter(f"{name}.{stamp}.review.json", company, journal, name)
    flow = CreditFlow(drop, company, journal, report, review, book)
    summary = flow.summary(0, None)
    for row in rows:
        summary.transactions += 1
        facts = records[row.record]["credits"].get(row.key)
        if facts is None:
            summary.failed.add(None)
            report.add(
                row.location, "invalid", None, key=row.key, reason="no such credit in the review's record"
            )
            continue
        credit = replace(Credit.from_json(facts), location=f"{row.location} ({facts['location']})")
        summary.credits.add(credit.amount)
        try:
            choice = parse_choice(row.choice, book)
        except InputError as exc:
            flow.to_review(summary, credit, "", f"the choice {row.choice!r} cannot be used: {exc}", None)
            continue
        if choice.action == "none":
            flow.to_review(summary, credit, "", "no choice made yet", None)
        elif choice.action == "skip":
            summary.skipped.setdefault("operator chose skip", Tally()).add(credit.amount)
            report.add(
                credit.location, "skipped", None, key=credit.key, amount=credit.amount, reason="skip chosen"
            )
        else:
            problem = _post_choice(flow, credit, choice)
            if problem is not None:
                flow.to_review(summary, credit, "", problem, None)
    flow.flush()
    return _finish(drop, flow, review, name, stamp, [])


def _post_choice(flow: CreditFlow, credit: Credit, choice: Choice) -> str | None:
    assert choice.customer is not None
    invoices = choice.invoices
    if len(invoices) > 1:
        total = sum((flow.book.left[i.number] for i in invoices), Decimal(0))
        if total != credit.amount:
            return (
                f"the chosen invoices' remaining amounts sum to {total}, the credit is {credit.amount}: "
                "choose invoices that sum to it, or one invoice (which then takes the whole credit)"
            )
    why = "operator's choice: " + (
        " ".join(i.number for i in invoices) or f"account {choice.customer.number}"
    )
    return flow.post(0, credit, choice.customer, invoices, why)


def _record(drop: Any, record_name: str, company: str, journal: str) -> dict[str, Any]:
    if not record_name.endswith(".review.json") or ".." in record_name.split("/"):
        raise InputError(f"the reviewFile {record_name[:200]!r} is not a review record the relay wrote")
    try:
        blob: BlobClient = drop.service.get_blob_client(drop.settings.reports_container, record_name)
        data = blob.download_blob(max_concurrency=1).readall()
    except ResourceNotFoundError:
        raise InputError(
            f"the review record {record_name[:200]!r} is not in the reports container: drop back a "
            "review file the relay wrote (its record is kept beside it)"
        ) from None
    record = load_record(data)
    if (record.get("companyId"), record.get("journalId")) != (company, journal):
        raise InputError(
            f"this review belongs to company {record.get('companyId')} journal "
            f"{record.get('journalId')}: drop it under that folder"
        )
    return record


def _finish(
    drop: Any, flow: CreditFlow, review: ReviewWriter, name: str, stamp: str, notes: list[str]
) -> Result:
    result = Result([flow.summaries[k] for k in sorted(flow.summaries)], notes=list(notes))
    if review.count:
        containers = drop.containers
        reports = drop.settings.reports_container
        result.review_record = containers.put(
            reports, review.record_name, review.record(), "application/json"
        )
        result.review_csv = containers.put(
            reports, f"{name}.{stamp}.review.csv", review.csv(), "text/csv; charset=utf-8"
        )
    return result
