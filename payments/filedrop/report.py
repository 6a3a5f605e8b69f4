"""A file drop's report: one line per record, spooled (not held in memory), its totals first, and a
CSV of the failed records in the input's own columns, safe to open in a spreadsheet and drop again."""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import IO, Any

from .. import codec
from ..errors import TargetError
from ..model import WRITABLE
from ..posting import Outcome
from ..readers import ERROR_COLUMN, Record, spooled_csv

SPOOL_MEMORY = 1024 * 1024  # temp files stay in memory up to this size, then go to disk


class Report:
    """Accumulates one line per record (spooled, not in memory) and the failed records for the CSV."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.entries: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.failed: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.columns: dict[str, None] = {}
        self.csv_header: list[str] | None = None
        self._first = True

    def add(self, location: str, outcome: str, record: Record | None, **detail: Any) -> None:
        self.totals[outcome] += 1
        entry = {
            "location": location,
            "outcome": outcome,
            **{k: v for k, v in detail.items() if v is not None},
        }
        self.entries.write((b"" if self._first else b",\n") + codec.dumpb(entry))
        self._first = False
        if outcome not in ("created", "skipped") and record is not None:
            self._add_failed(record, detail)

    def _add_failed(self, record: Record, detail: dict[str, Any]) -> None:
        if record.raw is not None:
            cells: dict[str, Any] = dict(record.raw)
            if self.csv_header is None:
                self.csv_header = list(record.raw)
        else:
            data = record.data if isinstance(record.data, dict) else {}
            cells = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
            for key in cells:
                self.columns.setdefault(key, None)
        cells[ERROR_COLUMN] = _one_line(detail)
        self.failed.write(codec.dumpb(cells) + b"\n")

    def failed_csv(self) -> IO[bytes] | None:
        """The failed records in the input's own columns plus `error`, safe to open in a spreadsheet."""
        if not self.failed.tell():
            return None
        if self.csv_header is not None:
            header = [h for h in self.csv_header if h.lower() != ERROR_COLUMN]
        else:
            header = [c for c in WRITABLE if c in self.columns] + [
                c for c in self.columns if c not in WRITABLE and c != ERROR_COLUMN
            ]
        columns = [*header, ERROR_COLUMN]
        self.failed.seek(0)
        rows = ([_cell(cells.get(name)) for name in columns] for cells in map(codec.loads, self.failed))
        return spooled_csv(columns, rows)

    def document(self, head: dict[str, Any]) -> IO[bytes]:
        """The report: the head (totals first) and then every record, streamed from the spool."""
        doc = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        head = {**head, "totals": {"records": sum(self.totals.values()), **dict(sorted(self.totals.items()))}}
        text = codec.dumps(head)
        doc.write(text[:-1].encode("utf-8") + b',"records":[\n')
        self.entries.seek(0)
        while chunk := self.entries.read(1 << 20):
            doc.write(chunk)
        doc.write(b"\n]}\n")
        doc.seek(0)
        return doc


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return codec.format_decimal(value) if hasattr(value, "as_tuple") else str(value)


def _one_line(detail: dict[str, Any]) -> str:
    if detail.get("errors"):
        return "; ".join(f"{e['pointer'] or '(record)'}: {e['detail']}" for e in detail["errors"])
    err = detail.get("error") or {}
    return f"{err.get('code') + ': ' if err.get('code') else ''}{err.get('message', '')}"


def outcome_detail(outcome: Outcome) -> dict[str, Any]:
    if outcome.ok and outcome.created is not None:
        return {
            "id": outcome.created.get("id"),
            "lineNumber": outcome.created.get("lineNumber"),
            "note": outcome.note,
        }
    exc: TargetError | None = outcome.error
    error = {
        "code": getattr(exc, "code", None),
        "status": exc.status if exc else None,
        "message": exc.message if exc else "",
        "clientRequestId": outcome.client_request_id,
        "attempted": outcome.attempted,
        "note": outcome.note,
    }
    return {"error": {k: v for k, v in error.items() if v is not None}}
