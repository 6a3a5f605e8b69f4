"""Cash application: which customer and which open invoice(s) a bank credit pays, with a confidence
and the reasons, graded the way Business Central's payment application rules grade a match (REFERENCE
9): the related party (payer IBAN, name), the document number found in the remittance, the amount.

Written here: no library does this against Business Central's data. The rule it keeps is **never
guess**: a credit is applied automatically only when a document reference names open invoices whose
remaining amounts fit the credit, exactly one such way, and nothing about the payer contradicts it.
Everything else goes on account (only when the customer is certain and a setting allows) or to the
operator's review file, with every candidate and why.
"""

from __future__ import annotations

import difflib
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from .receivables import BLOCKS_PAYMENTS, Customer, Invoice, Receivables, normal_iban
from .references import (
    MIN_REFERENCE,
    compact,
    fold,
    name_key,
    name_words,
    reference_forms,
    rf_valid,
    text_references,
)
from .statement import Transaction

Confidence = Literal["high", "medium", "low"]
Decision = Literal["apply", "account", "review"]

MAX_SUBSET = 10  # referenced invoices tried in combinations for a credit paying several
MAX_LOW = 5  # amount-only candidates listed per credit


@dataclass(slots=True)
class Candidate:
    """One way to apply a credit: invoices of one customer (none: on account), graded."""

    customer: Customer | None
    invoices: tuple[Invoice, ...]
    confidence: Confidence
    reasons: list[str]
    left: tuple[Decimal, ...] = ()  # what each invoice still waits for, when graded

    def describe(self) -> str:
        who = f"customer {self.customer.number} {self.customer.name}".strip() if self.customer else "?"
        what = (
            " + ".join(
                f"{i.number} (remaining {money(v)})" for i, v in zip(self.invoices, self.left, strict=True)
            )
            or "on account"
        )
        return f"{what}, {who}: {self.confidence} — {'; '.join(self.reasons)}"


@dataclass(slots=True)
class Match:
    """What to do with one credit, and why."""

    decision: Decision
    reason: str
    customer: Customer | None = None
    applied: Candidate | None = None  # the candidate applied when decision == "apply"
    candidates: list[Candidate] = field(default_factory=list)


def money(value: Decimal) -> str:
    """An amount as people read it: at least two decimals (only zeros are added: exact)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


class Matcher:
    """Matches credits against one picture of the books (`Receivables`), built once per file."""

    def __init__(self, book: Receivables, *, tolerance: Decimal = Decimal(0), on_account: bool = False):
        self.book = book
        self.tolerance = tolerance
        self.on_account = on_account
        self._by_form: dict[str, list[Invoice]] = defaultdict(list)
        for invoice in book.invoices.values():
            for form in reference_forms(invoice.number):
                self._by_form[form].append(invoice)
            # The customer's own number for it (a PO number): whole, and only when it cannot be mistaken
            # for a customer number or a date (a letter in it, or six characters or more).
            ext = compact(fold(invoice.external_document_number))
            if len(ext) >= MIN_REFERENCE and (len(ext) >= 6 or not ext.isdigit()):
                self._by_form[ext].append(invoice)
        self._by_word: dict[str, set[str]] = defaultdict(set)
        self._name_keys: dict[str, str] = {}
        for customer in book.customers.values():
            self._name_keys[customer.number] = name_key(customer.name)
            for word in name_words(customer.name):
                self._by_word[word].add(customer.number)

    # -- the grades ----------------------------------------------------------------------------------

    def fits(self, amount: Decimal, remaining: Decimal) -> bool:
        return abs(amount - remaining) <= self.tolerance

    def payer(self, tx: Transaction) -> tuple[Customer | None, str, list[Customer]]:
        """The customer the payer's IBAN names (certain: the operator's map), and the customers the
        payer's name fits, fully or partially (a hint only: names have typos and namesakes)."""
        by_iban: Customer | None = None
        iban = normal_iban(tx.payer_account) if tx.payer_account else None
        if iban is not None and iban in self.book.payers:
            by_iban = self.book.customers.get(self.book.payers[iban])
        named = self.named(tx.payer_name)
        return by_iban, "the payer's IBAN is in the payer map" if by_iban else "", named

    def named(self, payer: str) -> list[Customer]:
        """Customers whose name is the payer's, or nearly (most similar first)."""
        words = name_words(payer)
        if not words:
            return []
        numbers: set[str] = set()
        for word in words:
            numbers |= self._by_word.get(word, set())
        key = name_key(payer)
        scored = []
        for number in numbers:
            ratio = difflib.SequenceMatcher(None, key, self._name_keys[number]).ratio()
            if ratio >= 0.8:
                scored.append((ratio, number))
        scored.sort(reverse=True)
        return [self.book.customers[n] for _, n in scored]

    def name_grade(self, payer: str, customer: Customer) -> str:
        """ "fully", "partially" or "no": how the payer's name compares with the customer's."""
        a, b = name_key(payer), self._name_keys.get(customer.number, "")
        if not a or not b:
            return "no"
        if a == b:
            return "fully"
        return "partially" if difflib.SequenceMatcher(None, a, b).ratio() >= 0.8 else "no"

    def referenced(self, tx: Transaction) -> tuple[list[Invoice], list[str]]:
        """Open invoices the credit's references name, and notes on references that name none usable."""
        notes: list[str] = []
        texts = [tx.text, tx.end_to_end, *tx.documents]
        if tx.creditor_reference:
            ref = tx.creditor_reference.replace(" ", "").upper()
            if ref.startswith("RF"):
                if rf_valid(ref):
                    texts.append(ref[4:])
                else:
                    notes.append(f"the creditor reference {ref} fails its ISO 11649 check digits: not used")
            else:
                texts.append(ref)
        tokens: set[str] = set()
        for text in texts:
            if text:
                tokens |= text_references(text)
        found: dict[str, Invoice] = {}
        for token in tokens:
            for invoice in self._by_form.get(token, ()):
                found[invoice.number] = invoice
        usable = []
        for invoice in sorted(found.values(), key=lambda i: i.number):
            if not invoice.open:
                notes.append(f"{invoice.number} is named but is {invoice.status}, not open")
            elif not self.book.open(invoice):
                notes.append(
                    f"{invoice.number} is named but already paid in full by payment lines in the journal "
                    "(not posted yet) or earlier in this file"
                )
            elif not self.book.in_local_currency(invoice):
                notes.append(f"{invoice.number} is named but is in {invoice.currency}")
            else:
                usable.append(invoice)
        return usable, notes

    # -- the decision --------------------------------------------------------------------------------

    def match(self, tx: Transaction) -> Match:
        """Grade every candidate for one credit and decide; see the module docstring for the rule."""
        if tx.problem:
            return Match("review", tx.problem)
        if tx.amount is None:
            return Match("review", "the bank gave no amount for this transaction")
        local = self.book.currency
        if not local:
            return Match(
                "review",
                "the company's currency could not be read (companyInformation.currencyCode): without it "
                "no credit is posted, since its amount may be in another currency",
            )
        if tx.currency and tx.currency.upper() != local:
            return Match(
                "review",
                f"the credit is in {tx.currency}; the journal posts in the company's currency {local}: "
                "enter it by hand with its exchange rate",
            )
        amount = tx.amount
        by_iban, iban_note, named = self.payer(tx)
        invoices, notes = self.referenced(tx)
        candidates: list[Candidate] = []
        seen: set[tuple[str, ...]] = set()

        left = self.book.left

        def add(
            customer: Customer | None, group: tuple[Invoice, ...], grade: Confidence, why: list[str]
        ) -> None:
            numbers = tuple(i.number for i in group)
            if numbers in seen:
                return
            seen.add(numbers)
            reasons = [*why, *self._party(tx, customer, by_iban)]
            candidates.append(Candidate(customer, group, grade, reasons, tuple(left[n] for n in numbers)))

        # Document references: a single invoice, or several of one customer, whose remaining fits.
        by_customer: dict[str, list[Invoice]] = defaultdict(list)
        for invoice in invoices:
            by_customer[invoice.customer_number].append(invoice)
        for number, group in by_customer.items():
            customer = self.book.customers.get(number)
            group = group[:MAX_SUBSET]
            for size in range(1, len(group) + 1):
                for subset in itertools.combinations(group, size):
                    if self.fits(amount, sum((left[i.number] for i in subset), Decimal(0))):
                        why = "document number" if size == 1 else f"{size} document numbers"
                        add(customer, subset, "high", [f"{why} in the remittance", "amount fits"])
            for invoice in group:
                shown = money(left[invoice.number])
                why = f"document number in the remittance; amount differs (remaining {shown})"
                add(customer, (invoice,), "medium", [why])
        # The payer known by IBAN: its open invoices of this amount.
        if by_iban is not None:
            for invoice in self.book.by_customer.get(by_iban.number, []):
                if self.book.open(invoice) and self.fits(amount, left[invoice.number]):
                    add(by_iban, (invoice,), "medium", ["no document number", "amount fits"])
        # Amount alone: the weakest hint, a few at most.
        low = 0
        for invoice in self.book.by_amount.get(amount, []):
            if low >= MAX_LOW:
                break
            if (
                self.book.in_local_currency(invoice)
                and self.book.open(invoice)
                and left[invoice.number] == amount
            ):
                before = len(candidates)
                add(self.book.customers.get(invoice.customer_number), (invoice,), "low", ["amount only"])
                low += len(candidates) - before
        order = {"high": 0, "medium": 1, "low": 2}
        candidates.sort(key=lambda c: order[c.confidence])
        return self._decide(tx, candidates, by_iban, iban_note, named, notes)

    def _party(self, tx: Transaction, customer: Customer | None, by_iban: Customer | None) -> list[str]:
        if customer is None:
            return []
        if by_iban is not None:
            if by_iban.number == customer.number:
                return ["payer's IBAN is this customer's"]
            return [f"payer's IBAN belongs to customer {by_iban.number}"]
        grade = self.name_grade(tx.payer_name, customer)
        return {"fully": ["payer's name matches"], "partially": ["payer's name matches partially"]}.get(
            grade, []
        )

    def _decide(
        self,
        tx: Transaction,
        candidates: list[Candidate],
        by_iban: Customer | None,
        iban_note: str,
        named: list[Customer],
        notes: list[str],
    ) -> Match:
        high = [c for c in candidates if c.confidence == "high"]
        extra = f" ({'; '.join(notes)})" if notes else ""
        unusable = [n for n in notes if " is named but " in n]
        if high and unusable:
            # The payer also named an invoice that is paid, taken or foreign: the one left that fits may be
            # what they meant, or this may pay the other one twice. Not a sure thing.
            ways = ", ".join(" + ".join(i.number for i in c.invoices) for c in high)
            return Match(
                "review",
                f"{ways} fits, but the remittance also names {'; '.join(unusable)}",
                None,
                None,
                candidates,
            )
        if len(high) == 1:
            best = high[0]
            customer = best.customer
            if customer is None:
                return Match(
                    "review",
                    f"{best.invoices[0].number}'s customer is not in the company",
                    None,
                    None,
                    candidates,
                )
            if by_iban is not None and by_iban.number != customer.number:
                return Match(
                    "review",
                    f"the remittance names {customer.number}'s invoice but the payer's IBAN is customer "
                    f"{by_iban.number}'s",
                    None,
                    None,
                    candidates,
                )
            namesake = next(
                (
                    c
                    for c in named
                    if c.number != customer.number and self.name_grade(tx.payer_name, c) == "fully"
                ),
                None,
            )
            if namesake is not None and self.name_grade(tx.payer_name, customer) != "fully":
                return Match(
                    "review",
                    f"the remittance names {customer.number}'s invoice but the payer's name is customer "
                    f"{namesake.number}'s",
                    None,
                    None,
                    candidates,
                )
            if customer.blocked in BLOCKS_PAYMENTS:
                return Match(
                    "review",
                    f"customer {customer.number} is blocked ({customer.blocked})",
                    customer,
                    None,
                    candidates,
                )
            return Match("apply", "; ".join(best.reasons), customer, best, candidates)
        if len(high) > 1:
            ways = ", ".join(" + ".join(i.number for i in c.invoices) for c in high)
            return Match("review", f"several ways to apply the amount fit: {ways}", None, None, candidates)
        sure = by_iban  # only the operator's payer map makes a customer certain: names have namesakes
        if sure is not None and self.on_account and sure.blocked not in BLOCKS_PAYMENTS:
            why = iban_note
            account = Candidate(sure, (), "medium", [why, "no open invoice fits for sure"])
            return Match("account", why + extra, sure, account, candidates)
        if not candidates:
            who = f"the payer is customer {sure.number}, " if sure else ""
            return Match(
                "review",
                f"{who}no open invoice is named and none fits the amount{extra}",
                sure,
                None,
                candidates,
            )
        return Match("review", f"no candidate is sure{extra}", sure, None, candidates)
