"""Bank statements and review files dropped into the inbox: credits matched to invoices and posted,
everything else reported with its reason, and a review file for what the relay would not decide.

A statement is read once, streamed (camt) or whole (MT940, BAI2, which are small): every transaction
is classified (debits, reversals, pending and information entries are skipped with the reason),
every credit matched against one picture of the books, and the payments to post spooled; they are
posted only once the whole file has been read (`credits.CreditFlow`), so a file broken midway posts
nothing. A review file's choices are checked as the matcher checks its own decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import IO, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from .. import telemetry
from ..bank import Reader, Transaction, reader_for
from ..bank.matching import Matcher
from ..bank.posting import Credit
from ..bank.receivables import BLOCKS_PAYMENTS, PAYERS_BLOB, Receivables, load
from ..bank.register import BankRegister
from ..bank.review import MAX_REVIEW_BYTES, Choice, ReviewWriter, load_record, parse_choice, read_rows
from ..errors import InputError, PartlyPosted, TargetError
from ..ledger import Scope
from ..storage import table_client
from .credits import CreditFlow, credit_of
from .plans import Plans
from .report import Report
from .tally import Summary, Tally

log = logging.getLogger("payments.filedrop")


@dataclass(slots=True)
class Result:
    """What handling a statement or a review file adds to the file's report."""

    summaries: list[Summary]
    review_csv: str | None = None
    notes: list[str] = field(default_factory=list)

    def head(self) -> dict[str, Any]:
        """What the report's head says of the statements and the review file."""
        out: dict[str, Any] = {"statements": [s.as_json() for s in self.summaries]}
        if self.review_csv is not None:
            out["reviewFile"] = self.review_csv
        if self.notes:
            out["notes"] = self.notes
        return out


def _flow(
    drop: Any, name: str, company: str, journal: str, stamp: str, report: Report, book: Receivables
) -> CreditFlow:
    settings = drop.settings
    review = ReviewWriter(f"{name}.{stamp}.review.json", company, journal, name)
    plans = Plans(drop.service.get_container_client(settings.batches_container), company, journal)
    table = table_client(settings, settings.bank_table)
    register = None
    if table is not None:
        register = BankRegister(table, company, retention=timedelta(days=settings.bank_retention_days))
    scope = Scope(company, journal)
    reading = f"{name}@{stamp}"
    return CreditFlow(drop.pipeline, settings, scope, report, review, book, plans, register, reading)


def process_statement(
    drop: Any, stream: IO[bytes], kind: str, name: str, company: str, journal: str, stamp: str, report: Report
) -> Result:
    """Read one bank statement file and post its credits (see the module docstring)."""
    book = _books(drop, company, journal, with_payers=True)
    settings = drop.settings
    matcher = Matcher(book, tolerance=settings.bank_amount_tolerance, on_account=settings.bank_on_account)
    flow = _flow(drop, name, company, journal, stamp, report, book)
    reader: Reader = reader_for(kind, stream, name)
    for tx in _bounded(reader.transactions(), settings.max_file_records):
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
        claimed = flow.claim(tx.statement, credit_of(tx, statement), tx.payer_account)
        if claimed is None:
            continue  # decided before (in this journal or another) or may have been: reported
        credit = claimed
        match = matcher.match(tx)
        if match.decision == "review" or match.customer is None or match.applied is None:
            flow.to_review(tx.statement, credit, tx.payer_account, match.reason, match)
            continue
        problem = flow.post(tx.statement, credit, match.customer, match.applied.invoices, match.reason)
        if problem is not None:
            flow.to_review(tx.statement, credit, tx.payer_account, problem, match)
    for index, statement in enumerate(reader.statements):  # a day without movements is a statement too
        flow.summary(index, statement)
    telemetry.received(sum(s.credits.count for s in flow.summaries.values()), settings.target)
    _flush(flow, name)
    return _finish(drop, flow, name, stamp, book.notes)


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
    records = {record: _record(drop, record, company, journal) for record in {r.record for r in rows}}
    book = _books(drop, company, journal, with_payers=False)
    flow = _flow(drop, name, company, journal, stamp, report, book)
    summary = flow.summary(0, None)
    telemetry.received(len(rows), drop.settings.target)
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
        if credit.part:  # one refused line of a credit's fixed plan, decided again alone
            _repost_part(flow, credit, row.choice, book)
            continue
        claimed = flow.claim(0, credit, chosen=True)
        if claimed is None:
            continue  # decided since (another reading, another review file): reported as it was
        credit = claimed
        try:
            choice = parse_choice(row.choice, book)
        except InputError as exc:
            flow.to_review(0, credit, "", f"the choice {row.choice!r} cannot be used: {exc}")
            continue
        if choice.action == "none":
            flow.to_review(0, credit, "", "no choice made yet")
        elif choice.action == "skip":
            flow.skip(0, credit)
        else:
            problem = _refusal(credit, choice, book) or _post_choice(flow, credit, choice)
            if problem is not None:
                flow.to_review(0, credit, "", problem)
    _flush(flow, name)
    return _finish(drop, flow, name, stamp, [])


def _repost_part(flow: CreditFlow, part: Credit, text: str, book: Receivables) -> None:
    """The operator's choice for one refused line of a credit's fixed plan: one invoice, or the account
    of a customer; the rest of the plan stays as it was fixed."""
    try:
        choice = parse_choice(text, book)
    except InputError as exc:
        flow.to_review(0, part, "", f"the choice {text!r} cannot be used: {exc}")
        return
    if choice.action == "none":
        flow.to_review(0, part, "", "no choice made yet for this refused part of a credit")
        return
    if choice.action == "skip" or len(choice.invoices) > 1:
        flow.to_review(
            0,
            part,
            "",
            "a refused part of a credit takes one invoice or 'account <customer number>': it cannot be "
            "skipped or split, its other parts are posted",
        )
        return
    invoice = choice.invoices[0] if choice.invoices else None
    problem = _refusal(part, choice, book) or flow.repost_part(0, part, choice.customer, invoice)
    if problem is not None:
        flow.to_review(0, part, "", problem)


def _flush(flow: CreditFlow, name: str) -> None:
    """Post what was decided; an unexpected failure once posting began says so (some may be posted)."""
    try:
        flow.flush()
    except AzureError:
        raise  # storage trouble: the host delivers the file again, and the ledger skips what was posted
    except Exception:
        if not flow.posting:
            raise
        log.exception("file %s stopped while its payments were being posted", name)
        raise PartlyPosted(
            "the file stopped while its payments were being posted (an unexpected error, logged under this "
            "file's name): some may be posted, the rest not; drop it again to post the rest (what was "
            "posted is skipped)"
        ) from None


def _refusal(credit: Credit, choice: Choice, book: Receivables) -> str | None:
    """What no choice can make postable: the checks the matcher makes before it applies a credit."""
    if credit.problem:
        return f"the bank's description of it cannot be trusted ({credit.problem}): post it by hand"
    if not book.currency or (credit.currency and credit.currency.upper() != book.currency):
        return (
            f"the credit is in {credit.currency or 'an unknown currency'}; the journal posts in the "
            f"company's currency {book.currency or '(unknown)'}: enter it by hand with its exchange rate"
        )
    assert choice.customer is not None
    if choice.customer.blocked in BLOCKS_PAYMENTS:
        who = choice.customer
        return f"customer {who.number} is blocked ({who.blocked}): the journal could not post it"
    foreign = [i.number for i in choice.invoices if not book.in_local_currency(i)]
    if foreign:
        return f"{', '.join(foreign)} is not in the company's currency {book.currency}"
    return None


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


def _books(drop: Any, company: str, journal: str, with_payers: bool) -> Receivables:
    payers = _payers(drop, company) if with_payers else None
    try:
        return load(drop.pipeline.client, company, journal, payers, graph=drop.settings.target == "graph")
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


def _record(drop: Any, record_name: str, company: str, journal: str) -> dict[str, Any]:
    if not record_name.endswith(".review.json") or ".." in record_name.split("/"):
        raise InputError(f"the reviewFile {record_name[:200]!r} is not a review record the relay wrote")
    try:
        blob = drop.service.get_blob_client(drop.settings.reports_container, record_name)
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


def _finish(drop: Any, flow: CreditFlow, name: str, stamp: str, notes: list[str]) -> Result:
    result = Result([flow.summaries[k] for k in sorted(flow.summaries)], notes=list(notes))
    review = flow.review
    if review.count:
        containers = drop.containers
        reports = drop.settings.reports_container
        containers.put(reports, review.record_name, review.record(), "application/json")
        result.review_csv = containers.put(
            reports, f"{name}.{stamp}.review.csv", review.csv(), "text/csv; charset=utf-8"
        )
    return result
