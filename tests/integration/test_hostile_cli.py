"""The command line under hostile and careless files (issue 12): a message and exit 2 for a file it
cannot read, exit 1 with each bad record named, never a traceback, and nothing it echoes (file names,
header cells, values) reaches the terminal as a control character."""

from __future__ import annotations

import io

import pytest

from payments.cli import main
from tests.integration.test_cli import run
from tests.support.hostile import FILE_CASES, FileCase


@pytest.mark.parametrize("case", FILE_CASES, ids=[f"{c.category}: {c.name}" for c in FILE_CASES])
def test_validate_answers_every_hostile_file_with_a_message_and_its_exit_code(
    tmp_path, capsys, monkeypatch, case: FileCase
) -> None:
    for name in ("AzureWebJobsStorage", "PAYMENTS_AMOUNT_SIGN"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / case.file
    path.write_bytes(case.content)
    out = io.StringIO()
    code = main(["validate", str(path)], out)
    printed, err = out.getvalue(), capsys.readouterr().err
    if case.error is not None:
        assert code == 2
        assert err.startswith(f"error: {path}: ") and case.error in err
    else:
        assert code == 1
        for location, outcome, phrase in case.records:
            [line] = [ln for ln in printed.splitlines() if ln.strip().startswith(location + " ")]
            assert ("invalid" if outcome == "invalid" else "valid") in line and phrase in line
    assert "Traceback" not in printed + err
    assert not any(ord(c) < 0x20 and c not in "\n" for c in printed + err)  # nothing raw reaches the terminal


def test_file_names_and_header_cells_are_echoed_escaped(tmp_path) -> None:
    path = tmp_path / "pay\x1b]0;owned\x07.csv"
    path.write_bytes(b"customerNumber,\x1b[31mamount\n10000,-1\n")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "pay\\x1b]0;owned\\x07.csv: 1 records" in result.stdout
    assert "/\\x1b[31mamount: is not a customerPayment property" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p, "No such file or directory"),  # never created
        (lambda p: (p.mkdir(), p)[1], "Is a directory"),
    ],
    ids=["missing", "a directory"],
)
def test_a_path_that_is_not_a_readable_file_is_exit_two_with_a_message(tmp_path, make, says) -> None:
    path = make(tmp_path / "payments.csv")
    result = run("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and says in result.stderr
    assert "Traceback" not in result.stderr
