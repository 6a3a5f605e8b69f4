"""Payment files: JSON object, JSON array, `{"value": [...]}`, NDJSON or CSV, read record by record.

Each record keeps where it came from (a line or an index) so that every report can point a
person at the exact place to fix. CSV cells stay text; the model decides what they mean.

Longer than 400 lines: the five layouts share one record type, one way of saying where a record is and
one set of refusals (size, encoding, nesting), which a split by format would copy.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from . import codec
from .errors import InputError
from .model import KNOWN, Checked, FieldError, Rules, check

_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")

Format = Literal["json", "ndjson", "csv"]
# Bounds that refuse absurd files before they cost seconds or hundreds of MB (a payment record is under
# 2 KB; Business Central's longest property holds 250 characters).
MAX_LINE_CHARS = 64 * 1024  # one CSV row or NDJSON line
MAX_COLUMNS = 64  # CSV columns
NO_RECORDS = "the file holds no payment records"  # an empty file is an error wherever it is read
ERROR_COLUMN = "error"  # added to failed-record CSVs; ignored when such a file is dropped again
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value: str) -> str:
    """Make a cell inert in spreadsheets (CSV formula injection), leaving plain numbers alone."""
    if value.startswith(FORMULA_START) and not _DECIMAL.fullmatch(value):
        return "'" + value
    return value


def delimiter_of(text: str) -> str:
    """`;` or `,`: whichever the first line uses more (spreadsheets in many locales write `;`)."""
    first = text.split("\n", 1)[0]
    return ";" if first.count(";") > first.count(",") else ","


def spooled_csv(columns: list[str], rows: Iterator[list[str]], *, bom: bool = False) -> IO[bytes]:
    """A CSV for people to open in a spreadsheet and drop back: cells made inert (guard_cell), CRLF
    lines, spooled to disk past 1 MiB, rewound for reading. A BOM makes spreadsheets read it as UTF-8."""
    out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
    if bom:
        out.write(codecs.BOM_UTF8)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([guard_cell(cell) for cell in row])
    text.detach()
    out.seek(0)
    return out


def _unguard(value: str) -> str:
    # Undo guard_cell for a fixed failed-records file dropped again.
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


_BY_LOWER = {name.lower(): name for name in KNOWN}


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a file: its data, or why it could not be parsed, and where it stands."""

    location: str  # for people: "line 7", "item 3"
    data: Any = None
    error: str | None = None  # set when the record itself is unreadable (a bad NDJSON line)
    from_text: bool = False  # CSV: every cell is a string
    raw: dict[str, str] | None = None  # CSV: the row's cells under the file's own header names


def check_record(record: Record, rules: Rules, text_rules: Rules) -> Checked:
    """Validate one record of a file: CSV cells under `text_rules` (text may stand for numbers there),
    an unreadable record as the reason it could not be read."""
    if record.error is not None:
        return Checked(None, [FieldError("", record.error)])
    return check(record.data, text_rules if record.from_text else rules)


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
        yield from _json_records(stream)


class _Builder:
    """Builds values from ijson events with the same rules as `codec.loads`: exact decimals, no
    duplicate keys, bounded numbers and nesting. ijson lets a JSON array of any length be read one
    element at a time."""

    def __init__(self, events: Iterator[tuple[str, Any]]):
        self.events = events
        self.oversize = 0  # the longest text over MAX_LINE_CHARS in the record being built (dropped)

    def record(self, location: str, event: str, value: Any) -> Record:
        return self.finish(location, self.value(event, value))

    def finish(self, location: str, data: Any) -> Record:
        """The record built; a text longer than any payment needs makes it that record's error, and is
        not kept, so the report does not carry megabytes of it."""
        if self.oversize:
            longest, self.oversize = self.oversize, 0
            return Record(
                location,
                error=f"holds a text of {longest:,} characters; no payment property takes more than 250",
            )
        return Record(location, data)

    def value(self, event: str, value: Any, depth: int = 1) -> Any:
        if depth > codec.MAX_DEPTH:
            raise codec.JsonSyntaxError(f"arrays or objects are nested more than {codec.MAX_DEPTH} deep")
        if event == "start_map":
            obj: dict[str, Any] = {}
            for ev, key in self.events:
                if ev == "end_map":
                    return obj
                if key in obj:
                    raise codec.JsonSyntaxError(f"duplicate property {key!r} in one object")
                if len(key) > MAX_LINE_CHARS:
                    raise codec.JsonSyntaxError(f"a property name of {len(key):,} characters")
                obj[key] = self.value(*next(self.events), depth + 1)
            raise codec.JsonSyntaxError("unexpected end of document")  # pragma: no cover
        if event == "start_array":
            items = []
            for ev, val in self.events:
                if ev == "end_array":
                    return items
                items.append(self.value(ev, val, depth + 1))
            raise codec.JsonSyntaxError("unexpected end of document")  # pragma: no cover
        if event == "string" and len(value) > MAX_LINE_CHARS:
            self.oversize = max(self.oversize, len(value))
            return ""
        if event == "number" and _too_long(value):
            raise codec.JsonSyntaxError(
                f"a number has more than {codec.MAX_NUMBER_CHARS} digits; no payment property needs that many"
            )
        return value

    def stream_array(self, prefix: str) -> Iterator[Record]:
        index = 0
        for ev, val in self.events:
            if ev == "end_array":
                return
            yield self.record(f"item {index} ({prefix}/{index})", ev, val)
            index += 1


def _too_long(number: Any) -> bool:
    if isinstance(number, int):
        return number.bit_length() > 3.33 * codec.MAX_NUMBER_CHARS
    return isinstance(number, Decimal) and len(number.as_tuple().digits) > codec.MAX_NUMBER_CHARS


def _json_records(stream: BinaryIO) -> Iterator[Record]:
    import ijson

    where = "at the start"
    source = _Utf8(stream)
    try:
        # 1 MiB pieces: a text spanning many of ijson's default 64 KiB ones costs it ten times as long.
        builder = _Builder(iter(ijson.basic_parse(source, use_float=False, buf_size=1 << 20)))
        event, _ = next(builder.events)
        if event == "start_array":
            for record in builder.stream_array(""):
                where = f"after {record.location}"
                yield record
        elif event == "start_map":
            # {"value": [...]} is streamed; any other object is one payment.
            data: dict[str, Any] = {}
            for ev, key in builder.events:
                if ev == "end_map":
                    break
                if key in data:
                    raise codec.JsonSyntaxError(f"duplicate property {key!r} in one object")
                ev, val = next(builder.events)
                if key == "value" and ev == "start_array" and not (set(data) - {"@odata.context"}):
                    for record in builder.stream_array("/value"):
                        where = f"after {record.location}"
                        yield record
                    data[key] = None
                    continue
                data[key] = builder.value(ev, val)
            if "value" not in data:
                yield builder.finish("object", data)
            elif set(data) - {"value", "@odata.context"}:
                raise InputError(f'unexpected properties beside "value": {sorted(set(data) - {"value"})}')
        else:
            raise InputError("a JSON payment file holds an object or an array")
        for _ in builder.events:
            raise InputError("unexpected content after the JSON document")
    except (ijson.JSONError, codec.JsonSyntaxError, StopIteration, ValueError, SystemError) as exc:
        if source.failure is not None:  # the bytes themselves (raised through the parser)
            raise InputError(f"{source.failure} ({where})") from None
        if not isinstance(exc, ijson.JSONError | codec.JsonSyntaxError | StopIteration):
            # ijson's C backend failing to convert a number (or a string)
            raise InputError(
                f"not a JSON document ({where}): a number or string could not be read (a number over "
                "4,300 digits?)"
            ) from None
        reason = str(exc) or "unexpected end of document"
        raise InputError(f"not a JSON document ({where}): {reason}") from None


# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a low one not after a high one: no
# Unicode text holds it, and the JSON parser would quietly turn it into "?".
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


class _Utf8(io.RawIOBase):
    """A byte stream checked as UTF-8 (without BOM), and free of unpaired surrogate escapes, on its way
    into the JSON parser."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._first = True
        self._offset = 0
        self._tail = b""  # the end of the previous piece, so an escape cut in two is still seen
        self.failure: InputError | None = None  # what was wrong, as the parser may hide it in its own error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        if self._first:
            self._first = False
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            self.failure = InputError(
                f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {self._offset + exc.start}"
            )
            raise self.failure from None
        window = self._tail + data
        if b"\\u" in window:
            for bad in _LONE_SURROGATE.finditer(window):
                if bad.end() < len(self._tail):
                    continue  # judged in the previous piece (one ending at its very end waited for this)
                if bad.end() == len(window) and data:
                    continue  # at the very end: its pair may come with the next piece
                self.failure = InputError(
                    f"an unpaired UTF-16 surrogate escape ({bad.group().decode()}) near offset "
                    f"{self._offset - len(self._tail) + bad.start()}: no Unicode text holds one"
                )
                raise self.failure
        self._tail = window[-17:]  # a whole escape pair and what precedes it
        self._offset += len(data)
        buffer[: len(data)] = data
        return len(data)


def _lines(stream: BinaryIO | io.TextIOBase) -> Iterator[tuple[int, Any]]:
    """Physical lines with their numbers; a line longer than MAX_LINE_CHARS comes back as None, its
    rest skipped, so one endless line costs neither the memory nor the time of reading it whole."""
    number = 0
    newline: Any = None
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        newline = newline or ("\n" if isinstance(line, str) else b"\n")
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith(newline):
            while (rest := stream.readline(MAX_LINE_CHARS)) and not rest.endswith(newline):
                pass
            yield number, None
            continue
        yield number, line


def _too_long_line(number: int) -> Record:
    return Record(
        f"line {number}", error=f"is longer than {MAX_LINE_CHARS:,} characters; a payment is far shorter"
    )


def _ndjson_records(stream: BinaryIO) -> Iterator[Record]:
    for number, line in _lines(stream):
        if line is None:
            yield _too_long_line(number)
            continue
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
    """CSV read line by line: a cell may not span lines, so an unclosed quote is that line's error
    instead of silently swallowing the records after it into one cell."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    lines = _lines(text)
    try:
        number, first = next(lines, (1, ""))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason} at byte {exc.start} of the header") from None
    if first is None:
        raise InputError(f"the CSV header row is longer than {MAX_LINE_CHARS:,} characters")
    if not first.strip():
        raise InputError("the CSV file is empty: expected a header row of property names")
    try:
        dialect: Any = csv.Sniffer().sniff(first, delimiters=",;")
    except csv.Error:
        dialect = csv.excel
    try:
        original = next(csv.reader([first], dialect, strict=True))
    except csv.Error as exc:
        raise InputError(f"CSV header: {exc}") from None
    if len(original) > MAX_COLUMNS:
        raise InputError(f"the CSV header names {len(original)} columns; at most {MAX_COLUMNS} are read")
    header = _header(original)
    try:
        for number, line in lines:
            where = f"line {number}"
            if line is None:
                yield _too_long_line(number)
                continue
            if not line.strip():
                continue
            try:
                row = next(csv.reader([line], dialect, strict=True), [])
            except csv.Error as exc:
                yield Record(
                    where,
                    error=f"is not valid CSV ({exc}): a quoted cell must close on its own line, with any "
                    'quote inside it doubled ("")',
                )
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                yield Record(where, error=f"has {len(row)} cells but the header names {len(header)} columns")
                continue
            data = {
                name: _unguard(cell.strip())
                for name, cell in zip(header, row, strict=False)
                if cell.strip() and name.lower() != ERROR_COLUMN
            }
            raw = dict(zip(original, row + [""] * (len(original) - len(row)), strict=True))
            yield Record(where, data, from_text=True, raw=raw)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text after line {number}: {exc.reason}") from None
