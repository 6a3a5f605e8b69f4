"""The file drop under hostile and careless files (issue 12): the blob function never raises; a file
problem is its report's error, a bad record is that record's error, the good records are posted, and
the file leaves the inbox for `failed/`. Time and memory per case: `bench/hostile.py`."""

from __future__ import annotations

import pytest

from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import blobs, deliver, report_of, upload
from tests.support.hostile import FILE_CASES, FileCase


@pytest.mark.parametrize("case", FILE_CASES, ids=[f"{c.category}: {c.name}" for c in FILE_CASES])
def test_hostile_file_gets_its_exact_report(drop, sandbox, case: FileCase) -> None:
    name = upload(drop, f"{C}/{J}/{case.file}", case.content)
    deliver(drop, name)  # never raises
    report = report_of(drop, name)
    assert report["status"] == "failed"
    if case.error is not None:
        assert case.error in report["error"] and report["error"].endswith("nothing in this file was posted")
        assert sandbox.requests == []
    else:
        got = sorted(
            (
                (r["location"], r["outcome"], " ".join(e["detail"] for e in r.get("errors", [])))
                for r in report["records"]
            ),
            key=lambda row: int(
                row[0].split()[1]
            ),  # "line 3", "item 0 (/0)": the report lists invalid ones first
        )
        assert [(loc, outcome) for loc, outcome, _ in got] == [
            (loc, outcome) for loc, outcome, _ in case.records
        ]
        for (_, _, said), (_, _, phrase) in zip(got, case.records, strict=True):
            assert phrase in said, said
        assert len(sandbox.payments()) == sum(1 for _, outcome, _ in case.records if outcome == "created")
    assert blobs(drop, drop.inbox) == []
    assert [b.split(f"/{J}/")[0] for b in blobs(drop, drop.archive)] == [f"failed/{C}"]
