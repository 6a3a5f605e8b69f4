"""Bank statements dropped into the inbox, end to end: the registered blob function, Azurite for the
inbox, reports, config and ledger, the sandbox as Business Central with customers and open invoices.
Asserts on what an operator sees (the report, the review file) and what the target holds."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import blobs, deliver, read, report_of, upload

IBAN = "DE89370400440532013000"  # our account at the bank
PAYER_IBAN = "NL91ABNA0417164300"  # a customer's account (the operator's payer map)


def _tx(t: dict, v8: bool) -> str:
    name = f"<Pty><Nm>{t['payer']}</Nm></Pty>" if v8 else f"<Nm>{t['payer']}</Nm>"
    ref = t.get("rf")
    strd = (
        f"<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{ref}</Ref></CdtrRefInf></Strd>"
        if ref
        else ""
    )
    iban = f"<DbtrAcct><Id><IBAN>{t['iban']}</IBAN></Id></DbtrAcct>" if t.get("iban") else ""
    return (
        f"<TxDtls><Refs><AcctSvcrRef>{t['ref']}</AcctSvcrRef><EndToEndId>{t.get('e2e', 'NOTPROVIDED')}</EndToEndId>"
        f'</Refs><Amt Ccy="EUR">{t["amount"]}</Amt><RltdPties><Dbtr>{name}</Dbtr>{iban}</RltdPties>'
        f"<RmtInf><Ustrd>{t.get('text', '')}</Ustrd>{strd}</RmtInf></TxDtls>"
    )


def camt(kind: str, entries: list[dict], *, version: str = "08", statement: str = "STMT-1") -> bytes:
    """A small camt.053 or camt.054 as banks write them (Stmt or Ntfctn, entries with details)."""
    v8 = version == "08"
    record = "Stmt" if kind == "053" else "Ntfctn"
    root = "BkToCstmrStmt" if kind == "053" else "BkToCstmrDbtCdtNtfctn"
    body = []
    for e in entries:
        status = (
            f"<Sts><Cd>{e.get('status', 'BOOK')}</Cd></Sts>"
            if v8
            else f"<Sts>{e.get('status', 'BOOK')}</Sts>"
        )
        details = "".join(_tx(t, v8) for t in e.get("txs", [e]))
        body.append(
            f'<Ntry><Amt Ccy="EUR">{e["amount"]}</Amt><CdtDbtInd>{e.get("dc", "CRDT")}</CdtDbtInd>'
            f"{'<RvslInd>true</RvslInd>' if e.get('reversal') else ''}{status}"
            f"<BookgDt><Dt>2026-11-30</Dt></BookgDt><ValDt><Dt>2026-11-30</Dt></ValDt>"
            f"<AcctSvcrRef>{e.get('entry_ref', e.get('ref', ''))}</AcctSvcrRef>"
            f"<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
            f"<NtryDtls>{details}</NtryDtls></Ntry>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- exported by the bank -->\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.{version}"><{root}>'
        f"<GrpHdr><MsgId>M-{statement}</MsgId><CreDtTm>2026-11-30T18:00:00</CreDtTm></GrpHdr>"
        f"<{record}><Id>{statement}</Id><CreDtTm>2026-11-30T18:00:00</CreDtTm>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        + "".join(body)
        + f"</{record}></{root}></Document>"
    ).encode("utf-8")


def seed(sandbox) -> None:
    sandbox.add_customer("50000", name="Fabrikam Lighting GmbH")
    sandbox.add_invoice("SI-104711", "50000", amount="150.00")
    sandbox.add_invoice("SI-104712", "50000", amount="50.00")
    sandbox.add_invoice("SI-104713", "50000", amount="99.99")
    sandbox.add_invoice("SI-104714", "50000", amount="150.00")


ENTRIES = [
    {"ref": "R-1", "amount": "150.00", "payer": "Fabrikam Lighting GmbH", "text": "Rechnung SI 104711"},
    {"ref": "R-2", "amount": "200.00", "payer": "Fabrikam Lightng GmbH", "text": "104714 104712"},
    {"ref": "R-3", "amount": "42.00", "payer": "Unknown Ltd", "text": "donation"},
    {"ref": "R-4", "amount": "12.50", "dc": "DBIT", "payer": "Bank", "text": "fees"},
    {"ref": "R-5", "amount": "99.99", "status": "PDNG", "payer": "Fabrikam", "text": "SI-104713"},
]


@pytest.fixture
def bank(drop, sandbox):
    seed(sandbox)
    return drop


def review_rows(drop, report) -> list[dict[str, str]]:
    name = report["reviewFile"].split("/", 1)[1]
    text = read(drop, drop.reports, name).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_a_statement_posts_its_sure_credits_and_reports_every_transaction(bank, sandbox):
    name = upload(bank, f"{C}/{J}/statement.xml", camt("053", ENTRIES))
    deliver(bank, name)
    posted = sandbox.payments()
    # R-1 pays SI-104711; R-2 pays SI-104712 and SI-104714: two lines, which add up to the credit (the
    # first part is the invoice's remainingAmount, which Business Central writes without trailing zeros).
    assert sorted((p["appliesToInvoiceNumber"], p["amount"]) for p in posted) == [
        ("SI-104711", Decimal("-150.00")),
        ("SI-104712", Decimal("-50")),
        ("SI-104714", Decimal("-150.00")),
    ]
    assert {p["externalDocumentNumber"] for p in posted} == {"R-1", "R-2"}
    assert all(p["customerNumber"] == "50000" and str(p["postingDate"]) == "2026-11-30" for p in posted)
    report = report_of(bank, name)
    assert report["status"] == "processed"
    [summary] = report["statements"]
    assert summary["format"] == "camt.053.001.08"
    assert summary["account"] == "DE89…3000"  # masked
    assert summary["transactions"] == 5
    assert summary["credits"] == {"count": 3, "sum": 392.0}
    assert summary["applied"] == {"count": 2, "sum": 350.0}
    assert summary["review"] == {"count": 1, "sum": 42.0}
    assert summary["skipped"] == {"debit": {"count": 1, "sum": 12.5}, "pending": {"count": 1, "sum": 99.99}}
    assert report["totals"] == {"records": 6, "created": 3, "review": 1, "skipped": 2}
    [row] = review_rows(bank, report)
    assert row["amount"] == "42.00" and row["payer"] == "Unknown Ltd" and row["choice"] == ""
    assert "no open invoice is named" in row["reason"]
    assert blobs(bank, bank.archive) == [b for b in blobs(bank, bank.archive) if b.startswith("processed/")]


def test_the_books_are_read_through_every_page(bank, sandbox):
    """Business Central pages API answers server-side (@odata.nextLink); an invoice on the last page
    must be found as surely as one on the first."""
    sandbox.page_size = 2
    name = upload(bank, f"{C}/{J}/statement.xml", camt("053", ENTRIES[:2]))
    deliver(bank, name)
    assert sorted(p["appliesToInvoiceNumber"] for p in sandbox.payments()) == [
        "SI-104711",
        "SI-104712",
        "SI-104714",
    ]
    pages = [r.path for r in sandbox.requests if "salesInvoices" in r.path]
    assert len(pages) >= 3 and any("skiptoken" in p.lower() for p in pages)


def test_an_invoice_is_never_applied_twice(bank, sandbox):
    """A customer paying one invoice twice (two credits in one statement, or a credit in a later statement
    before the journal is posted): Business Central could post only the first, so the second is reviewed."""
    twice = [ENTRIES[0], {**ENTRIES[0], "ref": "R-1b"}]
    name = upload(bank, f"{C}/{J}/statement.xml", camt("053", twice))
    deliver(bank, name)
    later = upload(
        bank, f"{C}/{J}/next-day.xml", camt("053", [{**ENTRIES[0], "ref": "R-1c"}], statement="S2")
    )
    deliver(bank, later)
    assert [p["appliesToInvoiceNumber"] for p in sandbox.payments()] == ["SI-104711"]
    for source in (name, later):
        [row] = review_rows(bank, report_of(bank, source))
        assert "SI-104711 is named but already paid in full by payment lines in the journal" in row["reason"]


def test_the_report_keeps_amounts_exact(bank):
    name = upload(bank, f"{C}/{J}/statement.xml", camt("053", ENTRIES))
    deliver(bank, name)
    [report_name] = [b for b in blobs(bank, bank.reports) if b.endswith(".report.json")]
    text = read(bank, bank.reports, report_name).decode()
    assert '"sum":392.00' in text.replace(" ", "")
    assert json.loads(text, parse_float=Decimal)["statements"][0]["credits"]["sum"] == Decimal("392.00")


def test_the_same_statement_dropped_twice_posts_every_credit_once(bank, sandbox):
    data = camt("053", ENTRIES)
    deliver(bank, upload(bank, f"{C}/{J}/statement.xml", data))
    assert len(sandbox.payments()) == 3
    name = upload(bank, f"{C}/{J}/statement-again.xml", data)
    deliver(bank, name)
    assert len(sandbox.payments()) == 3
    report = report_of(bank, name)
    [summary] = report["statements"]
    assert summary["postedBefore"]["count"] == 2 and summary["applied"]["count"] == 0
    # Both credits posted before, one record each as the register has them (R-2 with the ids of its two
    # lines); the debit, the pending entry.
    assert report["totals"]["skipped"] == 4
    r2 = next(r for r in report["records"] if r.get("amount") == 200 and r["outcome"] == "skipped")
    assert len(r2["id"].split()) == 2 and r2["note"].startswith(f"posted before (first read from {C}/{J}/statement.xml")
    assert report["totals"]["review"] == 1  # R-3 still waits for the operator


def test_a_notification_then_the_statement_covering_it_posts_once(bank, sandbox):
    intraday = camt("054", ENTRIES[:1], version="02", statement="NTF-1")
    deliver(bank, upload(bank, f"{C}/{J}/intraday.xml", intraday))
    assert len(sandbox.payments()) == 1
    name = upload(bank, f"{C}/{J}/day.xml", camt("053", ENTRIES))
    deliver(bank, name)
    assert sorted(p["amount"] for p in sandbox.payments()) == [Decimal(-150), Decimal(-150), Decimal(-50)]
    summary = report_of(bank, name)["statements"][0]
    assert summary["postedBefore"] == {"count": 1, "sum": 150.0}
    assert summary["applied"] == {"count": 1, "sum": 200.0}


def test_after_the_journal_is_posted_a_second_reading_does_not_ask_again(bank, sandbox):
    deliver(bank, upload(bank, f"{C}/{J}/statement.xml", camt("053", ENTRIES[:1])))
    sandbox.post_journal()  # the accountant posts: SI-104711 is Paid, the line leaves the journal
    assert sandbox.invoice("SI-104711")["status"] == "Paid"
    name = upload(bank, f"{C}/{J}/again.xml", camt("053", ENTRIES[:1]))
    deliver(bank, name)
    report = report_of(bank, name)
    assert report["totals"] == {"records": 1, "skipped": 1}
    assert "reviewFile" not in report
    assert sandbox.payments() == []


def test_review_choices_dropped_back_are_posted_once(bank, sandbox):
    entries = [
        {"ref": "R-7", "amount": "60.00", "payer": "Fabrikam Lighting GmbH", "text": "SI-104712 part"},
        {"ref": "R-8", "amount": "5.00", "payer": "Someone", "text": "?"},
        {"ref": "R-9", "amount": "7.00", "payer": "Someone", "text": "?"},
        {"ref": "R-10", "amount": "8.00", "payer": "Someone", "text": "?"},
    ]
    first = upload(bank, f"{C}/{J}/statement.xml", camt("053", entries))
    deliver(bank, first)
    assert sandbox.payments() == []
    rows = review_rows(bank, report_of(bank, first))
    assert [r["amount"] for r in rows] == ["60.00", "5.00", "7.00", "8.00"]
    assert "SI-104712 (remaining 50.00)" in rows[0]["candidates"]
    choices = ["SI-104712", "account 50000", "skip", ""]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row, choice in zip(rows, choices, strict=True):
        writer.writerow({**row, "choice": choice, "amount": "999999.00"})  # an edited amount is not used
    back = upload(bank, f"{C}/{J}/review-done.csv", out.getvalue())
    deliver(bank, back)
    posted = sorted(
        ((p.get("appliesToInvoiceNumber"), str(p["amount"])) for p in sandbox.payments()), key=str
    )
    assert posted == [("", "-5.00"), ("SI-104712", "-60.00")]
    report = report_of(bank, back)
    assert report["totals"] == {"records": 4, "created": 2, "skipped": 1, "review": 1}
    [pending] = review_rows(bank, report)
    assert pending["amount"] == "8.00" and pending["reason"] == "no choice made yet"
    # The same choices dropped again, and the statement itself again: nothing more is posted, and only
    # the credit without a choice is asked again.
    deliver(bank, upload(bank, f"{C}/{J}/review-done-again.csv", out.getvalue()))
    again = upload(bank, f"{C}/{J}/statement-again.xml", camt("053", entries))
    deliver(bank, again)
    assert len(sandbox.payments()) == 2
    assert [r["amount"] for r in review_rows(bank, report_of(bank, again))] == ["8.00"]
    assert report_of(bank, again)["statements"][0]["skipped"] == {
        "the operator chose skip": {"count": 1, "sum": 7.0}
    }


def test_a_wrong_choice_is_explained_and_asked_again(bank, sandbox):
    first = upload(bank, f"{C}/{J}/statement.xml", camt("053", [ENTRIES[2]]))
    deliver(bank, first)
    [row] = review_rows(bank, report_of(bank, first))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerow({**row, "choice": "SI-999999"})
    back = upload(bank, f"{C}/{J}/review.csv", out.getvalue())
    deliver(bank, back)
    assert sandbox.payments() == []
    [again] = review_rows(bank, report_of(bank, back))
    assert "the choice 'SI-999999' cannot be used: no open invoice 'SI-999999'" in again["reason"]


def test_the_payer_map_in_storage_names_the_customer(bank, sandbox, azure_env):
    config = bank.settings["PAYMENTS_INBOX_CONTAINER"].replace("inbox", "config")
    azure_env(
        "businesscentral", **bank.settings, PAYMENTS_CONFIG_CONTAINER=config, PAYMENTS_BANK_ON_ACCOUNT="true"
    )
    bank.service.create_container(config)
    bank.service.get_blob_client(config, "payers.csv").upload_blob(
        b"iban,customerNumber\nNL91 ABNA 0417 1643 00,50000\nXX00 1234 5678 9,50000\n"
    )
    entries = [
        {"ref": "R-20", "amount": "33.33", "payer": "F. L. GmbH", "iban": PAYER_IBAN, "text": "advance"}
    ]
    name = upload(bank, f"{C}/{J}/statement.xml", camt("053", entries))
    deliver(bank, name)
    [payment] = sandbox.payments()
    assert payment["customerNumber"] == "50000" and str(payment["amount"]) == "-33.33"
    assert "appliesToInvoiceNumber" not in payment or not payment["appliesToInvoiceNumber"]
    report = report_of(bank, name)
    assert report["statements"][0]["onAccount"] == {"count": 1, "sum": 33.33}
    assert report["notes"] == ["payers.csv line 3: 'XX00…6789' is not a valid IBAN; the row is ignored"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'<?xml version="1.0"?><html><body>not a statement</body></html>', "not an ISO 20022 camt"),
        (
            b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToC',
            "XML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&b;</Document>',
            "XML",
        ),
    ],
)
def test_a_broken_statement_is_a_file_level_error(bank, sandbox, content, says):
    name = upload(bank, f"{C}/{J}/broken.xml", content)
    deliver(bank, name)
    report = report_of(bank, name)
    assert report["status"] == "failed"
    assert says in report["error"] and report["error"].endswith("nothing in this file was posted")
    assert sandbox.payments() == []


def test_a_statement_through_the_work_queue_as_deployed(azure_env, azurite, sandbox):
    """The deployed relay hands payments to the work queue; the queue function posts them in $batch."""
    from tests.support.filedrop import configure_storage
    from tests.support.work import queue_host, queue_settings

    seed(sandbox)
    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_BATCH_SIZE="100"))
    data = camt("053", ENTRIES)
    with queue_host(env):
        deliver(env, upload(env, f"{C}/{J}/statement.xml", data))
        deliver(env, upload(env, f"{C}/{J}/statement-again.xml", data))
    assert len(sandbox.payments()) == 3
    first, second = report_of(env, f"{C}/{J}/statement.xml"), report_of(env, f"{C}/{J}/statement-again.xml")
    assert first["totals"] == {"records": 6, "created": 3, "review": 1, "skipped": 2}
    assert second["statements"][0]["postedBefore"]["count"] == 2
    assert second["totals"] == {"records": 5, "review": 1, "skipped": 4}


def test_a_statement_broken_after_its_first_entries_posts_and_reports_none_of_them(bank, sandbox):
    whole = camt("053", ENTRIES)
    name = upload(bank, f"{C}/{J}/cut.xml", whole[: whole.index(b"R-3")])  # cut off in the third entry
    deliver(bank, name)
    report = report_of(bank, name)
    assert report["status"] == "failed" and "XML" in report["error"]
    assert report["records"] == [] and "reviewFile" not in report
    assert sandbox.payments() == []


def _batched(bank, azure_env, **extra):
    """The relay sending $batch requests, so a test can aim a fault at one line of a credit."""
    azure_env(
        "businesscentral", **bank.settings, PAYMENTS_BATCH_SIZE="100", PAYMENTS_MAX_ATTEMPTS="1", **extra
    )


def _choose(bank, report, choices: dict[str, str]) -> str:
    """The review file of `report` with the operator's choices by amount, written back as CSV text."""
    rows = review_rows(bank, report)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "choice": choices.get(row["amount"], "")})
    return out.getvalue()


def test_a_credit_posted_in_part_is_completed_by_the_next_reading(bank, sandbox, azure_env):
    """R-2 pays two invoices: its second line meets a 503 and is not posted. The same statement dropped
    again posts that line (the plan the first reading fixed), never the first one again."""
    _batched(bank, azure_env)
    data = camt("053", [ENTRIES[1]])
    sandbox.inject_inner("none")
    sandbox.inject_inner("503")
    first = upload(bank, f"{C}/{J}/statement.xml", data)
    deliver(bank, first)
    assert [(p["appliesToInvoiceNumber"], p["amount"]) for p in sandbox.payments()] == [
        ("SI-104712", Decimal(-50))
    ]
    report = report_of(bank, first)
    assert report["status"] == "failed"
    assert [r["outcome"] for r in report["records"]] == ["created", "unavailable"]
    again = upload(bank, f"{C}/{J}/again.xml", data)
    deliver(bank, again)
    assert sorted((p["appliesToInvoiceNumber"], p["amount"]) for p in sandbox.payments()) == [
        ("SI-104712", Decimal(-50)),
        ("SI-104714", Decimal("-150.00")),
    ]
    report = report_of(bank, again)
    assert report["status"] == "processed"
    assert [r["outcome"] for r in report["records"]] == ["skipped", "created"]
    assert report["statements"][0]["applied"] == {"count": 1, "sum": 200.0}
    deliver(bank, upload(bank, f"{C}/{J}/third.xml", data))
    assert len(sandbox.payments()) == 2


def test_two_review_files_choosing_different_splits_post_the_first_one_only(bank, sandbox):
    """One credit in two review files (the camt.054's and the camt.053's): the first choice of several
    invoices fixes the credit's plan; a different split chosen in the other file posts nothing more."""
    sandbox.add_invoice("SI-104715", "50000", amount="100.00")
    sandbox.add_invoice("SI-104716", "50000", amount="100.00")
    credit = {"ref": "R-77", "amount": "200.00", "payer": "Someone", "text": "thanks"}
    notified = upload(bank, f"{C}/{J}/intraday.xml", camt("054", [credit], version="02"))
    deliver(bank, notified)
    day = upload(bank, f"{C}/{J}/day.xml", camt("053", [credit]))
    deliver(bank, day)
    one = _choose(bank, report_of(bank, notified), {"200.00": "SI-104715 SI-104716"})
    two = _choose(bank, report_of(bank, day), {"200.00": "SI-104711 SI-104712"})
    deliver(bank, upload(bank, f"{C}/{J}/one.csv", one))
    second = upload(bank, f"{C}/{J}/two.csv", two)
    deliver(bank, second)
    assert sorted(p["appliesToInvoiceNumber"] for p in sandbox.payments()) == ["SI-104715", "SI-104716"]
    [record] = report_of(bank, second)["records"]  # the credit, as the register has it: posted
    assert record["outcome"] == "skipped" and record["note"].startswith("posted before")


def test_a_credit_the_target_refused_can_be_decided_again(bank, sandbox, azure_env):
    """A refusal creates nothing: the credit goes to review with the target's message, and the operator's
    next choice for it is posted (not answered from the refusal the ledger kept)."""
    _batched(bank, azure_env)
    sandbox.inject_inner("400")
    first = upload(bank, f"{C}/{J}/statement.xml", camt("053", [ENTRIES[0]]))
    deliver(bank, first)
    assert sandbox.payments() == []
    report = report_of(bank, first)
    assert [r["outcome"] for r in report["records"]] == ["rejected"]
    [row] = review_rows(bank, report)
    assert row["reason"].startswith("Business Central refused it: Customer 50000 is blocked")
    back = upload(bank, f"{C}/{J}/review.csv", _choose(bank, report, {"150.00": "account 50000"}))
    deliver(bank, back)
    [payment] = sandbox.payments()
    assert payment["customerNumber"] == "50000" and not payment["appliesToInvoiceNumber"]
    assert payment["amount"] == Decimal("-150.00")
    assert report_of(bank, back)["totals"] == {"records": 1, "created": 1}


def test_a_review_choice_cannot_post_what_the_matcher_would_not(bank, sandbox):
    """A credit in another currency, and one for a blocked customer: an invoice chosen for them is
    refused with the reason, and they come back in the next review file."""
    sandbox.add_customer("60000", name="Alpine Ski House", blocked="All")
    sandbox.add_invoice("SI-600001", "60000", amount="20.00")
    usd = {"ref": "R-30", "amount": "150.00", "payer": "Fabrikam", "text": "SI-104711"}
    statement = camt("053", [usd, {"ref": "R-31", "amount": "20.00", "payer": "Alpine", "text": "SI-600001"}])
    statement = statement.replace(b'<Amt Ccy="EUR">150.00</Amt>', b'<Amt Ccy="USD">150.00</Amt>')
    first = upload(bank, f"{C}/{J}/statement.xml", statement)
    deliver(bank, first)
    reasons = [r["reason"] for r in review_rows(bank, report_of(bank, first))]
    assert "in USD" in reasons[0] and "blocked (All)" in reasons[1]
    back = upload(
        bank,
        f"{C}/{J}/review.csv",
        _choose(bank, report_of(bank, first), {"150.00": "SI-104711", "20.00": "SI-600001"}),
    )
    deliver(bank, back)
    assert sandbox.payments() == []
    again = [r["reason"] for r in review_rows(bank, report_of(bank, back))]
    assert "the credit is in USD; the journal posts in the company's currency EUR" in again[0]
    assert "customer 60000 is blocked (All)" in again[1]


def test_a_skip_chosen_before_holds_when_the_statement_later_matches(bank, sandbox):
    """The operator skipped a credit (say, a refund); the statement read again after an invoice of that
    amount appeared still posts nothing for it."""
    credit = {"ref": "R-40", "amount": "77.00", "payer": "Fabrikam Lighting GmbH", "text": "SI-104799"}
    first = upload(bank, f"{C}/{J}/statement.xml", camt("053", [credit]))
    deliver(bank, first)
    deliver(
        bank, upload(bank, f"{C}/{J}/review.csv", _choose(bank, report_of(bank, first), {"77.00": "skip"}))
    )
    sandbox.add_invoice("SI-104799", "50000", amount="77.00")
    again = upload(bank, f"{C}/{J}/again.xml", camt("053", [credit]))
    deliver(bank, again)
    assert sandbox.payments() == []
    assert report_of(bank, again)["records"][0]["reason"] == "the operator chose skip"


def test_against_graph_nothing_is_applied_and_the_report_says_why(drop, sandbox, azure_env):
    """Graph's financials salesInvoice has no remainingAmount: no invoice can be known to fit."""
    seed(sandbox)
    azure_env("graph", **drop.settings)
    name = upload(drop, f"{C}/{J}/statement.xml", camt("053", ENTRIES[:1]))
    deliver(drop, name)
    assert sandbox.payments() == []
    report = report_of(drop, name)
    assert report["totals"] == {"records": 1, "review": 1}
    assert any(
        "without remainingAmount (Microsoft Graph's financials API has none)" in n for n in report["notes"]
    )


def test_a_statement_read_into_one_journal_posts_nothing_in_another(bank, sandbox):
    """The register keeps credits per bank account, not per journal: the same statement under a second
    journal's folder reports each credit as posted before, in the first journal, and posts nothing."""
    other = sandbox.add_journal(name="BANK2")
    data = camt("053", ENTRIES[:1])
    deliver(bank, upload(bank, f"{C}/{J}/statement.xml", data))
    assert len(sandbox.payments()) == 1
    name = upload(bank, f"{C}/{other}/statement.xml", data)
    deliver(bank, name)
    assert sandbox.payments(journal_id=other) == []
    report = report_of(bank, name)
    assert report["status"] == "processed"
    [record] = report["records"]
    assert record["outcome"] == "skipped"
    first = f"{C}/{J}/statement.xml, statement 1, entry 1"
    assert record["note"] == f"posted before (first read from {first}, in journal {J})"
    assert record["id"] == sandbox.payments()[0]["id"]
