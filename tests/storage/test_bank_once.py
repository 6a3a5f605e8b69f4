"""Bank credits post once whatever the statements (issue 24): through the registered blob function, with
Azurite and the sandbox as Business Central, files written by the labelled generator
(tests/support/bankgen.py) as banks write them. Each way a credit could be posted twice or lost from
view has its test here; each failed before the register of credits per bank account (the issue note has
the table)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from azure.data.tables import TableClient

from tests.support import bankgen as g
from tests.support.filedrop import blobs, configure_storage, deliver, read, report_of, upload

ACCOUNT = "DE89370400440532013000"  # our account, as camt writes it
ACCOUNT_MT940 = "37040044/0532013000"  # the same account as a German bank's MT940 :25: writes it
DAY = g.DEFAULT_BOOKING_DATE


@pytest.fixture
def books(azure_env, azurite, sandbox):
    """A company of its own (a small generated world of customers and open invoices, the payer map),
    two customer payment journals, and the relay posting bank credits on account when the payer map
    names the customer."""
    world = g.world(24, customers=12, invoices=40)
    company = sandbox.add_company(name="Bank once")
    g.seed_sandbox(sandbox, world, company)
    journal = sandbox.add_journal(name="BANK", company_id=company)
    other = sandbox.add_journal(name="BANK2", company_id=company)
    drop = configure_storage(azure_env, azurite, PAYMENTS_BANK_ON_ACCOUNT="true")  # drop.settings keeps it
    config = drop.service.get_container_client("payments-config")
    if not config.exists():
        config.create_container()
    config.upload_blob(f"{company}/payers.csv", g.payers_csv(world), overwrite=True)
    return SimpleNamespace(drop=drop, world=world, company=company, journal=journal, other=other)


def _open(world, n: int):
    return [i for i in world.invoices if i.status == "Open"][n]


def _pair(world):
    """Two open invoices of one customer (a credit may pay both)."""
    for customer in world.customers:
        mine = world.invoices_of(customer.number, open_only=True)
        if len(mine) >= 2:
            return mine[0], mine[1]
    raise AssertionError("the world has no customer with two open invoices")


def _mapped(world):
    return next(c for c in world.customers if c.ibans)


def credit(world, *, ref: str, amount: str, iban: str = "", text: str = "", e2e: str = "", name: str = ""):
    """One credit as a payer sends it."""
    return g.Credit(
        amount=Decimal(amount),
        currency="EUR",
        booking_date=DAY,
        value_date=DAY,
        payer_name=name,
        payer_iban=iban,
        text=text,
        creditor_reference="",
        end_to_end_id=e2e or "NOTPROVIDED",
        acct_svcr_ref=ref,
        intended=(),
        customer="",
        case="test",
    )


def two_credits(world):
    """An invoice paid by its number, and a payment on account from a mapped payer (no invoice named)."""
    invoice = _open(world, 0)
    payer = _mapped(world)
    return [
        credit(
            world,
            ref="ACR-1",
            amount=str(invoice.remaining),
            text=f"Rechnung {invoice.number}",
            e2e="E2E-INV-1",
            name="Payer One GmbH",
        ),
        credit(
            world,
            ref="ACR-2",
            amount="123.45",
            iban=payer.ibans[0],
            text="Abschlag November",
            name=payer.name,
        ),
    ]


def drop_file(b, name: str, data: bytes, journal: str | None = None) -> dict:
    path = upload(b.drop, f"{b.company}/{journal or b.journal}/{name}", data)
    deliver(b.drop, path)
    return report_of(b.drop, path)


def payments(sandbox, b, journal: str | None = None) -> list[dict]:
    return sandbox.payments(company_id=b.company, journal_id=journal or b.journal)


def everywhere(sandbox, b) -> list[dict]:
    return payments(sandbox, b) + payments(sandbox, b, b.other)


def without_references(credits):
    """The same credits as an intraday camt.054 without the bank's references (some banks give
    AcctSvcrRef only in the day's statement)."""
    return [replace(c, acct_svcr_ref="") for c in credits]


# -- one credit, many readings -------------------------------------------------------------------------


def test_a_camt054_without_references_then_the_camt053_with_them_posts_each_credit_once(books, sandbox):
    """Before: the camt.054's keys came from its facts, the camt.053's from AcctSvcrRef: two keys, and the
    credit on account was posted twice (the invoice one went to review: its invoice looked paid)."""
    credits = two_credits(books.world)
    first = drop_file(books, "intraday.xml", g.camt054(without_references(credits), account_iban=ACCOUNT, notification_id="N1"))
    assert first["statements"][0]["applied"]["count"] + first["statements"][0]["onAccount"]["count"] == 2
    assert len(payments(sandbox, books)) == 2
    day = drop_file(books, "day.xml", g.camt053(credits, account_iban=ACCOUNT, statement_id="S1"))
    assert len(payments(sandbox, books)) == 2
    summary = day["statements"][0]
    assert (summary["postedBefore"]["count"], summary["review"]["count"]) == (2, 0)
    notes = [r["note"] for r in day["records"] if r["outcome"] == "skipped"]
    assert all(n.startswith(f"posted before (first read from {books.company}/{books.journal}/intraday.xml") for n in notes)


def test_the_mt940_of_the_same_day_posts_nothing_more(books, sandbox):
    """The same day as camt.053 and as MT940 (:25: as bank code/account number, the bank's own MT940
    references): the account is one, and the credits are recognised by their facts."""
    credits = two_credits(books.world)
    drop_file(books, "day.xml", g.camt053(credits, account_iban=ACCOUNT, statement_id="S1"))
    assert len(payments(sandbox, books)) == 2
    mt = [replace(c, acct_svcr_ref=f"MT{n:014d}") for n, c in enumerate(credits)]
    report = drop_file(books, "day.sta", g.mt940(mt, account=ACCOUNT_MT940, statement_number=7))
    assert len(payments(sandbox, books)) == 2
    assert report["statements"][0]["postedBefore"]["count"] == 2


def test_overlapping_statements_in_two_journals_post_once(books, sandbox):
    """Before: keys were per journal, so the camt.054 in one journal and its camt.053 in another both
    posted (the statement-per-journal refusal only caught the very same statement)."""
    credits = two_credits(books.world)
    drop_file(books, "intraday.xml", g.camt054(credits, account_iban=ACCOUNT, notification_id="N1"))
    report = drop_file(books, "day.xml", g.camt053(credits, account_iban=ACCOUNT, statement_id="S1"), books.other)
    assert len(payments(sandbox, books)) == 2 and payments(sandbox, books, books.other) == []
    assert all(r["note"].endswith(f"in journal {books.journal})") for r in report["records"])


def test_the_same_file_in_two_journals_posts_once(books, sandbox):
    data = g.camt053(two_credits(books.world), account_iban=ACCOUNT, statement_id="S1")
    drop_file(books, "day.xml", data)
    report = drop_file(books, "day.xml", data, books.other)
    assert report["status"] == "processed" and payments(sandbox, books, books.other) == []
    assert len(everywhere(sandbox, books)) == 2


def test_a_statement_read_again_after_the_ledger_forgot_its_keys_posts_nothing(books, sandbox):
    """Before: once PAYMENTS_LEDGER_RETENTION_DAYS had passed, the ledger's keys were purged and the
    statement read again posted its on-account credit again (its invoice credit went to review)."""
    from payments.ledger import Ledger, TableLedgerStore

    data = g.camt053(two_credits(books.world), account_iban=ACCOUNT, statement_id="S1")
    drop_file(books, "day.xml", data)
    later = datetime.now(UTC) + timedelta(days=31)
    assert Ledger(TableLedgerStore(books.drop.table), clock=lambda: later).purge() == 2
    sandbox.post_journal(company_id=books.company, journal_id=books.journal)  # lines gone, invoices paid
    report = drop_file(books, "again.xml", data)
    assert sandbox.payments(company_id=books.company, journal_id=books.journal) == []
    assert report["statements"][0]["postedBefore"]["count"] == 2
    assert all(len(r["id"].split()) == 1 for r in report["records"])  # the ids the register kept


def test_credits_and_plans_are_forgotten_after_the_bank_retention(books, sandbox):
    from payments.filedrop.plans import forget_old_credits
    from payments.settings import load_settings

    invoice, other = _pair(books.world)
    several = credit(
        books.world,
        ref="ACR-9",
        amount=str(invoice.remaining + other.remaining),
        text=f"{invoice.number} {other.number}",
    )
    drop_file(books, "day.xml", g.camt053([several], account_iban=ACCOUNT, statement_id="S9"))
    assert len(payments(sandbox, books)) == 2  # two lines: a fixed plan
    settings = load_settings()
    batches = settings.batches_container
    assert [b for b in blobs(books.drop, batches) if b.startswith("credits/")]
    assert forget_old_credits(settings, books.drop.service, datetime.now(UTC) + timedelta(days=399)) == (0, 0)
    assert forget_old_credits(settings, books.drop.service, datetime.now(UTC) + timedelta(days=401)) == (1, 1)
    assert [b for b in blobs(books.drop, batches) if b.startswith("credits/")] == []
    register = TableClient.from_connection_string(books.drop.azurite.connection_string, settings.bank_table)
    assert list(register.list_entities()) == []  # every row of the credit went with it


def test_two_equal_credits_in_one_file_are_two_credits_and_the_file_again_posts_neither(books, sandbox):
    payer = _mapped(books.world)
    same = credit(books.world, ref="", amount="50.00", iban=payer.ibans[0], text="Abschlag", name=payer.name)
    data = g.camt053([same, same], account_iban=ACCOUNT, statement_id="S2")
    first = drop_file(books, "day.xml", data)
    assert first["statements"][0]["onAccount"]["count"] == 2 and len(payments(sandbox, books)) == 2
    again = drop_file(books, "again.xml", data)
    assert again["statements"][0]["postedBefore"]["count"] == 2 and len(payments(sandbox, books)) == 2


def test_a_reading_that_may_be_a_credit_read_before_goes_to_review_never_to_posting(books, sandbox):
    """The camt.054 said nothing that tells its credit apart (no reference, no payer account, no
    end-to-end id); the camt.053 has a credit of that day and amount whose text differs: it may be the
    same credit, or another. It is not posted: the operator decides, with the first reading named."""
    invoice = _open(books.world, 0)
    notified = credit(books.world, ref="", amount=str(invoice.remaining), text=f"{invoice.number}")
    drop_file(books, "intraday.xml", g.camt054([notified], account_iban=ACCOUNT, notification_id="N1"))
    assert len(payments(sandbox, books)) == 1
    booked = replace(notified, acct_svcr_ref="ACR-7", text=f"Rechnung {invoice.number} vielen Dank")
    report = drop_file(books, "day.xml", g.camt053([booked], account_iban=ACCOUNT, statement_id="S1"))
    assert len(payments(sandbox, books)) == 1
    [record] = report["records"]
    assert record["outcome"] == "review"
    assert "it may be a credit read before" in record["reason"]
    assert f"{books.company}/{books.journal}/intraday.xml" in record["reason"]
    # It was that credit: the operator chooses skip, and nothing is posted, now or later.
    back = _choose(books, report, "skip")
    drop_file(books, "review.csv", back.encode())
    drop_file(books, "day-again.xml", g.camt053([booked], account_iban=ACCOUNT, statement_id="S1"))
    assert len(payments(sandbox, books)) == 1


def _rows(b, report) -> list[dict[str, str]]:
    name = report["reviewFile"].split("/", 1)[1]
    return list(csv.DictReader(io.StringIO(read(b.drop, b.drop.reports, name).decode("utf-8-sig"))))


def _choose(b, report, choice: str, which=lambda row: True) -> str:
    rows = _rows(b, report)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "choice": choice if which(row) else ""})
    return out.getvalue()


# -- the books across journals, and a refused line decided again ----------------------------------------


def test_an_invoice_paid_by_a_line_in_another_journal_is_not_applied_again(books, sandbox):
    """Before: only the statement's own journal was read, so a line waiting in another customer payment
    journal for the same invoice did not count and the credit was applied to it a second time."""
    invoice = _open(books.world, 0)
    _line_elsewhere(sandbox, books, invoice)
    paying = credit(books.world, ref="ACR-3", amount=str(invoice.remaining), text=f"Rechnung {invoice.number}")
    report = drop_file(books, "day.xml", g.camt053([paying], account_iban=ACCOUNT, statement_id="S3"))
    assert payments(sandbox, books) == []
    [record] = report["records"]
    assert record["outcome"] == "review"


def _line_elsewhere(sandbox, books, invoice) -> None:
    """A payment line for the invoice waiting in the other journal, created through the sandbox's API
    as any Business Central client would (someone entered it by hand, another integration sent it)."""
    import requests

    journal = f"companies({books.company})/customerPaymentJournals({books.other})/customerPayments"
    body = {
        "customerNumber": invoice.customer_number,
        "amount": str(-invoice.remaining),
        "appliesToInvoiceNumber": invoice.number,
    }
    resp = requests.post(
        f"{sandbox.bc_base_url}/{journal}",
        data=json.dumps(body),
        headers={"Authorization": "Bearer someone-else", "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text


def test_a_refused_line_of_a_fixed_plan_is_decided_again_alone_in_the_review_file(books, sandbox, azure_env):
    """A credit paying two invoices is a fixed plan of two lines; Business Central refuses the second.
    Before: the refused line could only be fixed by hand (every reading sent it again, refused again).
    Now it goes to the review file on its own, the report says so, and the operator's choice replaces
    that line alone: the first line is not posted twice."""
    azure_env("businesscentral", **{**books.drop.settings, "PAYMENTS_BATCH_SIZE": "100"})
    first_invoice, second_invoice = _pair(books.world)
    spare = next(i for i in books.world.invoices if i.customer_number != first_invoice.customer_number)
    several = credit(
        books.world,
        ref="ACR-5",
        amount=str(first_invoice.remaining + second_invoice.remaining),
        text=f"{first_invoice.number} {second_invoice.number}",
    )
    sandbox.inject_inner("none")
    sandbox.inject_inner("400")
    report = drop_file(books, "day.xml", g.camt053([several], account_iban=ACCOUNT, statement_id="S5"))
    assert [p["appliesToInvoiceNumber"] for p in payments(sandbox, books)] == [first_invoice.number]
    refused = next(r for r in report["records"] if r["outcome"] == "rejected")
    assert "for this part alone" in refused["note"]
    [row] = _rows(books, report)
    assert row["amount"] == str(second_invoice.remaining) and "refused part 2" in row["reason"]
    choice = f"account {spare.customer_number}"
    back = drop_file(books, "review.csv", _choose(books, report, choice).encode())
    lines = payments(sandbox, books)
    assert [(p["appliesToInvoiceNumber"], p["customerNumber"]) for p in lines] == [
        (first_invoice.number, first_invoice.customer_number),
        ("", spare.customer_number),
    ]
    assert sum(p["amount"] for p in lines) == -several.amount
    assert back["totals"].get("created") == 1
    again = drop_file(books, "day-again.xml", g.camt053([several], account_iban=ACCOUNT, statement_id="S5"))
    assert len(payments(sandbox, books)) == 2 and again["statements"][0]["postedBefore"]["count"] == 1


def test_two_readings_of_one_credit_registered_at_the_same_moment_collide_and_the_second_finds_the_first(
    books,
):
    """Two workers read the camt.054 and the camt.053 at once: both find nothing registered and both
    register. The facts row's slot makes the second transaction fail (nothing of it written), and
    resolving again finds the first reading's credit, so it is not posted beside it."""
    from payments.bank import reader_for
    from payments.bank.identity import identity_of
    from payments.bank.register import BankRegister, New
    from payments.settings import load_settings

    credits = two_credits(books.world)[1:]  # the one on account: payer account and name in both
    readings = []
    for kind, data in (
        ("camt", g.camt054(without_references(credits), account_iban=ACCOUNT, notification_id="N1")),
        ("camt", g.camt053(credits, account_iban=ACCOUNT, statement_id="S1")),
    ):
        reader = reader_for(kind, io.BytesIO(data), "x")
        [tx] = list(reader.transactions())
        readings.append(identity_of(tx, reader.statements[tx.statement]))
    notified, booked = readings
    assert notified.key != booked.key  # the readings' own keys differ: facts, then AcctSvcrRef
    table = TableClient.from_connection_string(books.drop.azurite.connection_string, load_settings().bank_table)
    register = BankRegister(table, books.company)
    first, second = register.resolve(notified, "intraday"), register.resolve(booked, "day")
    assert (first.kind, second.kind, first.slot, second.slot) == ("new", "new", 0, 0)
    assert register.register([New(notified, first.slot, "decided", "x")], journal=books.journal, reading="intraday") == set()
    assert register.register([New(booked, second.slot, "decided", "x")], journal=books.journal, reading="day") == {
        booked.key
    }
    again = register.resolve(booked, "day")
    assert (again.kind, again.credit.credit) == ("same", notified.key)
    assert again.reason == "the same payer account, text, payer name"
