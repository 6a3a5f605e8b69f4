"""The customerPayment contract: what is accepted, what is refused and how it is explained."""

from decimal import Decimal

import pytest

from payments import codec
from payments.model import Rules, check

CUSTOMER = {"customerNumber": "10000"}


def errors_of(record, rules=Rules()):  # noqa: B008 - Rules is frozen
    result = check(record, rules)
    assert not result.ok
    return {e.pointer: e.detail for e in result.errors}


def test_exact_amount_survives_parse_validate_and_serialise():
    # The largest amount Business Central holds has 17 significant digits: a float would round it.
    raw = b'{"customerNumber": "10000", "amount": -999999999999999.99}'
    result = check(codec.loads(raw))
    assert result.ok
    assert result.payment.amount == Decimal("-999999999999999.99")
    assert codec.dumps(result.payment.payload()) == '{"customerNumber":"10000","amount":-999999999999999.99}'
    assert repr(float("-999999999999999.99")) == "-1000000000000000.0"  # what a float would have sent


@pytest.mark.parametrize(
    "amount", ["1000000000000000.00", "-1000000000000000", "12345678901234567890.12", "1e400", "-1E+16"]
)
def test_amounts_beyond_the_al_decimal_range_are_refused_before_sending(amount):
    """REFERENCE 2: an AL Decimal holds at most ±999,999,999,999,999.99; beyond it the target fails."""
    forms = (codec.loads(amount), Decimal(amount)) if "e" in amount.lower() else (amount, codec.loads(amount))
    for value in forms:
        detail = errors_of({"customerNumber": "10000", "amount": value})["/amount"]
        assert "beyond what Business Central can hold" in detail and "-999999999999999.99" in detail
    assert check({"customerNumber": "10000", "amount": "-999999999999999.99"}).ok


@pytest.mark.parametrize(
    ("given", "sent"),
    [("-4.20", "-4.20"), ("-15.5", "-15.5"), ("-7", "-7"), ("-0.01", "-0.01"), ("-1.500", "-1.500")],
)
def test_amount_text_is_sent_as_a_json_number_with_the_digits_given(given, sent):
    for raw in (given, f'"{given}"'):
        payment = check(codec.loads(f'{{"customerNumber":"1","amount":{raw}}}')).payment
        assert codec.dumps(payment.payload()) == f'{{"customerNumber":"1","amount":{sent}}}'


def test_a_payment_is_a_credit_unless_amounts_are_written_as_money_received():
    """Gen. Jnl.-Check Line refuses a customer payment with a positive amount ("Amount must be negative")
    when the journal is posted; the API itself stores the amount as sent (REFERENCE 2)."""
    detail = errors_of({**CUSTOMER, "amount": "12.50"})["/amount"]
    assert detail.startswith("is positive, but Business Central records a customer payment as a credit")
    assert "send -12.50, or set PAYMENTS_AMOUNT_SIGN=positive" in detail
    assert "is positive" in errors_of(codec.loads('{"customerNumber": "1", "amount": 7}'))["/amount"]
    received = Rules(amount_sign="positive")
    for raw in ('"12.50"', "12.50"):
        payment = check(codec.loads(f'{{"customerNumber":"1","amount":{raw}}}'), received).payment
        assert codec.dumps(payment.payload()) == '{"customerNumber":"1","amount":-12.50}'
    negative = errors_of({**CUSTOMER, "amount": "-12.50"}, received)["/amount"]
    assert negative == (
        "is negative, but PAYMENTS_AMOUNT_SIGN=positive: payments are written as money received (the "
        "relay sends them as credits); send 12.50"
    )


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [
        ("0", "must not be zero"),
        ("-0.00", "must not be zero"),
        ('"10.005"', "has 3 decimal places; at most 2"),
        ('"1.234,56"', "decimal comma"),
        ('"12,50"', "decimal comma"),
        ('"NaN"', "is not a decimal number"),
        ('"1e3"', "is not a decimal number"),
        ("true", "not true/false"),
        ("null", "must be a decimal number"),
        ('"12 EUR"', "is not a decimal number"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(amount, fragment):
    record = codec.loads(f'{{"customerNumber":"1","amount":{amount}}}')
    assert fragment in errors_of(record)["/amount"]


def test_amount_decimals_setting_changes_the_limit():
    assert check({**CUSTOMER, "amount": "-1.125"}, Rules(amount_decimals=3)).ok
    assert "at most 0" in errors_of({**CUSTOMER, "amount": "-1.5"}, Rules(amount_decimals=0))["/amount"]


def test_float_is_refused_outright():
    assert "binary floating point" in errors_of({**CUSTOMER, "amount": 4.2})["/amount"]


def test_missing_amount_and_customer():
    errs = errors_of({"description": "x"})
    assert errs["/amount"] == "is required"
    assert (
        errs[""]
        == "customerId or customerNumber is required to identify the customer, unless the invoice it pays is given (appliesToInvoiceId or appliesToInvoiceNumber): Business Central then takes the customer from the invoice"
    )


def test_a_payment_of_an_invoice_needs_no_customer():
    """Page 30055 fills the customer from the invoice (E2E TestCustomerAutofillWhenGivingInvoiceNumber)."""
    by_number = check({"appliesToInvoiceNumber": "103001", "amount": "-10"})
    by_id = check({"appliesToInvoiceId": "A1000001-0000-4000-8000-000000103001", "amount": "-10"})
    assert by_number.ok and by_id.ok
    assert by_id.payment.payload() == {
        "amount": Decimal("-10"),
        "appliesToInvoiceId": "a1000001-0000-4000-8000-000000103001",
    }


def test_types_and_lengths_follow_the_edm_contract():
    errs = errors_of(
        {
            "amount": "-1",
            "customerId": "not-a-guid",
            "customerNumber": "C" * 21,
            "lineNumber": 2**31,
            "postingDate": "20/11/2026",
            "documentNumber": 12,
            "externalDocumentNumber": "E" * 36,
            "description": "d" * 101,
            "comment": "c" * 251,
            "contactId": "k" * 251,
            "appliesToInvoiceNumber": "I" * 21,
        }
    )
    assert errs["/customerId"] == "'not-a-guid' is not a GUID (expected 8-4-4-4-12 hexadecimal digits)"
    assert errs["/customerNumber"] == "is 21 characters; at most 20 are allowed (Code[20])"
    assert errs["/lineNumber"] == "must be between -2147483648 and 2147483647 (Int32)"
    assert errs["/postingDate"] == "must be a date written YYYY-MM-DD, got '20/11/2026'"
    assert errs["/documentNumber"] == "must be a string (Code[20])"
    assert errs["/externalDocumentNumber"] == "is 36 characters; at most 35 are allowed (Code[35])"
    assert errs["/description"] == "is 101 characters; at most 100 are allowed (Text[100])"
    assert errs["/comment"] == "is 251 characters; at most 250 are allowed (Text[250])"
    assert errs["/contactId"] == "is 251 characters; at most 250 are allowed (String(250))"
    assert errs["/appliesToInvoiceNumber"] == "is 21 characters; at most 20 are allowed (Code[20])"


def test_strings_at_their_limits_are_accepted():
    assert check(
        {**CUSTOMER, "amount": "-1", "externalDocumentNumber": "E" * 35, "description": "d" * 100}
    ).ok


def test_line_number_must_be_a_json_integer_except_in_csv_text():
    assert "whole number" in errors_of({**CUSTOMER, "amount": "-1", "lineNumber": "10"})["/lineNumber"]
    assert (
        "without a decimal point"
        in errors_of({**CUSTOMER, "amount": "-1", "lineNumber": Decimal("10.0")})["/lineNumber"]
    )
    assert (
        check({**CUSTOMER, "amount": "-1", "lineNumber": "10"}, Rules(from_text=True)).payment.lineNumber
        == 10
    )


def test_calendar_dates_only():
    assert errors_of({**CUSTOMER, "amount": "-1", "postingDate": "2026-02-29"})["/postingDate"] == (
        "'2026-02-29' is not a calendar date"
    )
    assert check({**CUSTOMER, "amount": "-1", "postingDate": "2028-02-29"}).ok


def test_guids_are_normalised_to_lower_case_hyphenated():
    payment = check(
        {
            "amount": "-1",
            "customerId": "3992E4C5E4C53992C5E49239C5E49239",
            "appliesToInvoiceId": "{94757752-7752-9475-5277-759452777594}",
        }
    ).payment
    assert payment.payload()["customerId"] == "3992e4c5-e4c5-3992-c5e4-9239c5e49239"
    assert payment.payload()["appliesToInvoiceId"] == "94757752-7752-9475-5277-759452777594"


def test_unknown_properties_are_refused_with_a_suggestion():
    errs = errors_of({**CUSTOMER, "ammount": "1", "Description": "x", "colour": "red"})
    assert errs["/ammount"] == "is not a customerPayment property; did you mean 'amount'?"
    assert errs["/Description"] == (
        "is not a customerPayment property; did you mean 'description'? (names are case-sensitive)"
    )
    assert errs["/colour"] == "is not a customerPayment property"


def test_read_only_properties_are_ignored_and_reported():
    result = check({**CUSTOMER, "amount": "-1", "id": "x", "lastModifiedDateTime": "2020-01-01T00:00:00Z"})
    assert result.ok
    assert result.ignored == ["id", "lastModifiedDateTime"]
    assert "id" not in result.payment.payload()


def test_journal_display_name_is_read_only_and_never_sent():
    """API v2.0 documents journalDisplayName as read-only; page 30055 takes the batch from the journal
    id, so a value in the body would change nothing (or, naming another batch, mislead)."""
    result = check({**CUSTOMER, "amount": "-1", "journalDisplayName": "J" * 11})
    assert result.ok
    assert result.ignored == ["journalDisplayName"]
    assert "journalDisplayName" not in result.payment.payload()


def test_odata_type_must_be_customer_payment():
    assert check({**CUSTOMER, "amount": "-1", "@odata.type": "#microsoft.graph.customerPayment"}).ok
    assert errors_of({**CUSTOMER, "amount": "-1", "@odata.type": "#microsoft.graph.vendorPayment"})[
        "/@odata.type"
    ]


def test_contact_id_is_graph_only():
    record = {**CUSTOMER, "amount": "-1", "contactId": "C1"}
    assert check(record, Rules(target="graph")).ok
    assert "Graph only" in errors_of(record, Rules(target="businesscentral"))["/contactId"]


def test_payload_keeps_contract_order_and_omits_absent_properties():
    payment = check({"amount": "-5", "description": "x", "customerNumber": "1", "comment": None}).payment
    assert list(payment.payload()) == ["customerNumber", "amount", "description"]


def test_not_an_object():
    assert errors_of([1, 2]) == {"": "must be a JSON object (one customerPayment)"}


def test_codec_refuses_duplicate_keys_nan_and_floats():
    with pytest.raises(codec.JsonSyntaxError, match="duplicate property 'amount'"):
        codec.loads('{"amount": 1, "amount": 2}')
    with pytest.raises(codec.JsonSyntaxError, match="NaN is not a JSON number"):
        codec.loads('{"amount": NaN}')
    with pytest.raises(codec.NotUtf8Error, match="not valid UTF-8"):
        codec.loads(b'{"description": "caf\xe9"}')
    with pytest.raises(TypeError, match="refusing to write a float"):
        codec.dumps({"amount": 1.5})


def test_codec_refuses_a_float_wherever_it_hides_and_writes_decimals_digit_for_digit():
    for value in ({"requests": [{"body": {"amount": 1.5}}]}, [(1, 2.0)], {"a": {"b": [Decimal("1"), 0.1]}}):
        with pytest.raises(TypeError, match="refusing to write a float"):
            codec.dumpb(value)
    with pytest.raises(ValueError, match="non-finite"):
        codec.dumpb({"amount": Decimal("Infinity")})
    text = codec.dumps(
        {"b": [Decimal("12345678901234567890.10"), Decimal("1E+2"), Decimal("-0.00")], "a": "é\n"}
    )
    assert text == '{"b":[12345678901234567890.10,100,-0.00],"a":"é\\n"}'
    assert codec.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'


def test_codec_writes_integers_of_any_size():
    # A caller may send an amount of 10**30 as a JSON integer; the spool and reports echo it back.
    value = {"amount": 123456789012345678901234567890, "n": [-(2**64), 2**64 - 1, True]}
    assert (
        codec.dumps(value)
        == '{"amount":123456789012345678901234567890,"n":[-18446744073709551616,18446744073709551615,true]}'
    )
    assert codec.loads(codec.dumps(value)) == value
    assert codec.dumps({1: "a", "b": {2: 3}}) == '{"1":"a","b":{"2":3}}'
