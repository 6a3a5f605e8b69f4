"""Hostile and careless inputs, each with the answer it must get: shared by the tests (which assert the
answers) and `bench/hostile.py` (which measures each case's time and memory)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J


@dataclass(frozen=True)
class WebhookCase:
    """A webhook call and what its caller must get: status, problem type, a phrase of its detail or of
    one of its errors; nothing is posted unless `posted` says so."""

    category: str
    name: str
    body: bytes
    status: int
    problem: str | None  # the problem type's slug (None: not a problem document)
    says: str = ""  # a phrase the detail or an error's detail holds
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    company: str = C
    journal: str = J
    posted: int = 0


def _pay(amount: bytes, extra: bytes = b"") -> bytes:
    return b'{"customerNumber": "10000", "amount": ' + amount + extra + b"}"


_DEEP = b'{"customerNumber": "10000", "amount": -1, "description": ' + b"[" * 5000 + b"]" * 5000 + b"}"

WEBHOOK_CASES: list[WebhookCase] = [
    # Amounts: every representation, exact or refused; never rounded, never conflated.
    WebhookCase(
        "amount",
        "31 significant digits",
        _pay(b"-1.000000000000000000000000000001"),
        422,
        "validation-failed",
        "has 30 decimal places; at most 2",
    ),
    WebhookCase(
        "amount",
        "31 digits as a string",
        _pay(b'"-1.000000000000000000000000000001"'),
        422,
        "validation-failed",
        "has 30 decimal places; at most 2",
    ),
    WebhookCase(
        "amount",
        "tiny exponent",
        _pay(b"-1e-99999999"),
        422,
        "validation-failed",
        "has 99999999 decimal places",
    ),
    WebhookCase(
        "amount",
        "huge exponent",
        _pay(b"-1e99999999"),
        422,
        "validation-failed",
        "beyond what Business Central can hold",
    ),
    WebhookCase(
        "amount",
        "exponent 400",
        _pay(b"-1e400"),
        422,
        "validation-failed",
        "beyond what Business Central can hold",
    ),
    WebhookCase(
        "amount",
        "5,000-digit integer",
        _pay(b"-" + b"9" * 5000),
        400,
        "malformed-body",
        "a number written with 5001 characters",
    ),
    WebhookCase(
        "amount",
        "full-width digits",
        _pay('"-１２.００"'.encode()),
        422,
        "validation-failed",
        "contains digits other than 0-9",
    ),
    WebhookCase(
        "amount",
        "Arabic-Indic digits",
        _pay('"-١٢.٠٠"'.encode()),
        422,
        "validation-failed",
        "contains digits other than 0-9",
    ),
    WebhookCase(
        "amount",
        "U+0660 that looks like a dot",
        _pay('"-1٠50"'.encode()),
        422,
        "validation-failed",
        "contains digits other than 0-9",
    ),
    WebhookCase("amount", "decimal comma", _pay(b'"-12,50"'), 422, "validation-failed", "decimal comma"),
    WebhookCase("amount", "true", _pay(b"true"), 422, "validation-failed", "not true/false"),
    WebhookCase("amount", "NaN", _pay(b"NaN"), 400, "malformed-body", "NaN is not a JSON number"),
    WebhookCase("amount", "exact digits kept", _pay(b"-12.500"), 201, None, posted=1),
    # Other values: ASCII digits only, no control characters.
    WebhookCase(
        "values",
        "full-width posting date",
        _pay(b"-1", ', "postingDate": "２０２６-１１-２５"'.encode()),
        422,
        "validation-failed",
        "must be a date written YYYY-MM-DD",
    ),
    WebhookCase(
        "values",
        "NUL in documentNumber",
        _pay(b"-1", b', "documentNumber": "A\\u0000B"'),
        422,
        "validation-failed",
        "control character U+0000",
    ),
    WebhookCase(
        "values",
        "terminal escape in description",
        _pay(b"-1", b', "description": "\\u001b[2J"'),
        422,
        "validation-failed",
        "control character U+001B",
    ),
    WebhookCase(
        "values",
        "C1 control in comment",
        _pay(b"-1", b', "comment": "a\\u0085b"'),
        422,
        "validation-failed",
        "control character U+0085",
    ),
    WebhookCase(
        "values",
        "full-width digits in a GUID",
        _pay(b"-1", ', "customerId": "c0000001-0000-4000-8000-00000001000０"'.encode()),
        422,
        "validation-failed",
        "is not a GUID",
    ),
    WebhookCase(
        "values",
        "look-alike key (Cyrillic a)",
        '{"customerNumber": "10000", "аmount": -1}'.encode(),
        422,
        "validation-failed",
        "is not a customerPayment property",
    ),
    # JSON structure.
    WebhookCase("json", "nested 5,000 deep", _DEEP, 400, "malformed-body", "nested more than 32 deep"),
    WebhookCase(
        "json",
        "nested 300 deep (within the parser's own limit)",
        _pay(b"-1", b', "description": ' + b"[" * 300 + b"]" * 300),
        400,
        "malformed-body",
        "nested more than 32 deep",
    ),
    WebhookCase(
        "json",
        "lone surrogate in a property name",
        b'{"customerNumber": "10000", "a\\ud800": 1}',
        400,
        "malformed-body",
        "unpaired UTF-16 surrogate",
    ),
    WebhookCase(
        "json",
        "lone surrogate in a value",
        _pay(b"-1", b', "description": "x\\udc00"'),
        400,
        "malformed-body",
        "unpaired UTF-16 surrogate",
    ),
    WebhookCase(
        "json",
        "duplicate key",
        b'{"customerNumber": "10000", "amount": -1, "amount": -100}',
        400,
        "malformed-body",
        "duplicate property 'amount'",
    ),
    WebhookCase(
        "json",
        "truncated",
        b'{"customerNumber": "10000", "amount": -1',
        400,
        "malformed-body",
        "Expecting ',' delimiter at line 1 column 41",
    ),
    WebhookCase("json", "empty body", b"", 400, "malformed-body", "send a customerPayment JSON object"),
    WebhookCase("json", "only whitespace", b" \r\n\t", 400, "malformed-body", "send a customerPayment JSON"),
    WebhookCase("json", "a bare string", b'"hello"', 422, "validation-failed", ""),
    WebhookCase("json", "empty batch", b"[]", 422, "validation-failed", "send at least one"),
    WebhookCase(
        "json",
        "UTF-16",
        _pay(b"-1").decode().encode("utf-16"),
        400,
        "malformed-body",
        "not valid UTF-8: byte 0xff at offset 0",
    ),
    WebhookCase(
        "json",
        "gzip without decompression",
        gzip.compress(_pay(b"-1") * 1000),
        400,
        "malformed-body",
        "not valid UTF-8",
    ),
    # Headers.
    WebhookCase(
        "headers",
        "text/plain",
        _pay(b"-1"),
        415,
        "unsupported-media-type",
        "application/json",
        content_type="text/plain",
    ),
    WebhookCase(
        "headers",
        "charset latin1",
        _pay(b"-1"),
        415,
        "unsupported-media-type",
        "send UTF-8",
        content_type="application/json; charset=latin1",
    ),
    WebhookCase(
        "headers", "no Content-Type", _pay(b"-1"), 415, "unsupported-media-type", "none", content_type=""
    ),
    WebhookCase(
        "headers",
        "Idempotency-Key of 300 characters",
        _pay(b"-1"),
        400,
        "invalid-idempotency-key",
        "1 to 255 printable ASCII",
        headers={"Idempotency-Key": "k" * 300},
    ),
    WebhookCase(
        "headers",
        "Idempotency-Key with non-ASCII",
        _pay(b"-1"),
        400,
        "invalid-idempotency-key",
        "printable ASCII",
        headers={"Idempotency-Key": "clé"},
    ),
    WebhookCase(
        "headers",
        "body over the limit",
        b"["
        + b'{"customerNumber": "10000", "amount": -1},' * 30000
        + b'{"customerNumber": "10000", "amount": -1}]',
        413,
        "body-too-large",
        "at most",
    ),
    # Route values.
    WebhookCase(
        "route",
        "path traversal as company",
        _pay(b"-1"),
        400,
        "invalid-route",
        "is not a GUID",
        company="../../admin",
    ),
    WebhookCase("route", "empty journal", _pay(b"-1"), 400, "invalid-route", "is not a GUID", journal=""),
    WebhookCase(
        "route", "escape sequence in company", _pay(b"-1"), 400, "invalid-route", "\\x1b", company="\x1b[2J"
    ),
    WebhookCase(
        "size",
        "one object of 80,000 properties",
        b"{" + b",".join(b'"a%d":1' % i for i in range(80_000)) + b"}",
        422,
        "validation-failed",
        "has 80000 properties; a customerPayment has at most",
    ),
]


# Bodies of 100,000 items within PAYMENTS_MAX_BODY_BYTES (1 MiB), every item invalid: the answer names
# the first MAX_REPORTED_ERRORS problems and counts the rest, whatever the number of items. The tests
# assert each answer; `bench/hostile.py` prints its size, time and memory.
MANY = 100_000
MANY_ITEM_CASES: list[WebhookCase] = [
    WebhookCase(
        "many",
        "100,000 empty objects",
        b"[" + b",".join([b"{}"] * MANY) + b"]",
        422,
        "validation-failed",
        "were not checked once",
    ),
    WebhookCase(
        "many",
        "100,000 numbers",
        b"[" + b",".join([b"0"] * MANY) + b"]",
        422,
        "validation-failed",
        "were not checked once",
    ),
    WebhookCase(
        "many",
        "100,000 objects with an unknown property",
        b"[" + b",".join([b'{"a":1}'] * MANY) + b"]",
        422,
        "validation-failed",
        "were not checked once",
    ),
]


@dataclass(frozen=True)
class FileCase:
    """A dropped file and its report: a file-level error (nothing posted), or each record's outcome by
    location, with a phrase of its error. The file always leaves the inbox for `failed/` here."""

    category: str
    name: str
    file: str  # its name in the inbox, under <company>/<journal>/
    content: bytes
    error: str | None = None  # a phrase of the report's file-level error
    records: tuple[tuple[str, str, str], ...] = ()  # (location, outcome, phrase of its errors)


_CSV = b"customerNumber,documentNumber,amount\n"
_GOOD = b'{"customerNumber": "10000", "amount": -1}\n'

FILE_CASES: list[FileCase] = [
    FileCase(
        "csv",
        "a quote left open",
        "open.csv",
        b'customerNumber,description,amount\n10000,"oops,-1\n20000,fine,-2\n',
        records=(
            ("line 2", "invalid", "a quoted cell must close on its own line"),
            ("line 3", "created", ""),
        ),
    ),
    FileCase(
        "csv",
        "NUL in an identifier",
        "nul.csv",
        _CSV + b"10000,A\x00B,-1\n",
        records=(("line 2", "invalid", "control character U+0000"),),
    ),
    FileCase(
        "csv",
        "terminal escape in a cell",
        "esc.csv",
        _CSV + b"10000,\x1b[2J,-1\n",
        records=(("line 2", "invalid", "control character U+001B"),),
    ),
    FileCase(
        "csv",
        "exponent amount",
        "exp.csv",
        _CSV + b"10000,E-1,-1e99999999\n",
        records=(("line 2", "invalid", "is not a decimal number"),),
    ),
    FileCase(
        "csv",
        "full-width amount",
        "wide-digits.csv",
        _CSV + "10000,W-1,-１２.００\n".encode(),
        records=(("line 2", "invalid", "contains digits other than 0-9"),),
    ),
    FileCase(
        "csv",
        "a 100 KB line",
        "long-line.csv",
        _CSV + b"10000,L-1,-1," + b"x" * 100_000 + b"\n10000,L-2,-2\n",
        records=(("line 2", "invalid", "longer than 65,536 characters"), ("line 3", "created", "")),
    ),
    FileCase(
        "csv",
        "200,000 columns",
        "columns.csv",
        b"customerNumber,amount" + b",c" * 200_000 + b"\n1,-1\n",
        error="the CSV header row is longer than 65,536 characters",
    ),
    FileCase(
        "csv",
        "100 columns",
        "hundred.csv",
        b",".join(b"c%d" % i for i in range(100)) + b"\n",
        error="at most 64 are read",
    ),
    FileCase("csv", "header only", "header.csv", _CSV, error="holds no payment records"),
    FileCase("ndjson", "empty", "empty.ndjson", b"", error="holds no payment records"),
    FileCase("ndjson", "blank lines only", "blank.ndjson", b"\n \r\n\t\n", error="holds no payment records"),
    FileCase("ndjson", "a BOM only", "bom.ndjson", b"\xef\xbb\xbf", error="holds no payment records"),
    FileCase(
        "ndjson",
        "a line nested 5,000 deep",
        "deep.ndjson",
        _GOOD + b"[" * 5000 + b"]" * 5000 + b"\n" + _GOOD.replace(b"-1", b"-2"),
        records=(
            ("line 1", "created", ""),
            ("line 2", "invalid", "nested more than 32 deep"),
            ("line 3", "created", ""),
        ),
    ),
    FileCase(
        "ndjson",
        "a value nested 300 deep",
        "deep-value.ndjson",
        b'{"customerNumber": "10000", "amount": -1, "description": '
        + b"[" * 300
        + b"]" * 300
        + b"}\n"
        + _GOOD,
        records=(("line 1", "invalid", "nested more than 32 deep"), ("line 2", "created", "")),
    ),
    FileCase(
        "ndjson",
        "a 5,000-digit number",
        "digits.ndjson",
        b'{"customerNumber": "10000", "amount": -' + b"9" * 5000 + b"}\n" + _GOOD,
        records=(("line 1", "invalid", "a number written with 5001 characters"), ("line 2", "created", "")),
    ),
    FileCase(
        "ndjson",
        "a 1 MB line",
        "mega.ndjson",
        b'{"customerNumber": "10000", "description": "' + b"x" * 1_000_000 + b'"}\n' + _GOOD,
        records=(("line 1", "invalid", "longer than 65,536 characters"), ("line 2", "created", "")),
    ),
    FileCase(
        "ndjson",
        "an unpaired surrogate",
        "surrogate.ndjson",
        b'{"customerNumber": "10000", "amount": -1, "description": "x\\ud800"}\n',
        records=(("line 1", "invalid", "unpaired UTF-16 surrogate"),),
    ),
    FileCase(
        "json", "nested 5,000 deep", "deep.json", b"[" * 5000 + b"]" * 5000, error="nested more than 32 deep"
    ),
    FileCase(
        "json",
        "a 5,000-digit number",
        "digits.json",
        b'[{"customerNumber": "10000", "amount": -' + b"9" * 5000 + b"}]",
        error="could not be read",
    ),
    FileCase(
        "json",
        "an unpaired surrogate",
        "surrogate.json",
        b'[{"customerNumber": "10000", "amount": -1, "description": "x\\ud800"}]',
        error="unpaired UTF-16 surrogate escape (\\ud800)",
    ),
    FileCase(
        "json",
        "amount 1e99999999",
        "exp.json",
        b'[{"customerNumber": "10000", "amount": -1e99999999}, {"customerNumber": "10000", "amount": -2}]',
        records=(
            ("item 0 (/0)", "invalid", "beyond what Business Central can hold"),
            ("item 1 (/1)", "created", ""),
        ),
    ),
    FileCase(
        "json",
        "amount 1e-99999999",
        "tiny.json",
        b'[{"customerNumber": "10000", "amount": -1e-99999999}]',
        records=(("item 0 (/0)", "invalid", "has 99999999 decimal places"),),
    ),
    FileCase(
        "json",
        "31 significant digits",
        "digits31.json",
        b'[{"customerNumber": "10000", "amount": -1.000000000000000000000000000001}]',
        records=(("item 0 (/0)", "invalid", "has 30 decimal places"),),
    ),
    FileCase(
        "json",
        "a 100 KB string",
        "long-text.json",
        b'[{"customerNumber": "10000", "amount": -1, "description": "' + b"x" * 100_000 + b'"}, '
        b'{"customerNumber": "10000", "amount": -2}]',
        records=(
            ("item 0 (/0)", "invalid", "holds a text of 100,000 characters"),
            ("item 1 (/1)", "created", ""),
        ),
    ),
    FileCase(
        "json",
        "Latin-1",
        "latin1.json",
        '[{"customerNumber": "10000", "description": "café"}]'.encode("latin-1"),
        error="not UTF-8: byte 0xe9",
    ),
]

# Larger versions, for the benchmark only (too slow to upload for every test run): the issue's own
# examples, a million CSV columns and a line of many megabytes.
LARGE_FILE_CASES: list[FileCase] = [
    FileCase(
        "csv",
        "1,000,000 columns",
        "million.csv",
        b"customerNumber,amount" + b",c" * 1_000_000 + b"\n1,-1\n",
        error="the CSV header row is longer than 65,536 characters",
    ),
    FileCase(
        "ndjson",
        "a 20 MB line",
        "twenty.ndjson",
        b'{"customerNumber": "10000", "description": "' + b"x" * 20_000_000 + b'"}\n' + _GOOD,
        records=(("line 1", "invalid", "longer than 65,536 characters"), ("line 2", "created", "")),
    ),
    FileCase(
        "json",
        "a 20 MB string",
        "twenty.json",
        b'[{"customerNumber": "10000", "amount": -1, "description": "' + b"x" * 20_000_000 + b'"}]',
        records=(("item 0 (/0)", "invalid", "holds a text of 20,000,000 characters"),),
    ),
]
