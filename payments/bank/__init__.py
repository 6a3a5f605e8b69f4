"""Bank statements in: camt.052/053/054, MT940 and BAI2 read into one model (`statement`), and the cash
application that finds the customer and the invoice each credit pays (`matching`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Protocol

from ..errors import InputError
from . import bai2, camt, mt940
from .statement import Statement, Transaction

HEAD_BYTES = 64 * 1024  # enough to see past an XML declaration and comments before the root
MAX_TEXT_STATEMENT_BYTES = 20 * 1024 * 1024  # MT940 and BAI2 are read whole; camt is streamed

_XML_START = re.compile(rb"^\s*(?:<\?xml|<!--|<[A-Za-z])")


class Reader(Protocol):
    format: str
    statements: list[Statement]

    def transactions(self) -> Iterator[Transaction]: ...


def kind_of(head: bytes) -> str | None:
    """ "camt", "mt940" or "bai2" when the first bytes are a bank statement; None for anything else
    (a payment file). Decided by content, so a statement is read whatever its file name."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    if _XML_START.match(text):
        return "camt"
    if bai2.looks_like(text):
        return "bai2"
    if mt940.has_tags(mt940.decode(text)) or text.lstrip().startswith(b"{1:"):
        return "mt940"  # a fragment too, so that it is told what an MT940 statement lacks
    return None


def reader_for(kind: str, stream: IO[bytes], name: str) -> Reader:
    if kind == "camt":
        return camt.CamtReader(stream, name)
    data = stream.read(MAX_TEXT_STATEMENT_BYTES + 1)
    if len(data) > MAX_TEXT_STATEMENT_BYTES:
        raise InputError(
            f"an {kind.upper()} file over {MAX_TEXT_STATEMENT_BYTES // (1024 * 1024)} MiB: split it by day"
        )
    if kind == "mt940":
        return mt940.Mt940Reader(data, name)
    if kind == "bai2":
        return bai2.Bai2Reader(data, name)
    raise ValueError(f"no bank statement reader for {kind!r}")  # pragma: no cover - kind_of decides


__all__ = ["HEAD_BYTES", "Reader", "Statement", "Transaction", "kind_of", "reader_for"]
