"""The command line as a user runs it: a real subprocess, real files, the sandbox it starts itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PAYMENTS_", "IDENTITY_", "AZURE_", "AzureWebJobsStorage"))
    }
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "payments", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_reports_every_invalid_record_with_its_location():
    result = run("validate", "samples/payments-with-errors.csv")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["line", "2", "valid"] for line in lines)
    assert any("line 3" in line and "/amount: '-1.234,56' uses a decimal comma" in line for line in lines), (
        result.stdout
    )
    assert any(
        "line 4" in line
        and "/postingDate: '2026-11-31' is not a calendar date" in line
        and "3 decimal places" in line
        for line in lines
    )
    assert "  invalid            2" in result.stdout and "  total              4" in result.stdout


def test_validate_clean_file_exits_zero():
    result = run("validate", "samples/payments.csv")
    assert result.returncode == 0, result.stdout + result.stderr


def test_post_to_the_sandbox_prints_created_ids_and_a_summary():
    result = run("post", "samples/payments.csv", "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "sandbox (development only)" in result.stderr
    created = [
        line
        for line in result.stdout.splitlines()
        if re.match(r"\s+line \d+\s+created\s+id [0-9a-f-]{36} ", line)
    ]
    assert len(created) == 4
    assert "amount -999999999999999.99" in result.stdout
    assert "  created            4" in result.stdout


def test_post_with_failures_exits_non_zero_and_explains_each(tmp_path):
    result = run("post", "samples/payments-with-errors.csv", "--sandbox", "--target", "businesscentral")
    assert result.returncode == 1
    assert 'Application_DialogException: The "customerNumber" does not match to a Customer.' in result.stdout
    counts = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[-5:] if line.strip()}
    assert counts == {"outcome": "records", "created": "1", "invalid": "2", "rejected": "1", "total": "4"}


def test_post_accepts_every_json_shape(tmp_path):
    record = {"customerNumber": "20000", "amount": -3.10}
    files = {
        "one.json": json.dumps(record),
        "many.json": json.dumps([record, record]),
        "wrapped.json": json.dumps({"value": [record]}),
        "lines.ndjson": "\n".join(json.dumps(record) for _ in range(3)) + "\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace("-3.1", "-3.10"))
        result = run("post", str(tmp_path / name), "--sandbox")
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert "amount -3.10" in result.stdout


def test_progress_is_shown_for_large_files(tmp_path):
    path = tmp_path / "big.ndjson"
    path.write_text(
        "".join(json.dumps({"customerNumber": "10000", "amount": f"-{i}.01"}) + "\n" for i in range(1, 402))
    )
    result = run("post", str(path), "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "posted 401/401" in result.stderr
    assert "(401 successful records not listed)" not in result.stdout  # no failures: nothing listed at all
    assert "  created          401" in result.stdout


def test_unreadable_file_is_exit_code_two(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{")
    result = run("validate", str(path))
    assert result.returncode == 2
    assert "not a JSON document" in result.stderr
    assert "Traceback" not in result.stderr


def test_post_requires_company_and_journal_without_sandbox(tmp_path):
    result = run("post", "samples/payments.csv")
    assert result.returncode == 2
    assert "--company and --journal are required" in result.stderr


def test_post_to_a_real_target_without_a_ledger_is_refused_unless_duplicates_are_accepted(sandbox):
    """Without a ledger nothing stops a second run of the same file from creating every payment again."""
    from sandbox import SANDBOX_COMPANY_ID, SANDBOX_JOURNAL_ID, SANDBOX_TOKEN_HEADER

    target = {
        "PAYMENTS_TARGET": "businesscentral",
        "PAYMENTS_API_BASE_URL": sandbox.bc_base_url,
        "IDENTITY_ENDPOINT": sandbox.identity_endpoint,
        "IDENTITY_HEADER": SANDBOX_TOKEN_HEADER,
    }
    where = ("--company", SANDBOX_COMPANY_ID, "--journal", SANDBOX_JOURNAL_ID)
    refused = run("post", "samples/payments.csv", *where, env_extra=target)
    assert refused.returncode == 2
    assert "no ledger is configured" in refused.stderr and "--allow-duplicates" in refused.stderr
    assert sandbox.requests == [] and sandbox.token_requests == []
    accepted = run("post", "samples/payments.csv", *where, "--allow-duplicates", env_extra=target)
    assert accepted.returncode == 0, accepted.stderr
    assert "posting this file again creates every payment again" in accepted.stderr
    assert len(sandbox.payments()) == 4


def test_settings_are_validated_at_start_up():
    result = run("validate", "samples/payments.csv", env_extra={"PAYMENTS_AMOUNT_DECIMALS": "two"})
    assert result.returncode == 2
    assert "PAYMENTS_AMOUNT_DECIMALS: Input should be a valid integer" in result.stderr


def test_local_settings_example_matches_the_sandbox_and_holds_no_secret():
    from sandbox import SANDBOX_TOKEN_HEADER

    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert values["IDENTITY_HEADER"] == SANDBOX_TOKEN_HEADER
    assert values["PAYMENTS_API_BASE_URL"].startswith("http://127.0.0.1:")
    assert (
        values["PAYMENTS_INBOX_CONTAINER"] == "payments-inbox"
    )  # the trigger path %PAYMENTS_INBOX_CONTAINER% needs it
    assert not any(word in key.upper() for key in values for word in ("SECRET", "PASSWORD", "KEY"))


def test_money_received_is_posted_negated_and_the_run_says_so(tmp_path):
    path = tmp_path / "received.csv"
    path.write_text("customerNumber,documentNumber,amount\r\n10000,R-1,25.00\r\n")
    result = run("post", str(path), "--sandbox", env_extra={"PAYMENTS_AMOUNT_SIGN": "positive"})
    assert result.returncode == 0, result.stderr
    assert "amounts written as money received were sent negated (PAYMENTS_AMOUNT_SIGN)" in result.stdout
    assert "amount -25.00" in result.stdout


def test_validate_reads_a_bank_statement_offline_and_ties_it_to_its_totals(tmp_path, capsys):
    """The operator's check before dropping a statement: what the relay reads of it, nothing posted."""
    from payments.cli import main

    camt = tmp_path / "statement.txt"  # detected by content, whatever its name
    camt.write_bytes(
        b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        b"<GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-30T00:00:00</CreDtTm></GrpHdr><Stmt><Id>S-1</Id>"
        b"<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        b"<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy='EUR'>100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
        b"<Dt><Dt>2026-11-30</Dt></Dt></Bal>"
        b"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy='EUR'>130.10</Amt><CdtDbtInd>CRDT</CdtDbtInd>"
        b"<Dt><Dt>2026-11-30</Dt></Dt></Bal>"
        b"<Ntry><Amt Ccy='EUR'>40.10</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts></Ntry>"
        b"<Ntry><Amt Ccy='EUR'>10.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts></Ntry>"
        b"</Stmt></BkToCstmrStmt></Document>"
    )
    assert main(["validate", str(camt)]) == 0
    out = capsys.readouterr().out
    assert "camt.053.001.02, 1 statement(s)" in out
    assert "account DE89…3000 EUR: 2 entries, 1 credits summing to 40.10" in out
    assert "skipped (debit): 1" in out
    assert "matches the closing balance 130.10" in out
