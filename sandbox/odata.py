"""The OData side of the protocol: error answers, literals, authentication, JSON bodies, `$filter`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from .jsonio import loads

JSON = "application/json; charset=utf-8"
JSON_ODATA = "application/json; odata.metadata=minimal; charset=utf-8"
BATCH_JSON = "application/json"
INNER_JSON_ODATA = "application/json; odata.metadata=minimal"
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class Call(Protocol):
    """What request handling reads of a request: a standalone HTTP one or an inner request of a batch."""

    command: str
    headers: Any  # case-insensitive `get` and `[]`
    parsed: Any  # the body already parsed (an inner request), or None: parse it from its bytes


class ODataError(Exception):
    """Raised inside request handling; becomes an OData error answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_body(code: str, message: str, graph: bool, client_request_id: str | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if graph:
        error["innerError"] = {
            "request-id": str(uuid.uuid4()),
            "client-request-id": client_request_id,
            "date": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        }
    return {"error": error}


@lru_cache(maxsize=1024)
def norm_guid(value: str) -> str | None:
    """Lower-case canonical GUID, tolerating OData quotes/braces in URL keys; None if not a GUID."""
    text = value.strip().strip("'\"").strip("{}")
    return text.lower() if GUID_RE.fullmatch(text) else None


def check_auth(call: Call) -> None:
    """Any bearer token will do (the sandbox is not a security boundary); none at all is a 401."""
    auth = call.headers.get("Authorization") or ""
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ODataError(
            401,
            "Authentication_InvalidCredentials",
            "The credentials provided are incorrect",
            {"WWW-Authenticate": "Bearer"},
        )


def parse_json(call: Call, body: bytes) -> Any:
    """A JSON request body with exact Decimal numbers; 415 unless it says application/json."""
    ctype = (call.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise ODataError(
            415,
            "BadRequest_InvalidContentType",
            f"The content type '{call.headers.get('Content-Type') or ''}' is not supported; "
            "use 'application/json'.",
        )
    if call.parsed is not None:
        return call.parsed
    try:
        return loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ODataError(
            400, "BadRequest_InvalidRequestBody", f"The request body is not valid JSON: {exc}"
        ) from None


# ----- $filter ---------------------------------------------------------------------------------------------
_CLAUSE_RE = re.compile(
    r"\s*(?P<field>[A-Za-z]+)\s+(?P<op>[A-Za-z]+)\s+(?P<value>'(?:[^']|'')*'|[^\s'()]+)\s*"
)
_AND_RE = re.compile(r"and\s+", re.IGNORECASE)
_FILTER_STRINGS = ("documentNumber", "externalDocumentNumber", "customerNumber")

Clause = Callable[[dict[str, Any]], bool]


def _unsupported(message: str) -> ODataError:
    return ODataError(400, "BadRequest_MethodNotImplemented", message)


def parse_filter(text: str) -> list[Clause]:
    """The small `$filter` subset the relay needs: `<field> eq <literal>` clauses joined by `and`."""
    clauses: list[Clause] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _CLAUSE_RE.match(text, pos)
        if not m:
            raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
        name, op, literal = m.group("field"), m.group("op"), m.group("value")
        if op != "eq":
            raise _unsupported(f"The operator '{op}' is not supported in $filter by the sandbox.")
        clauses.append(_clause(name, literal))
        pos = m.end()
        if pos < len(text):
            a = _AND_RE.match(text, pos)
            if not a:
                raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
            pos = a.end()
    return clauses


def _clause(name: str, literal: str) -> Clause:
    if name in _FILTER_STRINGS:
        if not (len(literal) >= 2 and literal[0] == literal[-1] == "'"):
            raise ODataError(400, "BadRequest_InvalidToken", f"{name} must be compared with a quoted string.")
        want = literal[1:-1].replace("''", "'").upper()
        return lambda p: str(p[name]).upper() == want
    if name == "customerId":
        guid = norm_guid(literal)
        if guid is None:
            raise ODataError(400, "Application_InvalidGUID", f"Invalid GUID string format: '{literal}'.")
        return lambda p: p["customerId"] == guid
    if name in ("amount", "lineNumber"):
        number = literal[:-1] if literal[-1:] in ("m", "M") else literal
        if not NUMBER_RE.fullmatch(number):
            raise ODataError(400, "BadRequest_InvalidToken", f"'{literal}' is not a number.")
        value = Decimal(number)
        return lambda p: Decimal(p[name]) == value
    raise _unsupported(f"Filtering on '{name}' is not supported by the sandbox.")


# ----- typed $filter and $select (the receivables entities) ------------------------------------------------
# A property's kind: "code" (Code[n], stored upper-case), "text", "decimal", "date", "datetime", "guid", or a
# tuple of an enum's values.
Kind = str | tuple[str, ...]
_TYPED_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_TYPED_CLAUSE_RE = re.compile(
    r"\s*(?P<field>[A-Za-z@.]+)\s+(?P<op>[A-Za-z]+)\s+(?P<value>'(?:[^']|'')*'|[^\s'()]+)\s*"
)


def no_property(name: str, entity_type: str) -> ODataError:
    """The URI parser's answer to a property the entity does not have (in `$filter` or `$select`):
    an ODataNotFoundException-family error, BadRequest_NotFound (webservices/dynamics-error-codes.md)."""
    return ODataError(
        400,
        "BadRequest_NotFound",
        f"Could not find a property named '{name}' on type 'Microsoft.NAV.{entity_type}'.",
    )


def parse_typed_filter(text: str, schema: dict[str, Kind], entity_type: str) -> list[Clause]:
    """`$filter` for an entity with a known schema: `<property> <eq|ne|gt|ge|lt|le> <literal>` clauses
    joined by `and`. Compares the rendered entity's values (strings, exact Decimals)."""
    clauses: list[Clause] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TYPED_CLAUSE_RE.match(text, pos)
        if not m:
            raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
        name, op, literal = m.group("field"), m.group("op"), m.group("value")
        if name not in schema:
            raise no_property(name, entity_type)
        if op not in _TYPED_OPS:
            raise _unsupported(f"The operator '{op}' is not supported in $filter by the sandbox.")
        clauses.append(_typed_clause(name, _TYPED_OPS[op], literal, schema[name]))
        pos = m.end()
        if pos < len(text):
            a = _AND_RE.match(text, pos)
            if not a:
                raise _unsupported(f"The $filter expression '{text}' is not supported by the sandbox.")
            pos = a.end()
    return clauses


def _typed_clause(name: str, compare: Callable[[Any, Any], bool], literal: str, kind: Kind) -> Clause:
    quoted = len(literal) >= 2 and literal[0] == literal[-1] == "'"
    if isinstance(kind, tuple) or kind in ("code", "text"):
        if not quoted:
            raise ODataError(400, "BadRequest_InvalidToken", f"{name} must be compared with a quoted string.")
        want = literal[1:-1].replace("''", "'")
        if isinstance(kind, tuple):
            if want == " " and "_x0020_" in kind:
                want = "_x0020_"
            if want not in kind:
                raise ODataError(
                    400, "BadRequest", f"The value '{want}' is not one of {name}'s values: {', '.join(kind)}."
                )
            return lambda row: compare(row[name], want)
        if kind == "code":  # Code[n] is stored upper-case: a lower-case literal finds it too
            want = want.upper()
            return lambda row: compare(str(row[name]).upper(), want)
        return lambda row: compare(row[name], want)
    if kind == "decimal":
        number = literal[:-1] if literal[-1:] in ("m", "M") else literal
        if quoted or not NUMBER_RE.fullmatch(number):
            raise ODataError(400, "BadRequest_InvalidToken", f"'{literal}' is not a number.")
        value = Decimal(number)
        return lambda row: compare(row[name], value)
    if kind == "guid":
        guid = norm_guid(literal)
        if guid is None:
            raise ODataError(400, "Application_InvalidGUID", f"Invalid GUID string format: '{literal}'.")
        return lambda row: compare(row[name], guid)
    # dates and times: ISO literals, unquoted in OData; ISO text compares in date order
    if quoted or not re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:T[0-9:.]+Z?)?", literal):
        what = "Date" if kind == "date" else "DateTime"
        raise ODataError(400, "BadRequest", f"Unable to convert '{literal}' to {what}.")
    return lambda row: compare(row[name], literal)


def parse_select(text: str, schema: dict[str, Kind], entity_type: str) -> list[str] | None:
    """`$select`'s property names (None: every property); an unknown one is the URI parser's error."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in schema:
            raise no_property(name, entity_type)
    return names or None
