"""What a payer's remittance text can name: invoice numbers in the forms people write them, ISO 11649
creditor references, and the words of a company's name that tell it apart (matching compares them)."""

from __future__ import annotations

import re
import unicodedata

from .receivables import normal_iban

MIN_REFERENCE = 5  # Business Central matches document numbers of more than 4 characters only
MAX_GROUPS = 6  # digit groups joined across separators ("104 711" -> "104711")

# A number, and the groups of two or three digits that may follow it ("104 711", "169 89"); not inside a
# longer number, and never groups of four (IBANs, years).
_NUMBER = re.compile(r"(?<![0-9])[0-9]+(?:[ \-][0-9]{2,3}(?![0-9]))*(?![0-9])")
_IBAN = re.compile(
    r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,8}(?: ?[A-Z0-9]{1,3})?\b"
)  # an account, not a reference
_DECIMALS = re.compile(r"[.,][0-9]{2}(?![0-9])")  # what follows an amount's whole part
_GLUED = re.compile(r"([A-Z]+)-?$")  # letters written against a number, at most a dash between
_INVOICE_WORDS = frozenset(
    ("INV", "INVOICE", "RE", "RG", "RECHNUNG", "NR", "NO", "FACT", "FACTUUR", "FACTURE", "FAKTURA", "BILL")
)
_ALNUM_RUN = re.compile(r"[A-Z0-9]+(?:[ \-./_][A-Z0-9]+)*")
_RF = re.compile(r"RF[0-9]{2}[A-Z0-9]{1,21}")
# Words that say nothing about who a company is.
_NOISE = frozenset(
    "gmbh ag kg ohg ug ltd limited plc inc llc llp corp corporation co company bv nv sa sas sarl spa srl "
    "ab as oy the and und et of for".split()
)


def rf_valid(reference: str) -> bool:
    """ISO 11649: `RF`, two check digits, up to 21 characters; mod 97 of the rearranged digits is 1."""
    ref = reference.replace(" ", "").upper()
    if not _RF.fullmatch(ref):
        return False
    moved = ref[4:] + ref[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def fold(text: str) -> str:
    """Upper-case ASCII letters and digits as payers' banks transmit them (ü -> U, ß -> SS)."""
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in text if not unicodedata.combining(c)).upper()


def compact(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def reference_forms(number: str) -> set[str]:
    """How an invoice number may be written and still be recognised: its letters and digits without
    separators ("SI-104711" -> "SI104711") and its last run of digits ("104711"), when long enough."""
    forms = set()
    whole = compact(fold(number))
    if len(whole) >= MIN_REFERENCE:
        forms.add(whole)
    digits = re.findall(r"[0-9]+", number)
    if digits and len(digits[-1]) >= MIN_REFERENCE:
        forms.add(digits[-1].lstrip("0") or "0")
    return forms


def text_references(text: str) -> set[str]:
    """Every token a payer's text may name an invoice by:
    - runs of letters and digits with their separators removed ("SI-104-711" -> "SI104711");
    - numbers, written whole or in groups of two or three digits across single spaces or dashes
      ("104 711", "22-004"),
      and each group run taken on its own. A number glued to letters ("SO-104711", "DE89...") counts
      only together with them, unless the letters say "invoice" ("INV104711", "RE-104711"); a number
      followed by decimals ("12 500,00") is an amount, and an IBAN an account: never references."""
    found: set[str] = set()
    folded = _IBAN.sub(lambda m: " " if normal_iban(m.group()) else m.group(), fold(text))
    for m in _NUMBER.finditer(folded):
        before, after = folded[: m.start()], folded[m.end() :]
        if _DECIMALS.match(after):
            continue
        glued = _GLUED.search(before)
        if glued is not None and glued.group(1) not in _INVOICE_WORDS:
            continue
        groups = re.split(r"[ \-]", m.group())
        for start in range(len(groups)):
            for end in range(start + 1, min(len(groups), start + MAX_GROUPS) + 1):
                joined = "".join(groups[start:end])
                if len(joined) >= MIN_REFERENCE:
                    found.add(joined.lstrip("0") or "0")
    for run in _ALNUM_RUN.findall(folded):
        parts = re.split(r"[ \-./_]", run)
        for start in range(len(parts)):
            for end in range(start + 1, min(len(parts), start + MAX_GROUPS) + 1):
                joined = "".join(parts[start:end])
                if len(joined) >= MIN_REFERENCE and not joined.isdigit():
                    found.add(joined)
    return found


def name_words(name: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", fold(name).lower())
    return {w for w in words if len(w) >= 3 and w not in _NOISE}


def name_key(name: str) -> str:
    return " ".join(sorted(name_words(name)))
