"""Every third-party bank statement sample in ../shared/samples/bank dropped into the inbox: each one
gets a report (a reading per statement, or one file-level error), never an unexpected failure, and
the report's credits are the readers' own."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from payments.bank import kind_of, reader_for
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import deliver, report_of, upload

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
    import io

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
