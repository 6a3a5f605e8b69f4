"""Cash application without servers: how references are recognised, how candidates are graded, and
that the matcher never guesses (every doubt goes to review, with the reasons)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from payments.bank.matching import Matcher, reference_forms, rf_valid, text_references
from payments.bank.posting import Credit, document_number, payloads
from payments.bank.receivables import Customer, Invoice, Receivables, read_payers
from payments.bank.review import parse_choice
from payments.bank.statement import Transaction
from payments.errors import InputError

D = Decimal
FABRIKAM = Customer("c1", "10000", "Fabrikam Lighting GmbH")
CONTOSO = Customer("c2", "20000", "Contoso Ltd")
BLOCKED = Customer("c3", "30000", "Alpine Ski House", blocked="All")


def invoice(
    number: str, customer: Customer, remaining: str, status: str = "Open", currency: str = ""
) -> Invoice:
    return Invoice(f"id-{number}", number, customer.number, D(remaining), currency, status)


def book(*invoices: Invoice, payers: dict[str, str] | None = None) -> Receivables:
    customers = {c.number: c for c in (FABRIKAM, CONTOSO, BLOCKED)}
    return Receivables(customers, {i.number: i for i in invoices}, "EUR", payers=payers or {})


def credit(
    amount: str, text: str = "", *, name: str = "", iban: str = "", ref: str = "", currency: str = "EUR"
):
    return Transaction(
        "statement 1, entry 1",
        0,
        "credit",
        D(amount),
        currency,
        text=text,
        payer_name=name,
        payer_account=iban,
        creditor_reference=ref,
        key="bank-k",
    )


BOOKS = book(
    invoice("SI-104711", FABRIKAM, "150.00"),
    invoice("SI-104712", FABRIKAM, "50.00"),
    invoice("SI-204711", CONTOSO, "150.00"),
    invoice("SI-104713", FABRIKAM, "75.00", status="Paid"),
    invoice("SI-300001", BLOCKED, "20.00"),
    invoice("SI-104799", FABRIKAM, "99.00", currency="USD"),
)


@pytest.mark.parametrize(
    "text",
    [
        "Invoice SI-104711",
        "Rechnung 104711 danke",
        "SI 104 711",
        "si-104-711",
        "payment si104711 order PO-5521",
        "104 711",
        "INV:104711/2026",
    ],
)
def test_invoice_numbers_are_recognised_as_payers_write_them(text):
    match = Matcher(BOOKS).match(credit("150.00", text, name="Fabrikam Lighting GmbH"))
    assert match.decision == "apply", match.reason
    assert [i.number for i in match.applied.invoices] == ["SI-104711"]
    assert match.customer == FABRIKAM


def test_short_numbers_are_not_references():
    """Business Central matches document numbers of more than four characters only."""
    assert reference_forms("1234") == set()
    assert "1234" not in text_references("invoice 1234")
    assert "104711" in text_references("104 711")


def test_a_number_inside_a_longer_number_is_not_a_reference():
    match = Matcher(BOOKS).match(credit("150.00", "order 1104711"))
    assert match.decision == "review"
    assert all(c.confidence != "high" for c in match.candidates)


def test_several_invoices_summing_to_the_credit_are_applied_together():
    match = Matcher(BOOKS).match(credit("200.00", "SI-104711, SI-104712"))
    assert match.decision == "apply"
    assert [i.number for i in match.applied.invoices] == ["SI-104711", "SI-104712"]


def test_a_wrong_amount_goes_to_review_with_the_invoice_as_candidate():
    match = Matcher(BOOKS).match(credit("149.00", "SI-104711"))
    assert match.decision == "review"
    assert match.candidates[0].invoices[0].number == "SI-104711"
    assert match.candidates[0].confidence == "medium"
    assert "amount differs (remaining 150.00)" in match.candidates[0].describe()


def test_a_tolerance_lets_a_near_amount_match():
    match = Matcher(BOOKS, tolerance=D("1.00")).match(credit("149.00", "SI-104711"))
    assert match.decision == "apply"


def test_an_amount_alone_is_never_applied():
    match = Matcher(BOOKS).match(credit("150.00", "thanks"))
    assert match.decision == "review"
    assert {c.invoices[0].number for c in match.candidates} == {"SI-104711", "SI-204711"}
    assert {c.confidence for c in match.candidates} == {"low"}


def test_the_payers_iban_contradicting_the_reference_goes_to_review():
    payers = {"DE89370400440532013000": "20000"}
    books = book(*BOOKS.invoices.values(), payers=payers)
    match = Matcher(books).match(credit("150.00", "SI-104711", iban="DE89 3704 0044 0532 0130 00"))
    assert match.decision == "review"
    assert "IBAN is customer 20000's" in match.reason


def test_a_paid_invoice_is_not_applied_and_says_why():
    match = Matcher(BOOKS).match(credit("75.00", "SI-104713"))
    assert match.decision == "review"
    assert "SI-104713 is named but is Paid" in match.reason


def test_a_blocked_customer_goes_to_review():
    match = Matcher(BOOKS).match(credit("20.00", "SI-300001"))
    assert match.decision == "review"
    assert "blocked (All)" in match.reason


def test_a_credit_in_another_currency_goes_to_review():
    match = Matcher(BOOKS).match(credit("150.00", "SI-104711", currency="USD"))
    assert match.decision == "review"
    assert "in USD" in match.reason


def test_two_ways_to_apply_go_to_review():
    books = book(invoice("SI-104711", FABRIKAM, "50.00"), invoice("SC-104711", FABRIKAM, "50.00"))
    match = Matcher(books).match(credit("50.00", "104711"))
    assert match.decision == "review"
    assert "several ways" in match.reason


def test_rf_creditor_references_are_checked():
    """ISO 11649: RF18539007547034 is the standard's own example."""
    assert rf_valid("RF18539007547034")
    assert rf_valid("RF18 5390 0754 7034")
    assert not rf_valid("RF19539007547034")
    # An RF reference carrying an invoice number applies; one failing its check digits is not used.
    payload = "000000104711"
    check = 98 - int("".join(str(int(c, 36)) for c in payload + "RF00")) % 97
    good = f"RF{check:02d}{payload}"
    assert rf_valid(good)
    assert Matcher(BOOKS).match(credit("150.00", ref=good)).decision == "apply"
    bad = f"RF{(check + 1) % 100:02d}{payload}"
    match = Matcher(BOOKS).match(credit("150.00", ref=bad))
    assert match.decision == "review"
    assert "fails its ISO 11649 check digits" in match.reason


def test_on_account_only_for_a_certain_customer_and_only_when_allowed():
    payers = {"DE89370400440532013000": "10000"}
    books = book(*BOOKS.invoices.values(), payers=payers)
    tx = credit("12.34", "advance payment", iban="DE89370400440532013000")
    assert Matcher(books).match(tx).decision == "review"
    match = Matcher(books, on_account=True).match(tx)
    assert match.decision == "account"
    assert match.customer == FABRIKAM
    # A name alone is not certain when another customer's name is near it.
    near = Receivables(
        {"10000": FABRIKAM, "10001": Customer("c9", "10001", "Fabrikam Lightings GmbH")}, {}, "EUR"
    )
    assert (
        Matcher(near, on_account=True).match(credit("5.00", name="Fabrikam Lighting GmbH")).decision
        == "review"
    )


def test_payloads_split_exactly_and_carry_the_bank_reference():
    c = Credit(
        "bank-k", "entry 1", D("200.01"), "EUR", "2026-11-30", "ACSV-REF-1", "E2E-1", "Fabrikam", "SI-1 SI-2"
    )
    pair = (BOOKS.invoices["SI-104711"], BOOKS.invoices["SI-104712"])
    parts = payloads(c, FABRIKAM, pair, (D("150.00"), D("50.00")))
    assert [p["amount"] for p in parts] == [D("-150.00"), D("-50.01")]
    assert sum(p["amount"] for p in parts) == -c.amount
    assert (
        parts[0]["appliesToInvoiceNumber"] == "SI-104711" and parts[0]["appliesToInvoiceId"] == "id-SI-104711"
    )
    assert parts[0]["externalDocumentNumber"] == "ACSV-REF-1"
    assert "documentNumber" not in parts[0]
    assert payloads(c, FABRIKAM, (), (), document_numbers="bank")[0]["documentNumber"] == document_number(
        "bank-k"
    )
    assert len(document_number("bank-k")) == 20


def test_payer_map_rows_that_cannot_be_used_are_said_and_left_out():
    data = (
        b"iban;customerNumber\n"
        b"DE89 3704 0044 0532 0130 00;10000\n"
        b"DE00370400440532013000;10000\n"
        b"GB82WEST12345698765432;99999\n"
        b"NL91ABNA0417164300;10000\n"
        b"NL91ABNA0417164300;20000\n"
    )
    payers, notes = read_payers(data, {"10000", "20000"})
    assert payers == {"DE89370400440532013000": "10000"}
    assert len(notes) == 3
    assert all("0532013000" not in n for n in notes)  # IBANs are masked in what is said


def test_review_choices_are_read_against_the_books():
    assert parse_choice("", BOOKS).action == "none"
    assert parse_choice("skip", BOOKS).action == "skip"
    choice = parse_choice("104711 SI-104712", BOOKS)
    assert choice.action == "apply" and [i.number for i in choice.invoices] == ["SI-104711", "SI-104712"]
    assert parse_choice("account 20000", BOOKS).customer == CONTOSO
    for wrong, says in [
        ("SI-104713", "no open invoice"),
        ("SI-104711 SI-204711", "different customers"),
        ("account 77777", "no customer"),
        ("account", "one customer number"),
    ]:
        with pytest.raises(InputError, match=says):
            parse_choice(wrong, BOOKS)


def test_lines_already_in_the_journal_and_earlier_credits_of_the_file_are_not_applied_again():
    """Business Central lowers remainingAmount only when the journal is posted: a payment line already in
    the journal for an invoice counts against it, or posting the journal would fail on the second."""
    books = Receivables(
        {c.number: c for c in (FABRIKAM,)},
        {
            i.number: i
            for i in (invoice("SI-104711", FABRIKAM, "150.00"), invoice("SI-104712", FABRIKAM, "50.00"))
        },
        "EUR",
        in_journal={"SI-104711": D("150.00")},
    )
    match = Matcher(books).match(credit("150.00", "SI-104711"))
    assert match.decision == "review"
    assert "already paid in full by payment lines in the journal" in match.reason
    matcher = Matcher(books)
    first = matcher.match(credit("50.00", "SI-104712"))
    assert first.decision == "apply"
    books.apply(first.applied.invoices[0], D("50.00"))
    assert matcher.match(credit("50.00", "SI-104712")).decision == "review"


def test_without_the_companys_currency_nothing_is_applied():
    books = Receivables(
        {FABRIKAM.number: FABRIKAM}, {"SI-104711": invoice("SI-104711", FABRIKAM, "150.00")}, ""
    )
    match = Matcher(books).match(credit("150.00", "SI-104711"))
    assert match.decision == "review"
    assert "currency could not be read" in match.reason


@pytest.mark.parametrize(
    ("text", "invoice_number", "amount"),
    [
        ("Zahlung vom 03.11.2025", "SI-112025", "10.00"),  # a date
        ("Order SO-104711", "SI-104711", "150.00"),  # another document's number, with its own prefix
        ("from DE89 3704 0044 0532 0130 00", "SI-013000", "10.00"),  # an IBAN in the text
        ("EUR 12 500,00", "SI-12500", "10.00"),  # an amount
        ("customer 10000", "SI-777777", "10.00"),  # a customer number that is another invoice's PO number
    ],
)
def test_numbers_that_are_not_invoice_references_are_not_taken_for_them(text, invoice_number, amount):
    books = Receivables(
        {FABRIKAM.number: FABRIKAM},
        {
            invoice_number: replace(
                invoice(invoice_number, FABRIKAM, amount), external_document_number="10000"
            ),
        },
        "EUR",
    )
    match = Matcher(books).match(credit(amount, text))
    assert match.decision == "review"
    assert all(c.confidence == "low" for c in match.candidates)


def test_the_payers_name_being_another_customers_goes_to_review():
    match = Matcher(BOOKS).match(credit("150.00", "SI-104711", name="Contoso Ltd"))
    assert match.decision == "review"
    assert "the payer's name is customer 20000's" in match.reason


def test_naming_a_paid_invoice_beside_the_one_that_fits_goes_to_review():
    """Two invoices of one amount named, one paid already: this may pay it twice, or pay the other."""
    books = book(invoice("SI-222398", FABRIKAM, "29.31"), invoice("SI-223449", FABRIKAM, "29.31"))
    books.apply(books.invoices["SI-222398"], D("29.31"))
    match = Matcher(books).match(credit("29.31", "Rechnungen SI-222398/SI-223449"))
    assert match.decision == "review"
    assert match.reason.startswith("SI-223449 fits, but the remittance also names SI-222398 is named but")
