"""Payment files in every accepted format, with the location each record reports."""

from __future__ import annotations

import io

import pytest

from payments.readers import InputError, read_stream


def records(raw: bytes, name: str = "f"):
    return list(read_stream(io.BytesIO(raw), name))


def test_csv_with_bom_semicolons_quotes_and_case_insensitive_headers():
    raw = '\ufeffCUSTOMERNUMBER;Amount;description\r\n10000;12.50;"a; quoted"\r\n20000;;\r\n'.encode()
    got = records(raw, "x.csv")
    assert [(r.location, r.data) for r in got] == [
        ("line 2", {"customerNumber": "10000", "amount": "12.50", "description": "a; quoted"}),
        ("line 3", {"customerNumber": "20000"}),
    ]
    assert all(r.from_text for r in got)


def test_csv_a_quote_left_open_is_that_lines_error_not_a_merge_of_the_lines_after_it():
    """A cell may not span lines: an unclosed quote would otherwise swallow the next records into one
    description and validate clean (issue 12)."""
    raw = b'customerNumber,description,amount\n1,"two\nlines",1\n2,x,2\n'
    got = records(raw, "x.csv")
    assert [r.location for r in got] == ["line 2", "line 3", "line 4"]
    assert got[0].error.startswith("is not valid CSV (unexpected end of data): a quoted cell must close")
    assert got[2].data == {"customerNumber": "2", "description": "x", "amount": "2"}


def test_csv_duplicate_header_is_a_file_error():
    with pytest.raises(InputError, match="repeats 'amount'"):
        records(b"amount,Amount\n1,2\n", "x.csv")


def test_ndjson_bad_line_does_not_stop_the_others():
    got = records(b'{"amount": 1}\n{oops\n\n{"amount": 2.50}\n', "x.ndjson")
    assert [r.location for r in got] == ["line 1", "line 2", "line 4"]
    assert got[1].error.startswith("not valid JSON")
    assert str(got[2].data["amount"]) == "2.50"


@pytest.mark.parametrize(
    ("raw", "locations"),
    [
        (b'{"amount": 1}', ["object"]),
        (b'[{"amount": 1}, {"amount": 2}]', ["item 0 (/0)", "item 1 (/1)"]),
        (b'{"value": [{"amount": 1}]}', ["item 0 (/value/0)"]),
    ],
)
def test_json_shapes(raw, locations):
    assert [r.location for r in records(raw, "x.json")] == locations


def test_format_is_sniffed_without_an_extension():
    assert records(b'{"amount": 1}\n{"amount": 2}\n', "upload")[1].location == "line 2"
    assert records(b'[{"amount": 1}]', "upload")[0].location == "item 0 (/0)"
    assert records(b"amount\n1\n", "upload")[0].data == {"amount": "1"}


def test_non_utf8_csv_is_a_file_error():
    with pytest.raises(InputError, match="not UTF-8"):
        records("customerNumber,description\n1,caf\xe9\n".encode("latin-1"), "x.csv")


def test_a_text_too_long_for_any_property_is_the_records_error_and_is_not_kept():
    long = b"x" * 70_000
    for raw in (
        b'{"customerNumber": "1", "description": "' + long + b'"}',
        b'[{"description": "' + long + b'"}]',
    ):
        [record] = records(raw, "x.json")
        assert record.data is None
        assert record.error == "holds a text of 70,000 characters; no payment property takes more than 250"
