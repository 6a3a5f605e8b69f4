"""File drops end to end: a file uploaded to the inbox in Azurite, the registered blob function
invoked as the Functions host invokes it, payments in the sandbox, a report and a failed-records CSV
in the reports container, and the file moved out of the inbox."""

from __future__ import annotations

import csv
import io
import json

import pytest
from azure.storage.blob import BlobLeaseClient

from payments.filedrop import FileBusy
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import amounts, blobs, deliver, failed_csv_of, read, report_of, upload
from tests.support.host import FUNCTIONS


def test_blob_function_is_registered_on_the_inbox_with_event_grid_source():
    [trigger] = FUNCTIONS["payment_file_drop"].get_bindings_dict()["bindings"]
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"
    assert trigger["path"] == "%PAYMENTS_INBOX_CONTAINER%/{name}"
    assert trigger["connection"] == "AzureWebJobsStorage"


CSV = "customerNumber,postingDate,documentNumber,amount\r\n10000,2026-11-20,D-1,-10.10\r\n20000,2026-11-20,D-2,-20.20\r\n"


@pytest.mark.parametrize(
    ("file", "content"),
    [
        ("pay.csv", CSV),
        ("pay.json", json.dumps({"customerNumber": "10000", "amount": "-10.10"})),
        (
            "pay-array.json",
            '[{"customerNumber": "10000", "amount": -10.10}, {"customerNumber": "20000", "amount": -20.20}]',
        ),
        (
            "pay-value.json",
            '{"value": [{"customerNumber": "10000", "amount": -10.10}, {"customerNumber": "20000", "amount": -20.20}]}',
        ),
        (
            "pay.ndjson",
            '{"customerNumber": "10000", "amount": -10.10}\n{"customerNumber": "20000", "amount": -20.20}\n',
        ),
        (
            "pay-no-extension",
            '{"customerNumber": "10000", "amount": -10.10}\n{"customerNumber": "20000", "amount": -20.20}\n',
        ),
    ],
)
def test_each_format_is_posted_reported_and_archived(drop, sandbox, file, content):
    name = upload(drop, f"{C}/{J}/{file}", content)
    deliver(drop, name)
    expected = ["-10.10"] if file == "pay.json" else ["-20.20", "-10.10"]  # sorted
    assert amounts(sandbox) == expected
    report = report_of(drop, name)
    assert report["status"] == "processed"
    assert report["totals"] == {"records": len(expected), "created": len(expected)}
    assert sorted(r["id"] for r in report["records"]) == sorted(p["id"] for p in sandbox.payments())
    assert report["companyId"] == C and report["journalId"] == J
    assert blobs(drop, drop.inbox) == []
    [archived] = blobs(drop, drop.archive)
    assert archived.startswith(f"processed/{name}.")
    assert read(drop, drop.archive, archived) == content.encode()
    assert not [b for b in blobs(drop, drop.reports) if b.endswith(".failed.csv")]


def test_csv_with_bom_and_semicolons_from_a_european_export(drop, sandbox):
    content = '\ufeffCustomerNumber;PostingDate;Amount;Description\r\n30000;2026-11-21;-1234.56;"Rent; November"\r\n'
    name = upload(drop, f"{C}/{J}/export.csv", content.encode("utf-8"))
    deliver(drop, name)
    [payment] = sandbox.payments()
    assert str(payment["amount"]) == "-1234.56" and payment["description"] == "Rent; November"
    assert report_of(drop, name)["records"][0]["location"] == "line 2"


def test_mixed_file_posts_the_good_reports_the_bad_and_offers_a_fixable_csv(drop, sandbox):
    content = (
        "customerNumber;documentNumber;amount;description\r\n"
        "10000;A-1;-5.00;good\r\n"
        "10000;A-2;-1.234,56;decimal comma\r\n"
        "99999;A-3;-7.00;unknown customer\r\n"
        '20000;A-4;-3.5;=HYPERLINK("http://evil")\r\n'
        "20000;A-5;-8.00;good too\r\n"
    )
    name = upload(drop, f"{C}/{J}/mixed.csv", content)
    deliver(drop, name)
    assert amounts(sandbox) == ["-8.00", "-5.00", "-3.5"]
    report = report_of(drop, name)
    assert report["status"] == "failed"
    assert list(report)[:5] == ["source", "processedAt", "companyId", "journalId", "status"]
    assert report["totals"] == {"records": 5, "created": 3, "invalid": 1, "rejected": 1}
    by_line = {r["location"]: r for r in report["records"]}
    assert by_line["line 3"]["outcome"] == "invalid"
    assert by_line["line 3"]["errors"][0]["pointer"] == "/amount"
    assert "decimal comma" in by_line["line 3"]["errors"][0]["detail"]
    assert by_line["line 4"]["outcome"] == "rejected"
    assert by_line["line 4"]["error"]["code"] == "Application_DialogException"
    assert by_line["line 5"]["outcome"] == "created" and by_line["line 5"]["id"]
    rows = failed_csv_of(drop, name)
    assert rows[0] == ["customerNumber", "documentNumber", "amount", "description", "error"]
    # Starting with "-" and not a plain number, the cell is guarded against formula injection (and
    # unguarded again when the file is dropped back).
    assert rows[1][:4] == ["10000", "A-2", "'-1.234,56", "decimal comma"]
    assert rows[1][4].startswith("/amount: '-1.234,56' uses a decimal comma")
    assert rows[2][:4] == ["99999", "A-3", "-7.00", "unknown customer"]
    assert rows[2][4] == 'Application_DialogException: The "customerNumber" does not match to a Customer.'
    assert len(rows) == 3
    [archived] = blobs(drop, drop.archive)
    assert archived.startswith(f"failed/{name}.")

    # The operator fixes the failed rows and drops the CSV again: the error column is ignored.
    fixed = io.StringIO()
    writer = csv.writer(fixed)
    writer.writerows(
        [rows[0], ["10000", "A-2", "-1234.56", "fixed", rows[1][4]], ["30000", "A-3", "-7.00", "fixed", ""]]
    )
    again = upload(drop, f"{C}/{J}/mixed-fixed.csv", fixed.getvalue())
    deliver(drop, again)
    assert report_of(drop, again)["totals"] == {"records": 2, "created": 2}
    assert amounts(sandbox) == ["-1234.56", "-8.00", "-7.00", "-5.00", "-3.5"]


def test_failed_csv_neutralises_formulas_but_not_numbers(drop, sandbox):
    content = 'customerNumber,amount,description\r\n99999,-12.50,"=1+2"\r\n99999,-12.5,"@SUM(A1)"\r\n'
    name = upload(drop, f"{C}/{J}/formulas.csv", content)
    deliver(drop, name)
    rows = failed_csv_of(drop, name)
    assert [r[:3] for r in rows[1:]] == [["99999", "-12.50", "'=1+2"], ["99999", "-12.5", "'@SUM(A1)"]]


def test_failed_json_records_keep_their_properties_as_columns(drop, sandbox):
    content = '[{"customerNumber": "10000", "amount": -1}, {"customerNumber": "10000", "ammount": -2, "comment": "x"}]'
    name = upload(drop, f"{C}/{J}/typo.json", content)
    deliver(drop, name)
    rows = failed_csv_of(drop, name)
    assert rows[0] == ["customerNumber", "comment", "ammount", "error"]
    assert rows[1][:3] == ["10000", "x", "-2"]
    assert "/ammount: is not a customerPayment property; did you mean 'amount'?" in rows[1][3]


def test_the_same_upload_delivered_twice_posts_once(drop, sandbox):
    name = upload(drop, f"{C}/{J}/twice.csv", CSV)
    deliver(drop, name)
    assert deliver(drop, name) is None  # the function returns normally: nothing left to do
    assert amounts(sandbox) == ["-20.20", "-10.10"]
    assert len([b for b in blobs(drop, drop.reports) if b.endswith(".report.json")]) == 1
    assert len(blobs(drop, drop.archive)) == 1


def test_a_delivery_while_another_worker_holds_the_file_is_retried_later(drop, sandbox):
    name = upload(drop, f"{C}/{J}/busy.csv", CSV)
    other = BlobLeaseClient(drop.service.get_blob_client(drop.inbox, name))
    other.acquire(lease_duration=15)
    with pytest.raises(FileBusy):
        deliver(drop, name)
    assert sandbox.requests == []
    other.release()
    deliver(drop, name)
    assert amounts(sandbox) == ["-20.20", "-10.10"]


def test_root_file_without_default_journal_is_rejected_with_a_report(drop, sandbox):
    name = upload(drop, "loose.csv", CSV)
    deliver(drop, name)
    report = report_of(drop, name)
    assert report["status"] == "failed"
    assert "PAYMENTS_DEFAULT_COMPANY_ID and PAYMENTS_DEFAULT_JOURNAL_ID" in report["error"]
    assert report["error"].endswith("nothing in this file was posted")
    assert sandbox.requests == []
    assert blobs(drop, drop.inbox) == [] and blobs(drop, drop.archive)[0].startswith("failed/loose.csv.")


def test_root_file_uses_the_default_company_and_journal(drop, sandbox, azure_env):
    azure_env("businesscentral", PAYMENTS_DEFAULT_COMPANY_ID=C, PAYMENTS_DEFAULT_JOURNAL_ID=J)
    name = upload(drop, "root.csv", CSV)
    deliver(drop, name)
    assert amounts(sandbox) == ["-20.20", "-10.10"]


@pytest.mark.parametrize(
    ("settings", "content", "message"),
    [
        (
            {"PAYMENTS_MAX_FILE_BYTES": "1024"},
            CSV + "10000,2026-11-20,D-3,-1.00\r\n" * 40,
            "over the limit of 1024",
        ),
        ({"PAYMENTS_MAX_FILE_RECORDS": "1"}, CSV, "more than 1 records"),
        ({}, "customerNumber,description,amount\r\n10000,caf\xe9,1\r\n".encode("latin-1"), "not UTF-8"),
        ({}, '[{"customerNumber": "10000", "amount": 1}, {"customerNumber": ', "not a JSON document"),
        ({}, "", "empty"),
    ],
)
def test_unreadable_or_oversize_files_post_nothing_and_are_moved_to_failed(
    drop, sandbox, azure_env, settings, content, message
):
    if settings:
        azure_env("businesscentral", **settings)
    ext = "json" if isinstance(content, str) and content.startswith("[") else "csv"
    name = upload(drop, f"{C}/{J}/bad.{ext}", content)
    deliver(drop, name)
    report = report_of(drop, name)
    assert report["status"] == "failed"
    assert message in report["error"]
    assert sandbox.requests == []
    assert blobs(drop, drop.inbox) == []
    assert blobs(drop, drop.archive)[0].startswith("failed/")


def test_an_amount_written_as_a_very_long_integer_is_reported_not_posted(drop, sandbox):
    # JSON integers have no size limit; the spool and the report carry the record beyond 64 bits, and
    # the amount is refused as beyond Business Central's AL Decimal range (REFERENCE 2), never cut.
    content = '[{"customerNumber": "10000", "amount": -123456789012345678901234567890}, {"customerNumber": "10000", "amount": -999999999999999}]'
    name = upload(drop, f"{C}/{J}/long.json", content)
    deliver(drop, name)
    assert [str(p["amount"]) for p in sandbox.payments()] == ["-999999999999999"]
    report = report_of(drop, name)
    assert report["totals"] == {"records": 2, "created": 1, "invalid": 1}
    [invalid] = [r for r in report["records"] if r["outcome"] == "invalid"]
    assert invalid["location"] == "item 0 (/0)"
    assert "beyond what Business Central can hold" in invalid["errors"][0]["detail"]
    assert failed_csv_of(drop, name)[1][:2] == ["10000", "-123456789012345678901234567890"]


def test_a_file_of_money_received_is_posted_as_credits_and_its_report_says_so(drop, sandbox, azure_env):
    azure_env("businesscentral", **drop.settings, PAYMENTS_AMOUNT_SIGN="positive")
    name = upload(drop, f"{C}/{J}/received.csv", CSV.replace(",-", ","))
    deliver(drop, name)
    assert amounts(sandbox) == ["-20.20", "-10.10"]
    report = report_of(drop, name)
    assert report["totals"] == {"records": 2, "created": 2}
    assert report["amounts"].startswith(
        "written as money received (PAYMENTS_AMOUNT_SIGN=positive) and sent negated"
    )
