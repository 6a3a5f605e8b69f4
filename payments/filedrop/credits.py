"""The credits of one bank statement or review file: decided, spooled, posted under their bank keys, and
accounted for per statement (what an operator ties to the bank's totals) and per record.

A credit is posted under the key of its bank transaction (`part_key` for the second and later lines of
a credit paying several invoices). A credit of several lines first fixes its **plan** (every line it
posts) in the relay's own storage; whoever fixes it first wins, and every later reading, review choice
or retry posts that plan, never a new split: its lines posted before are skipped, the missing ones
posted. So a credit is never split two ways, and a line that failed is posted by the next reading.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from decimal import Decimal
from typing import IO, Any

from .. import codec, telemetry
from ..bank import Transaction
from ..bank.identity import identity_of
from ..bank.matching import Match
from ..bank.posting import Credit, part_key, payloads, whole_key
from ..bank.receivables import Customer, Invoice, Receivables
from ..bank.register import BankRegister, Change
from ..bank.review import ReviewWriter
from ..bank.statement import Statement
from ..ledger import Scope
from ..model import CustomerPayment, check
from ..posting import Halt, Outcome, Pipeline
from .plans import Plans
from .registering import SKIPPED, Registering
from .report import SPOOL_MEMORY, Report, outcome_detail
from .tally import Summary, Tally

log = logging.getLogger("payments.filedrop")

CHUNK = 500  # credits handed to the pipeline at a time


def credit_of(tx: Transaction, statement: Statement | None = None) -> Credit:
    """The facts of a bank transaction that posting and review need, with its identity (`statement`: the
    one it is booked in, whose account and format the identity takes)."""
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
        tx.problem,
        identity_of(tx, statement).to_json() if statement is not None else None,
    )


class CreditFlow(Registering):
    """Spools the payments decided for one file's credits, posts them, and reports each one."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Any,
        scope: Scope,
        report: Report,
        review: ReviewWriter,
        book: Receivables,
        plans: Plans,
        register: BankRegister | None = None,
        reading: str = "",
    ):
        self.pipeline = pipeline
        self.settings = settings
        self.scope = scope
        self.report = report
        self.review = review
        self.book = book
        self.plans = plans
        self.register = register
        self.reading = reading  # the file being read and when: what the register records a credit came from
        # Credits new to the register: where to register them once decided, and whether the operator chose
        # (then a match the register is unsure of does not hold them back).
        self._slots: dict[str, tuple[int, bool]] = {}
        self._reserved: dict[str, int] = {}  # facts -> the next slot free for this reading's credits
        self._marks: list[Change] = []
        self.spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.summaries: dict[int, Summary] = {}
        self.target_form = replace(pipeline.rules, amount_sign="negative")
        self.posting = False  # set once the first payment is handed to the pipeline

    def summary(self, index: int, statement: Statement | None) -> Summary:
        found = self.summaries.get(index)
        if found is None:
            found = self.summaries[index] = Summary(statement)
        return found

    # -- deciding ------------------------------------------------------------------------------------

    def to_review(
        self, index: int, credit: Credit, account: str, reason: str, match: Match | None = None
    ) -> None:
        """Ask the operator about a credit, unless it was decided before: a credit with a fixed plan is
        posted by that plan (lines that failed then are posted now), one the ledger knows is reported
        from the ledger; nothing is asked twice."""
        summary = self.summaries[index]
        if credit.key in self.plans.known:
            self._decided(index, credit, self.plans.get(credit.key))
            return
        known = self._known(credit.key)
        if known is not None:
            outcome, detail = known
            (summary.posted_before if outcome == "skipped" else summary.failed).add(credit.amount)
            self.report.add(credit.location, outcome, None, key=credit.key, amount=credit.amount, **detail)
            self._told(outcome, credit)
            return
        summary.review.add(credit.amount)
        self.review.add(credit, account, reason, match)
        detail2: dict[str, Any] = {"key": credit.key, "amount": credit.amount, "currency": credit.currency}
        self.report.add(credit.location, "review", None, reason=reason, **detail2)
        telemetry.review_rows()
        self._told("review", credit)

    def _told(self, outcome: str, credit: Credit) -> None:
        """An outcome decided here rather than by posting (which counts its own): telemetry."""
        telemetry.payment_outcome(
            outcome,
            target=self.settings.target,
            key=credit.key,
            company=self.scope.company_id,
            journal=self.scope.journal_id,
            location=credit.location,
        )

    def post(
        self, index: int, credit: Credit, customer: Customer, invoices: tuple[Invoice, ...], why: str
    ) -> str | None:
        """Spool the payments for a credit, and take what they apply from the invoices (later credits of
        the file see only the rest); an error message when they cannot be posted as they are."""
        if credit.amount <= 0:
            return "the bank gave no amount for this credit"
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
        plan = {
            "why": why,
            "customer": customer.number,
            "invoices": [i.number for i in invoices],
            "payloads": made,
        }
        if len(made) > 1 or credit.key in self.plans.known:
            plan = self.plans.fix(credit.key, plan)
        for number, payload in zip(plan["invoices"], plan["payloads"], strict=False):
            if number in self.book.invoices:
                self.book.apply(self.book.invoices[number], -Decimal(payload["amount"]))
        self._decided(index, credit, plan)
        return None

    def repost_part(
        self, index: int, part: Credit, customer: Customer, invoice: Invoice | None
    ) -> str | None:
        """Decide one refused line of a credit's fixed plan again: the operator's invoice (or the customer's
        account) replaces the line in the plan, the other lines stay as they are, and the plan is posted
        (its lines posted before are skipped, the refusal is forgotten and the new line sent). An error
        message when it cannot be done as chosen."""
        whole = whole_key(part.key, part.part)
        if whole not in self.plans.known:
            return "this credit has no fixed plan any more: choose for the whole credit"
        plan, etag = self.plans.read(whole)
        if part.part > len(plan["payloads"]):
            return f"the credit's plan has no part {part.part}"
        if invoice is not None and self.book.left[invoice.number] < part.amount:
            return (
                f"{invoice.number} waits for {self.book.left[invoice.number]}, this part is {part.amount}: "
                "choose an invoice that takes it whole, or 'account <customer number>'"
            )
        payload = {
            k: v
            for k, v in plan["payloads"][part.part - 1].items()
            if k not in ("customerNumber", "appliesToInvoiceId", "appliesToInvoiceNumber")
        }
        payload["customerNumber"] = customer.number
        if invoice is not None:
            if invoice.id:
                payload["appliesToInvoiceId"] = invoice.id
            payload["appliesToInvoiceNumber"] = invoice.number
        checked = check(payload, self.target_form)
        if checked.payment is None:
            said = "; ".join(f"{e.pointer.lstrip('/')} {e.detail}" for e in checked.errors)
            return f"cannot be posted so: {said}"
        plan["payloads"][part.part - 1] = payload
        invoices = list(plan["invoices"]) + [""] * (len(plan["payloads"]) - len(plan["invoices"]))
        invoices[part.part - 1] = invoice.number if invoice is not None else ""
        plan["invoices"] = invoices
        chosen = invoice.number if invoice is not None else f"account {customer.number}"
        plan["why"] = f"{plan['why']}; part {part.part}: operator's choice {chosen}"
        if not self.plans.change(whole, plan, etag):
            return "the credit's plan was changed meanwhile (another review file): drop this one again"
        if invoice is not None:
            self.book.apply(invoice, part.amount)
        total = -sum((Decimal(p["amount"]) for p in plan["payloads"]), Decimal(0))
        location = part.location.rsplit(", part ", 1)[0]
        self._spool(index, replace(part, key=whole, part=0, amount=total, location=location), plan)
        return None

    def skip(self, index: int, credit: Credit) -> None:
        """The operator chose to post nothing for this credit: fixed as its plan, so no later reading
        asks again (unless a plan to post was fixed first: then that one is posted)."""
        registered = self._registered(index, credit, "skipped")
        if registered is None:
            return
        nothing = {"why": SKIPPED, "customer": "", "invoices": [], "payloads": []}
        plan = self.plans.fix(registered.key, nothing)
        if not plan["payloads"]:
            self._mark(registered, "skipped")
            self._marked()
        self._decided(index, registered, plan)

    def _decided(self, index: int, credit: Credit, plan: dict[str, Any]) -> None:
        """A credit whose plan was fixed: posted as planned, or skipped as the operator chose."""
        if plan["payloads"]:
            self._spool(index, credit, plan)
            return
        self.summaries[index].skipped.setdefault(SKIPPED, Tally()).add(credit.amount)
        self.report.add(
            credit.location, "skipped", None, key=credit.key, amount=credit.amount, reason=SKIPPED
        )
        self._told("skipped", credit)

    def _spool(self, index: int, credit: Credit, plan: dict[str, Any]) -> None:
        """Keep a decided credit for posting; one new to the register is registered just before
        (`_register_chunk`), with its slot and whether the operator chose it."""
        item: dict[str, Any] = {"summary": index, "credit": credit.to_json(), **plan}
        if credit.key in self._slots:
            item["new"] = list(self._slots.pop(credit.key))
        self.spool.write(codec.dumpb(item) + b"\n")

    # -- posting -------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Post everything spooled, a chunk of credits at a time."""
        self.spool.seek(0)
        halt = Halt()
        while True:
            chunk = [codec.loads(line) for _, line in zip(range(CHUNK), self.spool, strict=False)]
            if not chunk:
                return
            chunk = self._register_chunk(chunk)
            if not chunk:
                continue
            parts = [(item, n) for item in chunk for n in range(1, len(item["payloads"]) + 1)]
            self.posting = True
            outcomes = self._send(parts, halt)
            # A line the target refused before, decided anew (a review choice, a corrected customer):
            # the refusal created nothing, so it is forgotten and the line sent once more.
            again = [
                i
                for i, (o, (item, n)) in enumerate(zip(outcomes, parts, strict=True))
                if self._refused(o, item, n)
            ]
            if again:
                for i, outcome in zip(again, self._send([parts[i] for i in again], halt), strict=True):
                    outcomes[i] = outcome
            self._tell(parts, outcomes)
            done = iter(outcomes)
            for item in chunk:
                self._account(item, [next(done) for _ in item["payloads"]])
            self._marked()

    def _refused(self, outcome: Outcome, item: dict[str, Any], n: int) -> bool:
        """True when this line met an earlier refusal of its key (replayed, or under other details),
        which has now been forgotten."""
        replayed = outcome.kind == "rejected" and outcome.note == "replayed from the ledger"
        if not (replayed or outcome.kind == "conflict") or self.pipeline.ledger is None:
            return False
        return self.pipeline.ledger.forget_rejected(self.scope, part_key(item["credit"]["key"], n))

    def _payments(self, parts: list[tuple[dict[str, Any], int]]) -> list[CustomerPayment]:
        payments = []
        for item, n in parts:
            payment = check(item["payloads"][n - 1], self.target_form).payment
            assert payment is not None  # checked when it was spooled
            payments.append(payment)
        return payments

    def _send(self, parts: list[tuple[dict[str, Any], int]], halt: Halt) -> list[Outcome]:
        """Post these lines; their outcomes are told once, after any line sent again (`_tell`)."""
        keys: list[str | None] = [part_key(item["credit"]["key"], n) for item, n in parts]
        scope = self.scope
        return self.pipeline.post_all(
            scope.company_id, scope.journal_id, self._payments(parts), keys=keys, halt=halt, tell=False
        )

    def _tell(self, parts: list[tuple[dict[str, Any], int]], outcomes: list[Outcome]) -> None:
        self.pipeline.tell(
            self.scope.company_id,
            self.scope.journal_id,
            self._payments(parts),
            [part_key(item["credit"]["key"], n) for item, n in parts],
            outcomes,
            [item["credit"]["location"] for item, _ in parts],
        )

    def _account(self, item: dict[str, Any], parts: list[Outcome]) -> None:
        """Report one credit's lines and count it once in its statement's summary."""
        credit = Credit.from_json(item["credit"])
        summary = self.summaries[item["summary"]]
        kinds = []
        for n, outcome in enumerate(parts, start=1):
            kind, detail = outcome.kind, outcome_detail(outcome)
            if kind == "conflict":  # its key holds other details (an earlier reading or review choice)
                kind, detail = self._known(part_key(credit.key, n)) or ("in-flight", {})
                detail["note"] = (
                    f"{detail.get('note', 'being decided')}; with other details: not posted again"
                )
            kinds.append(kind)
            if kind == "rejected":
                detail["note"] = (
                    "in the review file: choose another invoice or 'account <customer number>' for "
                    + ("it" if len(parts) == 1 else "this part alone; the other parts stay as they are")
                )
            payload = item["payloads"][n - 1]
            self.report.add(
                credit.location if len(parts) == 1 else f"{credit.location}, part {n}",
                kind,
                None,
                key=part_key(credit.key, n),
                amount=-Decimal(payload["amount"]),
                customerNumber=payload.get("customerNumber"),
                invoice=payload.get("appliesToInvoiceNumber"),
                reason=item["why"],
                **detail,
            )
        if set(kinds) <= {"created", "skipped"}:
            ids = [str((o.created or {}).get("id") or "") for o in parts]
            self._mark(credit, "posted", [i for i in ids if i])
        if set(kinds) == {"skipped"}:
            summary.posted_before.add(credit.amount)
        elif set(kinds) <= {"created", "skipped"}:
            (summary.applied if item["invoices"] else summary.on_account).add(credit.amount)
        else:
            summary.failed.add(credit.amount)
            for n, outcome in enumerate(parts, start=1):
                if outcome.kind != "rejected":
                    continue
                message = outcome.error.message if outcome.error is not None else "rejected"
                if len(parts) == 1:
                    self.review.add(credit, "", f"Business Central refused it: {message}", None)
                    continue
                payload = item["payloads"][n - 1]
                line = replace(
                    credit,
                    key=part_key(credit.key, n),
                    location=f"{credit.location}, part {n}",
                    amount=-Decimal(payload["amount"]),
                    part=n,
                )
                target = payload.get("appliesToInvoiceNumber") or f"account {payload.get('customerNumber')}"
                self.review.add(
                    line,
                    "",
                    f"Business Central refused part {n} of this credit ({target}): {message}. Choose an "
                    "invoice or 'account <customer number>' for this part alone; the other parts stay as "
                    "they are",
                    None,
                )
