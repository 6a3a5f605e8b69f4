"""ISO 20022 cash management messages: camt.052 (report), camt.053 (statement), camt.054 (notification).

Read as a stream (one entry in memory at a time), with defusedxml: no DTD, no entity expansion, no
network access, so a hostile file can neither blow up memory nor make the relay fetch anything.
The element paths are the same in every version (.001.02 to .001.13) except for the few listed
where they are read; namespaces differ by version and are ignored.

Written here rather than taken from a library: the Python camt readers on PyPI read no camt.054
or read .08 amounts wrongly (REFERENCE 8), and none streams.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from ..errors import InputError
from .statement import Direction, Keys, Statement, Status, Transaction, clean, reference

_MESSAGE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:(camt\.05[234])\.001\.(\d\d)")
# The element under the document root that holds statements, and what one statement is called.
_RECORD = {"camt.052": "Rpt", "camt.053": "Stmt", "camt.054": "Ntfctn"}
_NAMES = {"Rpt": "report", "Stmt": "statement", "Ntfctn": "notification"}
_STATUS: dict[str, Status] = {"BOOK": "booked", "PDNG": "pending", "INFO": "info", "FUTR": "pending"}
_MAX_TEXT = 10_000  # characters of remittance text kept per transaction (a payment needs 250)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: Element | None, *path: str) -> Element | None:
    """The first element along a path of local names, ignoring namespaces."""
    for name in path:
        if element is None:
            return None
        element = next((c for c in element if _local(c.tag) == name), None)
    return element


def _children(element: Element | None, name: str) -> list[Element]:
    return [] if element is None else [c for c in element if _local(c.tag) == name]


def _text(element: Element | None, *path: str) -> str:
    found = _child(element, *path)
    return clean(found.text) if found is not None and found.text else ""


def _amount(element: Element | None, where: str) -> tuple[Decimal, str] | None:
    """An `Amt`-like element: its exact value and currency; never a float."""
    if element is None or not (element.text or "").strip():
        return None
    text = element.text.strip()
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        raise InputError(f"{where}: the amount {text[:40]!r} is not a decimal number")
    try:
        return Decimal(text), element.get("Ccy", "")
    except InvalidOperation:  # pragma: no cover - the pattern above admits only valid decimals
        raise InputError(f"{where}: the amount {text[:40]!r} is not a decimal number") from None


def _date(element: Element | None) -> date | None:
    """`Dt` or `DtTm` under a date choice (BookgDt, ValDt): the calendar date."""
    text = _text(element, "Dt") or _text(element, "DtTm")[:10]
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _direction(element: Element | None) -> Direction | None:
    code = _text(element, "CdtDbtInd")
    return "credit" if code == "CRDT" else "debit" if code == "DBIT" else None


def _signed(element: Element | None, where: str) -> Decimal | None:
    amount = _amount(_child(element, "Amt"), where)
    if amount is None:
        return None
    return amount[0] if _direction(element) != "debit" else -amount[0]


def message_of(head: bytes) -> tuple[str, str] | None:
    """("camt.053", "08") when the first bytes declare a camt.052/053/054 namespace."""
    m = _MESSAGE.search(head.decode("utf-8", "replace"))
    return (m.group(1), m.group(2)) if m else None


class CamtReader:
    """Reads one camt file: `transactions()` yields every transaction; `statements` fills as it goes."""

    def __init__(self, stream: IO[bytes], name: str):
        self.stream = stream
        self.name = name
        self.statements: list[Statement] = []
        self.format = ""

    def transactions(self) -> Iterator[Transaction]:
        record_tag = ""
        stack: list[Element] = []
        statement: Statement | None = None
        keys = Keys()
        entry_number = 0
        try:
            for event, element in iterparse(self.stream, events=("start", "end"), forbid_dtd=True):
                tag = _local(element.tag)
                if event == "start":
                    if not stack:
                        message = _MESSAGE.fullmatch(element.tag[1:].partition("}")[0])
                        if tag != "Document" or message is None:
                            namespace = (
                                element.tag[1:].partition("}")[0] if element.tag.startswith("{") else ""
                            )
                            raise InputError(
                                "not an ISO 20022 camt.052, camt.053 or camt.054 message (the root "
                                f"element is {tag[:40]!r} in {namespace[:80] or 'no namespace'!r}): "
                                "send the bank statement "
                                "as camt.053 (or camt.052/camt.054), MT940 or BAI2"
                            )
                        self.format = f"{message.group(1)}.001.{message.group(2)}"
                        record_tag = _RECORD[message.group(1)]
                    elif tag == record_tag and len(stack) == 2:
                        statement = Statement(self.format)
                        self.statements.append(statement)
                        entry_number = 0
                    stack.append(element)
                    continue
                stack.pop()
                parent = stack[-1] if stack else None
                if statement is not None and parent is not None and _local(parent.tag) == record_tag:
                    if tag == "Ntry":
                        entry_number += 1
                        where = f"statement {len(self.statements)}, entry {entry_number}"
                        yield from self._entry(element, statement, where, keys)
                        parent.remove(element)  # what was read is let go: memory stays one entry
                    elif tag in ("Id", "Acct", "Bal", "TxsSummry"):
                        self._head(element, tag, statement)
                    if tag != "Ntry":
                        element.clear()
                elif tag == record_tag and statement is not None:
                    statement.tie_out()
                    statement = None
                    if parent is not None:
                        parent.remove(element)
        except DefusedXmlException as exc:
            raise InputError(
                f"the XML declares a DTD or entities ({type(exc).__name__}), which a camt file never "
                "needs and "
                "this relay does not expand: send the camt file as the bank delivered it"
            ) from None
        except ParseError as exc:
            raise InputError(
                f"the file is not well-formed XML ({exc}): it may be cut off or damaged; send the complete "
                "camt file as the bank delivered it"
            ) from None
        if not self.format:
            raise InputError("the file holds no XML element: send the camt file as the bank delivered it")
        if not self.statements:
            raise InputError(
                f"the {self.format} message holds no {_NAMES[record_tag]} ({record_tag} element): "
                "send a bank "
                "statement file with at least one statement, its account and its entries"
            )

    def _head(self, element: Element, tag: str, statement: Statement) -> None:
        if tag == "Id":
            statement.id = clean(element.text)
        elif tag == "Acct":
            statement.account = _text(element, "Id", "IBAN") or _text(element, "Id", "Othr", "Id")
            statement.currency = _text(element, "Ccy")
        elif tag == "Bal":
            code = _text(element, "Tp", "CdOrPrtry", "Cd")
            if code not in ("OPBD", "PRCD", "CLBD"):
                return  # available, forward and interim balances say nothing about the booked entries
            if code != "CLBD" and statement.opening is not None:
                return  # OPBD and PRCD both open; the first one given counts
            value = _signed(element, f"balance {code}")
            currency = _child(element, "Amt").get("Ccy", "") if _child(element, "Amt") is not None else ""
            expected = statement.currency or currency
            if currency and expected and currency != expected and not statement.balance_problem:
                statement.balance_problem = f"the {code} balance is in {currency}, the account in {expected}"
            if not statement.currency:
                statement.currency = currency
            if code == "CLBD":
                statement.closing = value
            else:
                statement.opening = value
        elif tag == "TxsSummry":
            for name, target in (("TtlCdtNtries", "declared_credits"), ("TtlDbtNtries", "declared_debits")):
                total = _child(element, name)
                if total is None:
                    continue
                count = _text(total, "NbOfNtries")
                try:
                    setattr(
                        statement,
                        target,
                        (int(count) if count.isdigit() else None, Decimal(_text(total, "Sum") or "0")),
                    )
                except InvalidOperation:
                    raise InputError(f"the statement's {name}/Sum is not a decimal number") from None

    def _entry(self, ntry: Element, statement: Statement, where: str, keys: Keys) -> Iterator[Transaction]:
        amount = _amount(_child(ntry, "Amt"), where)
        direction = _direction(ntry)
        if amount is None or direction is None:
            raise InputError(
                f"{where}: an entry needs Amt and CdtDbtInd (CRDT or DBIT); the file is not a complete camt "
                "statement: send it as the bank delivered it"
            )
        value, currency = amount
        currency = currency or statement.currency
        status_code = _text(ntry, "Sts", "Cd") or _text(ntry, "Sts")  # .08 has Sts/Cd, earlier Sts
        status = _STATUS.get(status_code, "info")
        reversal = _text(ntry, "RvslInd").lower() in ("true", "1")
        statement.book(direction, value, status)
        entry_reference = reference(_text(ntry, "AcctSvcrRef"))
        base: dict[str, Any] = {
            "statement": len(self.statements) - 1,
            "direction": direction,
            "currency": currency,
            "status": status,
            "reversal": reversal,
            "booking_date": _date(_child(ntry, "BookgDt")),
            "value_date": _date(_child(ntry, "ValDt")),
            "entry_reference": entry_reference or reference(_text(ntry, "NtryRef")),
            "bank_code": _bank_code(_child(ntry, "BkTxCd")),
        }
        details = [tx for nd in _children(ntry, "NtryDtls") for tx in _children(nd, "TxDtls")]
        if not details:
            tx = Transaction(where, amount=value, bank_reference=entry_reference, **base)
            keys.assign(tx, statement.account)
            yield tx
            return
        parts = [self._details(tx, i, base, where, len(details)) for i, tx in enumerate(details, start=1)]
        if len(parts) == 1:
            # One transaction: what the entry booked is its amount. A different amount in the details
            # (another value, another currency) means the file contradicts itself: review, never post.
            part, own = parts[0]
            if own is not None and (own[0] != value or (own[1] and own[1] != currency)):
                part.problem = part.problem or (
                    f"the entry books {value} {currency} but its transaction says "
                    f"{own[0]} {own[1] or currency}"
                )
            part.amount = value
            part.bank_reference = part.bank_reference or entry_reference
        else:
            amounts = [own for _, own in parts]
            foreign = sorted({own[1] for own in amounts if own is not None and own[1] and own[1] != currency})
            total = sum((own[0] for own in amounts if own is not None), Decimal(0))
            said = (
                "some carry no amount"
                if None in amounts
                else f"they are in {', '.join(foreign)}"
                if foreign
                else f"they sum to {total}"
                if total != value
                else ""
            )
            for part, _ in parts:
                if part.bank_reference and part.bank_reference == entry_reference:
                    part.bank_reference = (
                        ""  # the entry's reference copied into each: not one per transaction
                    )
                if said:
                    part.problem = part.problem or (
                        f"the entry books {value} {currency} in {len(parts)} transactions, but {said}: the "
                        "split cannot be trusted"
                    )
        for part, _ in parts:
            keys.assign(part, statement.account)
            yield part

    def _details(
        self, tx: Element, position: int, base: dict[str, Any], where: str, count: int
    ) -> tuple[Transaction, tuple[Decimal, str] | None]:
        """One `TxDtls` as a transaction of its entry, and the amount it states for itself (if any)."""
        here = f"{where}, transaction {position}" if count > 1 else where
        refs = _child(tx, "Refs")
        own = _amount(_child(tx, "Amt"), here) or _amount(_child(tx, "AmtDtls", "TxAmt", "Amt"), here)
        problem = ""
        tx_direction = _direction(tx)
        if tx_direction is not None and tx_direction != base["direction"]:
            # The entry's booking decides which way the money went (camt.054 samples book a DBIT entry
            # whose transactions say CRDT): never turned into a credit, and sent to review.
            problem = (
                f"the transaction says {'CRDT' if tx_direction == 'credit' else 'DBIT'} inside a "
                f"{'CRDT' if base['direction'] == 'credit' else 'DBIT'} entry; the entry's booking decides"
            )
        parties = _child(tx, "RltdPties")
        payer = ""
        for role in ("Dbtr", "UltmtDbtr"):
            party = _child(parties, role)
            payer = _text(party, "Pty", "Nm") or _text(party, "Nm")  # .08 wraps the party in Pty
            if payer:
                break
        account = _child(parties, "DbtrAcct", "Id")
        remittance = _child(tx, "RmtInf")
        texts = [clean(u.text) for u in _children(remittance, "Ustrd") if u.text]
        structured = _children(remittance, "Strd")
        creditor_refs = [_text(s, "CdtrRefInf", "Ref") for s in structured]
        documents = tuple(
            d for s in structured for info in _children(s, "RfrdDocInf") if (d := _text(info, "Nb"))
        )
        extra = _text(tx, "AddtlTxInf")
        transaction = Transaction(
            here,
            **base,
            amount=own[0] if own is not None else None,
            bank_reference=reference(_text(refs, "AcctSvcrRef")),
            position=position,
            end_to_end=reference(_text(refs, "EndToEndId")) or reference(_text(refs, "UETR")),
            payer_name=payer,
            payer_account=(_text(account, "IBAN") or _text(account, "Othr", "Id")).replace(" ", ""),
            text=" ".join(t for t in (*texts, extra) if t)[:_MAX_TEXT],
            creditor_reference=next((r for r in creditor_refs if r), ""),
            documents=documents,
            problem=problem,
        )
        return transaction, own


def _bank_code(element: Element | None) -> str:
    domain = _child(element, "Domn")
    if domain is not None:
        family = _child(domain, "Fmly")
        return "/".join(
            x for x in (_text(domain, "Cd"), _text(family, "Cd"), _text(family, "SubFmlyCd")) if x
        )
    return _text(element, "Prtry", "Cd")
