"""The customerPayment contract, validated strictly before anything reaches the target.

Field types follow the Edm types of the Graph page; string lengths follow Business Central's
Code[n] / Text[n] columns. Amounts are `Decimal` from the first byte to the last: the JSON codec
never produces floats, and the validator refuses any it is handed.
"""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from .amounts import parse_amount

ODATA_TYPE = "#microsoft.graph.customerPayment"
# Never sent: `id` and `lastModifiedDateTime` are read-only; `journalDisplayName` is documented read-only
# in API v2.0 and page 30055 takes the batch from the journal id, so a value in the body changes nothing.
READ_ONLY = ("id", "lastModifiedDateTime", "journalDisplayName")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# ASCII digits only, as for amounts (`amounts`): `\d` would take every other script's digits too.
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class Rules:
    """What validation depends on besides the record itself (from settings, or the input's form)."""

    amount_decimals: int = 2
    target: Literal["graph", "businesscentral"] = "graph"
    from_text: bool = False  # CSV cells are text: allow "10" for an Int32 there, not in JSON
    # How callers write amounts (PAYMENTS_AMOUNT_SIGN): "negative" as Business Central posts a customer
    # payment, or "positive" as money received, which the relay negates before sending.
    amount_sign: Literal["negative", "positive"] = "negative"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record is invalid: a JSON Pointer (RFC 6901) into the record and a sentence."""

    pointer: str
    detail: str

    def under(self, prefix: str) -> FieldError:
        return FieldError(prefix + self.pointer, self.detail)

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.detail}


def as_dicts(errors: list[FieldError]) -> list[dict[str, str]]:
    """Field errors as JSON objects, for problem documents and reports."""
    return [e.as_dict() for e in errors]


def _amount(value: Any, rules: Rules) -> Decimal:
    return parse_amount(value, decimals=rules.amount_decimals, sign=rules.amount_sign)


def _int32(value: Any, rules: Rules) -> Any:
    if isinstance(value, str) and rules.from_text and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            raise ValueError("must be a whole number written without a decimal point or exponent")
        raise ValueError("must be a whole number (Int32)")
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"must be between {INT32_MIN} and {INT32_MAX} (Int32)")
    return value


# The model takes only exact, already-parsed values (Decimal, date, UUID, int): `check` turns JSON
# and CSV values into them with the contract's own rules and messages, so the model can never
# quietly coerce a float into an amount or a timestamp into a date.
Guid = uuid.UUID  # pydantic-core parses GUID text itself (any standard form)
Int32 = Annotated[int, Strict(), Field(ge=INT32_MIN, le=INT32_MAX)]
EdmDate = date  # given as text, pre-checked to be exactly YYYY-MM-DD by `check`
Amount = Annotated[Decimal, Strict()]


# No control characters (C0, DEL, C1) in any text property: a NUL or an escape sequence in a document
# number reaches the books, the reports and people's terminals.
_NO_CONTROLS = r"^[^\x00-\x1f\x7f-\x9f]*$"


def _text(n: int) -> Any:
    return Field(None, max_length=n, strict=True, pattern=_NO_CONTROLS)


class CustomerPayment(BaseModel):
    """The writable properties of a customerPayment; `None` means absent, and absent is not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, arbitrary_types_allowed=False)

    lineNumber: Int32 | None = None
    customerId: Guid | None = None
    customerNumber: str | None = _text(20)  # Code[20]
    contactId: str | None = _text(250)
    postingDate: EdmDate | None = None
    documentNumber: str | None = _text(20)  # Code[20]
    externalDocumentNumber: str | None = _text(35)  # Code[35] in Business Central
    amount: Amount
    appliesToInvoiceId: Guid | None = None
    appliesToInvoiceNumber: str | None = _text(20)  # Code[20]
    description: str | None = _text(100)  # Text[100]
    comment: str | None = _text(250)  # Text[250]

    def payload(self) -> dict[str, Any]:
        """The JSON object sent to the target: given properties only, amount as an exact Decimal.
        A fresh dict each call (callers may change it); built once per payment."""
        return dict(self._payload)

    @cached_property
    def _payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fields = self.model_fields_set
        values = self.__dict__
        for name in WRITABLE:
            if name not in fields:
                continue
            value = values[name]
            kind = type(value)
            if kind is str or kind is Decimal or kind is int:
                pass
            elif value is None:
                continue
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, uuid.UUID):
                value = str(value)  # lower-case, hyphenated
            out[name] = value
        return out


WRITABLE: tuple[str, ...] = tuple(CustomerPayment.model_fields)
_WRITABLE = frozenset(WRITABLE)
KNOWN: frozenset[str] = frozenset((*WRITABLE, *READ_ONLY, "@odata.type"))
_BY_LOWER = {name.lower(): name for name in KNOWN}

_KIND = {
    "customerNumber": "Code[20]",
    "documentNumber": "Code[20]",
    "externalDocumentNumber": "Code[35]",
    "appliesToInvoiceNumber": "Code[20]",
    "description": "Text[100]",
    "comment": "Text[250]",
    "contactId": "String(250)",
}


@dataclass(slots=True)
class Checked:
    """The outcome of validating one record: a payment, or the reasons it is not one."""

    payment: CustomerPayment | None
    errors: list[FieldError] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # read-only properties dropped from the input

    @property
    def ok(self) -> bool:
        return self.payment is not None


def _suggest(name: str) -> str:
    exact = _BY_LOWER.get(name.lower())
    if exact:
        return f"; did you mean {exact!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name, sorted(KNOWN), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


def _pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    name = str(err["loc"][0]) if err["loc"] else ""
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return f"must be a string{' (' + _KIND[name] + ')' if name in _KIND else ''}"
    given = err.get("input")
    if kind == "uuid_type":
        return "must be a GUID string such as 3992e4c5-e4c5-3992-c5e4-9239c5e49239"
    if kind == "uuid_parsing":
        return f"{given!r} is not a GUID (expected 8-4-4-4-12 hexadecimal digits)"
    if kind.startswith("date"):
        return f"{given!r} is not a calendar date"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        if isinstance(given, Decimal) and given.is_finite() and given == given.to_integral_value():
            return "must be a whole number written without a decimal point or exponent"
        return "must be a whole number (Int32)"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"must be between {INT32_MIN} and {INT32_MAX} (Int32)"
    if kind == "string_pattern_mismatch":
        bad = next(c for c in str(given) if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)
        return (
            f"contains the control character U+{ord(bad):04X}; text properties take printable characters only"
        )
    if kind == "string_too_long":
        limit = err["ctx"]["max_length"]
        return f"is {len(err['input'])} characters; at most {limit} are allowed ({_KIND.get(name, 'String')})"
    return str(err["msg"]).removeprefix("Value error, ")


def _convert(
    data: dict[str, Any], name: str, parse: Any, rules: Rules, errors: list[FieldError], failed: set[str]
) -> None:
    """Replace a value by its parsed form, or drop it and say why (the model then skips it)."""
    try:
        data[name] = parse(data[name], rules)
    except ValueError as exc:
        errors.append(FieldError(_pointer(name), str(exc)))
        failed.add(name)
        del data[name]


_DEFAULT_RULES = Rules()
_IDENTIFYING = frozenset(("customerId", "customerNumber", "appliesToInvoiceId", "appliesToInvoiceNumber"))
_validate = CustomerPayment.__pydantic_validator__.validate_python
_WRITABLE_SET = _WRITABLE


# An object with more properties than this is refused whole, before each property is explained.
MAX_PROPERTIES = 64


def check(record: Any, rules: Rules = _DEFAULT_RULES) -> Checked:
    """Validate one record against the contract, collecting every problem rather than the first.

    Written for speed on the common case (a clean record of known properties): set operations
    instead of a per-key loop, pydantic-core for the types it can check exactly, Python only for
    the money rules and for explaining failures."""
    if type(record) is not dict:
        return Checked(None, [FieldError("", "must be a JSON object (one customerPayment)")])
    if len(record) > MAX_PROPERTIES:  # not a payment: explaining each property would cost without end
        return Checked(
            None,
            [
                FieldError(
                    "",
                    f"has {len(record)} properties; a customerPayment has at most {len(KNOWN)}: send one "
                    "object per payment",
                )
            ],
        )
    errors: list[FieldError] = []
    ignored: list[str] = []
    failed: set[str] = set()
    if record.keys() <= _WRITABLE_SET:
        data = record  # copied below only if a value has to be replaced
    else:
        data = {}
        for name, value in record.items():
            if name in _WRITABLE_SET:
                data[name] = value
            elif name in READ_ONLY:
                ignored.append(name)
            elif name == "@odata.type":
                if value != ODATA_TYPE:
                    errors.append(
                        FieldError(_pointer(name), f"must be {ODATA_TYPE!r} when given, got {value!r}")
                    )
            else:
                errors.append(
                    FieldError(_pointer(name), f"is not a customerPayment property{_suggest(name)}")
                )
    amount = data.get("amount")
    if (
        type(amount) is Decimal
        and amount
        and amount.is_finite()
        and amount.as_tuple().exponent >= -rules.amount_decimals
        and amount.adjusted() < 14  # below 10**14: inside the AL range (the rest is checked exactly)
        and amount.is_signed() is (rules.amount_sign == "negative")
    ):
        pass  # the common case, decided without a call
    elif "amount" in data:
        data = data if data is not record else dict(record)
        _convert(data, "amount", _amount, rules, errors, failed)
    posting = data.get("postingDate")
    if posting is not None and (
        type(posting) is not str or len(posting) != 10 or not _DATE_TEXT.fullmatch(posting)
    ):
        errors.append(FieldError("/postingDate", f"must be a date written YYYY-MM-DD, got {posting!r}"))
        failed.add("postingDate")
        data = data if data is not record else dict(record)
        del data["postingDate"]
    if rules.from_text and type(data.get("lineNumber")) is str:
        data = data if data is not record else dict(record)
        _convert(data, "lineNumber", _int32, rules, errors, failed)
    if rules.target == "businesscentral" and data.get("contactId") is not None:
        errors.append(FieldError("/contactId", "is not supported by the Business Central API (Graph only)"))
    payment: CustomerPayment | None = None
    try:
        payment = _validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            if name not in failed:  # already explained above
                errors.append(FieldError(_pointer(name) if name else "", _describe(dict(err))))
    if not (
        data.get("customerId")
        or data.get("customerNumber")
        or data.get("appliesToInvoiceId")
        or data.get("appliesToInvoiceNumber")
        or _IDENTIFYING & failed
    ):
        errors.append(
            FieldError(
                "",
                "customerId or customerNumber is required to identify the customer, unless the invoice it "
                "pays is given (appliesToInvoiceId or appliesToInvoiceNumber): Business Central then takes "
                "the customer from the invoice",
            )
        )
    if errors:
        errors.sort(key=lambda e: (_order(e.pointer), e.pointer))
        return Checked(None, errors, ignored)
    if rules.amount_sign == "positive":  # money received: sent as the credit Business Central records
        payment = payment.model_copy(update={"amount": -payment.amount})  # type: ignore[union-attr]
    return Checked(payment, [], ignored)


_ORDER = {_pointer(name): i for i, name in enumerate(WRITABLE)}


def _order(pointer: str) -> int:
    return _ORDER.get(pointer, -1 if pointer == "" else len(_ORDER))
