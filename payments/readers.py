"""Payment files: JSON object, JSON array, `{"value": [...]}`, NDJSON or CSV, read record by record.

Each record keeps where it came from (a line or an index) so that every report can point a
person at the exact place to fix. CSV cells stay text; the model decides what they mean.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from . import codec
from .model import KNOWN

Format = Literal["json", "ndjson", "csv"]
_BY_LOWER = {name.lower(): name for name in KNOWN}


class InputError(ValueError):
    """The file as a whole cannot be read (encoding, syntax of a single JSON document, CSV header)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a file: its data, or why it could not be parsed, and where it stands."""

    location: str  # for people: "line 7", "item 3"
    data: Any = None
    error: str | None = None  # set when the record itself is unreadable (a bad NDJSON line)
    from_text: bool = False  # CSV: every cell is a string


def detect_format(name: str, head: bytes) -> Format:
    """Decide the format from the file name, or failing that from its first bytes."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if lower.endswith(".json"):
        return "json"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)
        # One object per line means NDJSON; an object spread over lines is a JSON document.
        return "ndjson" if len(first) > 1 and first[1].lstrip().startswith(b"{") else "json"
    return "csv"


def read_file(path: str | Path) -> Iterator[Record]:
    path = Path(path)
    with path.open("rb") as stream:
        yield from read_stream(stream, path.name)


def read_stream(stream: BinaryIO, name: str) -> Iterator[Record]:
    head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""  # type: ignore[attr-defined]
    if not head:
        data = stream.read()
        head, stream = data[:4096], io.BytesIO(data)
    fmt = detect_format(name, head)
    if fmt == "csv":
        yield from _csv_records(stream)
    elif fmt == "ndjson":
        yield from _ndjson_records(stream)
    else:
        yield from _json_records(stream.read())


def _json_records(raw: bytes) -> Iterator[Record]:
    try:
        data = codec.loads(raw)
    except codec.JsonSyntaxError as exc:
        raise InputError(f"not a JSON document: {exc}") from None
    if isinstance(data, dict) and "value" in data and set(data) <= {"value", "@odata.context"}:
        items, prefix = data["value"], "/value"
        if not isinstance(items, list):
            raise InputError('"value" must be an array of customerPayment objects')
    elif isinstance(data, list):
        items, prefix = data, ""
    else:
        yield Record("object", data)
        return
    for index, item in enumerate(items):
        yield Record(f"item {index} ({prefix}/{index})", item)


def _ndjson_records(stream: BinaryIO) -> Iterator[Record]:
    for number, line in enumerate(stream, start=1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.strip():
            continue
        try:
            yield Record(f"line {number}", codec.loads(line))
        except codec.JsonSyntaxError as exc:
            yield Record(f"line {number}", error=f"not valid JSON: {exc}")


def _header(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for column, raw in enumerate(names, start=1):
        name = raw.strip()
        canonical = _BY_LOWER.get(name.lower(), name)
        if not name:
            raise InputError(f"CSV header: column {column} has no name")
        if canonical in seen:
            raise InputError(f"CSV header: column {column} repeats {canonical!r} (column {seen[canonical]})")
        seen[canonical] = column
        out.append(canonical)
    return out


def _csv_records(stream: BinaryIO) -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        first = text.readline()
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason} at byte {exc.start} of the header") from None
    if not first.strip():
        raise InputError("the CSV file is empty: expected a header row of property names")
    try:
        dialect: Any = csv.Sniffer().sniff(first, delimiters=",;")
    except csv.Error:
        dialect = csv.excel
    header = _header(next(csv.reader([first], dialect)))
    reader = csv.reader(text, dialect)
    line = 1
    try:
        for row in reader:
            start, line = line + 1, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            where = f"line {start}"
            if len(row) > len(header):
                yield Record(where, error=f"has {len(row)} cells but the header names {len(header)} columns")
                continue
            data = {name: cell.strip() for name, cell in zip(header, row, strict=False) if cell.strip()}
            yield Record(where, data, from_text=True)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text after line {line}: {exc.reason}") from None
    except csv.Error as exc:
        raise InputError(f"CSV syntax error at line {reader.line_num + 1}: {exc}") from None
