"""Every third-party bank statement sample in ../shared/samples/bank dropped into the inbox: each one
gets a report (a reading per statement, or one file-level error), never an unexpected failure, and
the report's credits are the readers' own."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from payments.bank import kind_of, reader_for
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import deliver, read, report_of, upload

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "bank"
FILES = (
    sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".xml", ".sta", ".bai2") and p.is_file())
    if SAMPLES.is_dir()
    else []
)


def test_the_samples_are_there():
    assert SAMPLES.is_dir(), f"the shared bank samples are missing: expected them at {SAMPLES}"
    assert len(FILES) >= 30


def _reading(path: Path) -> tuple[int, Decimal] | str:
    """What the readers make of a file: its credits' count and sum, or the file-level error."""
    data = path.read_bytes()
    kind = kind_of(data[:65536])
    if kind is None:
        return "not a statement"
    try:
        credits = [
            tx.amount or Decimal(0)
            for tx in reader_for(kind, io.BytesIO(data), path.name).transactions()
            if tx.skip_reason is None
        ]
    except Exception as exc:
        return str(exc)
    return len(credits), sum(credits, Decimal(0))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_dropped_into_the_inbox_gets_a_report(drop, sandbox, path):
    name = upload(drop, f"{C}/{J}/{path.name}", path.read_bytes())
    deliver(drop, name)
    report = report_of(drop, name)
    assert "unexpected error" not in report.get("error", "")
    reading = _reading(path)
    if isinstance(reading, str):
        assert report["status"] == "failed" and report["error"].startswith(reading.rstrip(".")[:40])
        return
    count, total = reading
    statements = report["statements"]
    assert sum(s["credits"]["count"] for s in statements) == count
    assert sum(Decimal(str(s["credits"]["sum"])) for s in statements) == total
    # Nothing here matches the sandbox's invoices: every credit waits for the operator (or could not be
    # posted as read), none is posted on a guess.
    assert sandbox.payments() == []


# Business Central counterparts of the German SEPA samples (mt940/betterplace): customers named as the
# payers are, and posted invoices whose numbers their remittance quotes ("TFNr 22 004", "TF20005",
# "Verwendungszweck 30030004"), one of them with a different amount than was paid.
SAMPLE_CUSTOMERS = {
    "K-1001": "Karl Kaufmann",
    "K-1002": "Quentin Quast",
    "K-1003": "Renate Richter",
    "K-1004": "Florian Frech",
    "K-1005": "Josef Jäger",
}
SAMPLE_INVOICES = [
    ("22004", "K-1001", "50990.05"),
    ("50050004", "K-1001", "154551.93"),
    ("21007", "K-1001", "50000.00"),  # paid 50990.05: the amount differs, so it is reviewed
    ("30030004", "K-1002", "154551.93"),
    ("20001", "K-1003", "15000.05"),
    ("TF-20005", "K-1003", "125004.88"),
    ("21005", "K-1004", "50990.05"),
    ("22001", "K-1005", "19990.05"),
]
BETTERPLACE = SAMPLES / "mt940" / "betterplace"


def test_the_german_sepa_samples_are_applied_to_their_invoices_and_posted_once(drop, sandbox):
    """The day's snippet, then the whole statement file that covers it: what the snippet posted is
    posted before, the rest of the file is applied where an invoice is sure, and nothing else."""
    sandbox.seed_receivables(
        [{"number": n, "name": name} for n, name in SAMPLE_CUSTOMERS.items()],
        [{"number": n, "customer_number": c, "amount": a} for n, c, a in SAMPLE_INVOICES],
    )
    snippet = upload(drop, f"{C}/{J}/sepa_snippet.sta", (BETTERPLACE / "sepa_snippet.sta").read_bytes())
    deliver(drop, snippet)
    first = {p["appliesToInvoiceNumber"]: p["amount"] for p in sandbox.payments()}
    assert first == {
        "22004": Decimal("-50990.05"),
        "30030004": Decimal("-154551.93"),
        "50050004": Decimal("-154551.93"),
        "20001": Decimal("-15000.05"),
        "TF-20005": Decimal("-125004.88"),
    }
    report = report_of(drop, snippet)
    assert sum(s["applied"]["count"] for s in report["statements"]) == 5
    assert sum(s["review"]["count"] for s in report["statements"]) == 3  # returns of our own transfers
    whole = upload(drop, f"{C}/{J}/sepa_mt9401.sta", (BETTERPLACE / "sepa_mt9401.sta").read_bytes())
    deliver(drop, whole)
    payments = sandbox.payments()
    assert sorted(p["appliesToInvoiceNumber"] for p in payments) == sorted([*first, "21005", "22001"])
    report = report_of(drop, whole)
    assert sum(s["postedBefore"]["count"] for s in report["statements"]) == 5
    assert sum(s["applied"]["count"] for s in report["statements"]) == 2
    review = csv.DictReader(
        io.StringIO(read(drop, drop.reports, report["reviewFile"].split("/", 1)[1]).decode("utf-8-sig"))
    )
    [row] = [r for r in review if "21007" in r["text"]]
    assert row["amount"] == "50990.05" and row["payer"] == "Karl Kaufmann"
    assert row["candidates"].startswith(
        "21007 (remaining 50000.00), customer K-1001 Karl Kaufmann: medium — document number in the remittance; "
        "amount differs (remaining 50000.00)"
    )


def test_the_german_sepa_samples_read_again_elsewhere_or_a_month_later_post_nothing_more(drop, sandbox):
    """The register keeps each credit per bank account (issue 24): the whole statement dropped under a
    second journal's folder, and again after the ledger has forgotten its keys (and the journal was
    posted), reports the credits as posted before and posts nothing."""
    from datetime import UTC, datetime, timedelta

    from payments.ledger import Ledger, TableLedgerStore

    sandbox.seed_receivables(
        [{"number": n, "name": name} for n, name in SAMPLE_CUSTOMERS.items()],
        [{"number": n, "customer_number": c, "amount": a} for n, c, a in SAMPLE_INVOICES],
    )
    data = (BETTERPLACE / "sepa_mt9401.sta").read_bytes()
    deliver(drop, upload(drop, f"{C}/{J}/sepa_mt9401.sta", data))
    posted = len(sandbox.payments())
    assert posted == 7
    other = sandbox.add_journal(name="BANK2")
    elsewhere = upload(drop, f"{C}/{other}/sepa_mt9401.sta", data)
    deliver(drop, elsewhere)
    assert sandbox.payments(journal_id=other) == []
    assert sum(s["postedBefore"]["count"] for s in report_of(drop, elsewhere)["statements"]) == 7
    later = datetime.now(UTC) + timedelta(days=31)
    assert Ledger(TableLedgerStore(drop.table), clock=lambda: later).purge() == 7
    sandbox.post_journal()
    again = upload(drop, f"{C}/{J}/sepa_mt9401-again.sta", data)
    deliver(drop, again)
    assert sandbox.payments() == []  # posting emptied the journal; nothing new came
    assert sum(s["postedBefore"]["count"] for s in report_of(drop, again)["statements"]) == 7
