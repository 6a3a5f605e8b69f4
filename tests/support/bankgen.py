"""A seeded generator of labelled bank data for cash application tests: a world of customers and posted
sales invoices, the credits their payers send (each labelled with what the payer meant), and the bank
files that carry them (camt.053/054 in versions .02 and .08, MT940) plus the operator's IBAN map.

It imports nothing from `payments` on purpose: it is an independent oracle of what banks and payers
produce, so a matcher bug cannot hide by being shared with the data it is tested on. Standard library
only; money is `Decimal` with exactly two places; everything is a function of the seed
(`random.Random(seed)`, string seeds for derived streams), so the same seed gives the same bytes.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

CENT = Decimal("0.01")
DEFAULT_BOOKING_DATE = date(2026, 11, 23)
NS = {
    ("053", "08"): "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
    ("053", "02"): "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02",
    ("054", "08"): "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08",
    ("054", "02"): "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02",
}
USTRD_MAX = 140  # characters per RmtInf/Ustrd occurrence

# ---------------------------------------------------------------------------------------------------
# Check digits: IBAN (ISO 13616) and creditor reference (ISO 11649) share ISO 7064 mod 97-10.


def _numeric(text: str) -> int:
    """Letters become two digits (A=10 ... Z=35), as both standards prescribe."""
    return int("".join(str(int(c, 36)) for c in text))


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits of an IBAN: 98 - (BBAN + country + "00") mod 97."""
    return f"{98 - _numeric(bban + country + '00') % 97:02d}"


def iban_valid(iban: str) -> bool:
    """True for an IBAN (electronic or print format) whose check digits hold; length is not checked."""
    s = iban.replace(" ", "").upper()
    return bool(re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", s)) and _numeric(s[4:] + s[:4]) % 97 == 1


def iban_print(iban: str) -> str:
    """The print format: groups of four separated by spaces."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def rf_reference(payload: str) -> str:
    """An ISO 11649 creditor reference for an alphanumeric payload of 1-21 characters: RF, then
    98 - (payload + "RF00" as digits) mod 97 in two digits, then the payload."""
    payload = payload.upper()
    if not re.fullmatch(r"[0-9A-Z]{1,21}", payload):
        raise ValueError(f"not an ISO 11649 payload: {payload!r}")
    return f"RF{98 - _numeric(payload + 'RF00') % 97:02d}{payload}"


def rf_valid(reference: str) -> bool:
    """ISO 11649 validation: the first four characters moved to the end, as digits, mod 97 is 1."""
    s = reference.replace(" ", "").upper()
    return bool(re.fullmatch(r"RF\d{2}[0-9A-Z]{1,21}", s)) and _numeric(s[4:] + s[:4]) % 97 == 1


def _rf_invalid(rng: random.Random, payload: str) -> str:
    """The same payload under check digits that fail (check digits d and d+97 both validate, so
    each candidate is tested rather than merely differing from the right one)."""
    while True:
        ref = f"RF{rng.randrange(100):02d}{payload}"
        if not rf_valid(ref):
            return ref


# ---------------------------------------------------------------------------------------------------
# IBANs: real national layouts (and national check digits where schwifty checks them: FR, BE).

_DE_BLZ = ("37040044", "50010517", "10070000", "20041133", "70150000", "12030000", "43060967")
_NL_BANK = ("ABNA", "INGB", "RABO", "TRIO", "SNSB", "KNAB", "BUNQ")
_FR_BANK = ("30004", "30003", "20041", "30002", "10278", "11315")
_GB_BANK = ("NWBK", "BARC", "LOYD", "HBUK", "MIDL")
_AT_BANK = ("20111", "12000", "32000", "14000", "38000")
_CH_BANK = ("00762", "00230", "00700", "09000", "08390")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _bban(rng: random.Random, country: str) -> str:
    if country == "DE":
        return rng.choice(_DE_BLZ) + _digits(rng, 10)
    if country == "NL":
        while True:  # the old Dutch eleven-test, still what most accounts satisfy
            account = _digits(rng, 10)
            if sum(int(d) * (10 - i) for i, d in enumerate(account)) % 11 == 0:
                return rng.choice(_NL_BANK) + account
    if country == "FR":
        bank, branch, account = rng.choice(_FR_BANK), _digits(rng, 5), _digits(rng, 11)
        key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
        return f"{bank}{branch}{account}{key:02d}"
    if country == "GB":
        return rng.choice(_GB_BANK) + _digits(rng, 6) + _digits(rng, 8)
    if country == "BE":
        first = _digits(rng, 10)
        return f"{first}{int(first) % 97 or 97:02d}"
    if country == "AT":
        return rng.choice(_AT_BANK) + _digits(rng, 11)
    if country == "CH":
        return rng.choice(_CH_BANK) + _digits(rng, 12)
    raise ValueError(f"no IBAN layout for {country}")


def make_iban(rng: random.Random, country: str) -> str:
    """A random IBAN of a country (DE NL FR GB BE AT CH) with valid check digits, electronic format."""
    bban = _bban(rng, country)
    return f"{country}{iban_check_digits(country, bban)}{bban}"


# ---------------------------------------------------------------------------------------------------
# The world


@dataclass(frozen=True)
class Customer:
    """A customer as Business Central knows it; `ibans` are the accounts in the operator's map (none,
    one or two). Payers without a mapped IBAN still pay from some account, just an unknown one."""

    number: str
    name: str
    country: str
    ibans: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invoice:
    """A posted sales invoice (API v2.0 salesInvoices): `total` is totalAmountIncludingTax,
    `remaining` the remainingAmount (0 when Paid, below total when partly paid)."""

    number: str
    customer_number: str
    total: Decimal
    remaining: Decimal
    status: str  # "Open" or "Paid"
    external_document_number: str
    due_date: date
    posting_date: date
    currency: str = "EUR"

    @cached_property
    def digits(self) -> str:
        """The number without its prefix: what payers type when they drop it."""
        return re.sub(r"\D", "", self.number)


@dataclass
class World:
    """Customers and their invoices, with lookups. Invoice digit strings are unique across the world
    whatever the prefix ("SI-104711" and "104711" never both exist), so a payer who drops the prefix
    still means exactly one invoice."""

    seed: int
    customers: tuple[Customer, ...]
    invoices: tuple[Invoice, ...]
    _customers: dict[str, Customer] = field(init=False, repr=False)
    _invoices: dict[str, Invoice] = field(init=False, repr=False)
    _by_digits: dict[str, Invoice] = field(init=False, repr=False)
    _of_customer: dict[str, list[Invoice]] = field(init=False, repr=False)
    _by_iban: dict[str, Customer] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._customers = {c.number: c for c in self.customers}
        self._invoices = {i.number: i for i in self.invoices}
        self._by_digits = {i.digits: i for i in self.invoices}
        self._of_customer = {c.number: [] for c in self.customers}
        for inv in self.invoices:
            self._of_customer[inv.customer_number].append(inv)
        self._by_iban = {iban: c for c in self.customers for iban in c.ibans}
        assert len(self._by_digits) == len(self.invoices), "invoice digit strings must be unique"

    def customer(self, number: str) -> Customer:
        return self._customers[number]

    def invoice(self, number: str) -> Invoice:
        return self._invoices[number]

    def invoice_by_digits(self, digits: str) -> Invoice | None:
        return self._by_digits.get(digits)

    def invoices_of(self, customer_number: str, *, open_only: bool = False) -> list[Invoice]:
        found = self._of_customer.get(customer_number, [])
        return [i for i in found if i.status == "Open"] if open_only else list(found)

    def customer_by_iban(self, iban: str) -> Customer | None:
        return self._by_iban.get(iban.replace(" ", "").upper())

    @property
    def names(self) -> set[str]:
        return {c.name for c in self.customers}

    @property
    def ibans(self) -> set[str]:
        return set(self._by_iban)


_STEMS = (
    "Fabrikam",
    "Contoso",
    "Northwind",
    "Adatum",
    "Litware",
    "Tailspin",
    "Wingtip",
    "Alpine Ski House",
    "Coho Winery",
    "Fourth Coffee",
    "Proseware",
    "Trey Research",
    "Woodgrove",
    "Lucerne",
    "Margie's Travel",
    "Wide World",
    "Blue Yonder",
    "Relecloud",
    "Humongous",
    "Lamna",
    "Nod Publishers",
    "Southridge",
    "Graphic Design Institute",
    "School of Fine Art",
    "Müller & Söhne",
    "Schröder",
    "Bäckerei Krüger",
    "Weißer Hirsch",
    "Dupont & Fils",
    "Lefèvre",
    "Crème Brûlée",
    "Van der Berg",
    "De Vries",
    "Janssens",
    "Smith & Sons",
    "O'Brien",
    "Baker Street",
    "Kühne",
    "Gößweiner",
    "Hoffmann",
    "Fischer",
    "Zimmermann",
)
_MIDDLES = (
    "Lighting",
    "Trading",
    "Logistics",
    "Foods",
    "Systems",
    "Engineering",
    "Consulting",
    "Design",
    "Furniture",
    "Electronics",
    "Textiles",
    "Industries",
    "Solutions",
    "Holdings",
    "Media",
    "Services",
    "Automotive",
    "Pharma",
    "Energy",
    "Packaging",
    "Tools",
    "Retail",
    "Software",
    "Interiors",
)
_CITIES = {
    "DE": ("Berlin", "München", "Köln", "Hamburg", "Düsseldorf"),
    "AT": ("Wien", "Graz", "Linz"),
    "CH": ("Zürich", "Basel", "Genève"),
    "NL": ("Amsterdam", "Utrecht", "Rotterdam"),
    "BE": ("Antwerpen", "Gent", "Liège"),
    "FR": ("Paris", "Lyon", "Marseille"),
    "GB": ("London", "Leeds", "Manchester"),
}
_FORMS = {
    "DE": ("GmbH", "GmbH", "AG", "GmbH & Co. KG", "e.K."),
    "AT": ("GmbH", "AG", "KG"),
    "CH": ("AG", "GmbH", "SA"),
    "NL": ("B.V.", "B.V.", "N.V."),
    "BE": ("BV", "NV", "SRL"),
    "FR": ("SARL", "SAS", "S.A."),
    "GB": ("Ltd", "Ltd", "PLC", "LLP"),
}
_COUNTRIES = ("DE",) * 7 + ("NL",) * 3 + ("FR",) * 3 + ("GB",) * 3 + ("BE", "BE", "AT", "AT", "CH")
_VAT = {"DE": "1.19", "AT": "1.20", "CH": "1.081", "NL": "1.21", "BE": "1.21", "FR": "1.20", "GB": "1.20"}
# Fixed traps every world of four or more customers holds: similar names, `&` and umlauts to escape.
_TRAP_NAMES = (
    ("Contoso Ltd", "GB"),
    ("Contoso Lighting Ltd", "GB"),
    ("Fabrikam Lighting GmbH", "DE"),
    ("Fabrikam GmbH", "DE"),
    ("Müller & Söhne GmbH & Co. KG", "DE"),
)


def _company_name(rng: random.Random, country: str, taken: set[str], existing: Sequence[str]) -> str:
    """A unique company name; one in ten shares its stem with an existing one ("Contoso Ltd" and
    "Contoso Lighting Ltd"), the way real customer lists do."""
    for attempt in range(200):
        if existing and rng.random() < 0.1:
            stem = existing[rng.randrange(len(existing))].split(" ")[0]
        else:
            stem = rng.choice(_STEMS)
        parts = [stem]
        if rng.random() < 0.7:
            parts.append(rng.choice(_MIDDLES))
        if rng.random() < 0.15 or attempt > 50:
            parts.append(rng.choice(_CITIES[country]))
        if attempt > 100:
            parts.append(rng.choice(_MIDDLES))
        parts.append(rng.choice(_FORMS[country]))
        name = " ".join(parts)
        if name not in taken:
            return name
    raise RuntimeError("ran out of company names")


def _money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def _invoice_amount(rng: random.Random, country: str) -> Decimal:
    """Log-uniform 25 to 40,000; a third are a round net amount plus VAT (1,000.00 * 1.19)."""
    if rng.random() < 0.33:
        net = Decimal(rng.choice((50, 100, 250, 400, 500, 750, 1000, 1200, 1500, 2500, 5000, 9800)))
        return (net * Decimal(_VAT[country])).quantize(CENT, ROUND_HALF_UP)
    return _money(int(10 ** rng.uniform(3.4, 6.6)))


def _customer_numbers(n: int) -> list[str]:
    """Business Central's "10000" series in steps of ten, every fourth in a migrated "C00040" style."""
    return [f"C{10 * (i + 1):05d}" if i % 4 == 3 else str(10000 + 10 * i) for i in range(n)]


def world(seed: int, customers: int = 300, invoices: int = 1500, prefixed: bool = True) -> World:
    """A deterministic world. `prefixed`: most invoice numbers carry "SI-" and about one in ten of the
    6-digit ones and half of the 5-digit ones are plain (a migrated series); False: all plain.

    Traps: 5-digit invoices whose digits begin a 6-digit one ("SI-10471" beside "SI-104711"), numbers
    in one sequence (sharing most digits), customers with several open invoices of the same amount,
    similar customer names, partly paid invoices (remaining below total), about 15 % Paid."""
    if customers < 1 or invoices < 1:
        raise ValueError("a world needs customers and invoices")
    rng = random.Random(seed)
    numbers = _customer_numbers(customers)
    taken: set[str] = set()
    names: list[str] = []
    countries: list[str] = []
    for i in range(customers):
        if customers >= 4 and i < len(_TRAP_NAMES):
            name, country = _TRAP_NAMES[i]
        else:
            country = rng.choice(_COUNTRIES)
            name = _company_name(rng, country, taken, names)
        taken.add(name)
        names.append(name)
        countries.append(country)
    used_ibans: set[str] = set()
    custs: list[Customer] = []
    for number, name, country in zip(numbers, names, countries, strict=True):
        roll = rng.random()
        count = 0 if roll < 0.15 else 2 if roll > 0.85 else 1
        ibans: list[str] = []
        while len(ibans) < count:
            iban = make_iban(rng, country if rng.random() < 0.85 else rng.choice(_COUNTRIES))
            if iban not in used_ibans:
                used_ibans.add(iban)
                ibans.append(iban)
        custs.append(Customer(number, name, country, tuple(ibans)))

    # Invoice numbers: one sequence of 6-digit numbers and a few 5-digit ones that are their prefixes.
    n_short = min(invoices // 50, invoices - 1) if invoices > 1 else 0
    start = rng.randrange(100, 800) * 1000 + 1
    long_digits = [str(start + k) for k in range(invoices - n_short)]
    short: list[str] = []
    forbidden = set(numbers)
    for d in rng.sample(long_digits, len(long_digits)):
        if len(short) >= n_short:
            break
        if d[:5] not in forbidden:
            forbidden.add(d[:5])
            short.append(d[:5])
    digit_strings = short + long_digits  # the short ones are an older series, posted first

    weights = [rng.lognormvariate(0, 1) for _ in custs]  # a few big accounts, a long tail
    owners = rng.choices(range(len(custs)), weights=weights, k=len(digit_strings))
    days = max(120, len(digit_strings) // 10)
    first_posting = DEFAULT_BOOKING_DATE - timedelta(days=days)
    ext_taken: set[str] = set()
    rows: list[dict[str, Any]] = []
    for k, (digits, owner) in enumerate(zip(digit_strings, owners, strict=True)):
        cust = custs[owner]
        plain = not prefixed or (len(digits) == 5 and rng.random() < 0.5) or rng.random() < 0.1
        total = _invoice_amount(rng, cust.country)
        ext = ""
        if rng.random() < 0.4:
            while not ext or ext in ext_taken:
                ext = f"{rng.choice(('PO-', 'PO ', 'BEST-', 'Order '))}{rng.randrange(1000, 10000)}"
            ext_taken.add(ext)
        posting = first_posting + timedelta(days=k * days // len(digit_strings))
        rows.append(
            {
                "number": digits if plain else f"SI-{digits}",
                "customer_number": cust.number,
                "total": total,
                "remaining": total,
                "status": "Paid" if rng.random() < 0.15 else "Open",
                "external_document_number": ext,
                "posting_date": posting,
                "due_date": posting + timedelta(days=rng.choice((14, 30, 30, 45, 60))),
            }
        )
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_owner.setdefault(row["customer_number"], []).append(row)
    # Same-amount trap: a recurring fee billed several times and not yet paid.
    fees: set[str] = set()
    for owned in by_owner.values():
        if len(owned) >= 3 and rng.random() < 0.3:
            fee = _invoice_amount(rng, "DE")
            for row in rng.sample(owned, rng.randint(2, min(4, len(owned)))):
                row.update(total=fee, remaining=fee, status="Open")
                fees.add(row["number"])
    for row in rows:
        if row["status"] == "Paid":
            row["remaining"] = Decimal("0.00")
        elif row["number"] not in fees and rng.random() < 0.12 and row["total"] > 10:
            paid = (row["total"] * Decimal(rng.choice(("0.25", "0.5", "0.3")))).quantize(CENT)
            row["remaining"] = row["total"] - paid
    return World(seed, tuple(custs), tuple(Invoice(**row) for row in rows))


def payers_csv(world: World) -> bytes:
    """The operator's IBAN map, `iban,customerNumber`, one row per mapped IBAN; every third row is in
    print format (spaces) and every seventh lowercase, as typed by hand, so readers must normalise."""
    lines = ["iban,customerNumber"]
    k = 0
    for cust in world.customers:
        for iban in cust.ibans:
            shown = iban_print(iban) if k % 3 == 1 else iban
            shown = shown.lower() if k % 7 == 5 else shown
            lines.append(f"{shown},{cust.number}")
            k += 1
    return ("\r\n".join(lines) + "\r\n").encode()


def seed_sandbox(sandbox: Any, world: World, company_id: str) -> None:
    """Load the world into a sandbox company through its seeding methods (duck-typed, nothing imported):
    `seed_receivables(customers, invoices, *, company_id)` when the sandbox has it (one lock for
    thousands, and the posting date too), else `add_customer(number, *, name, company_id)` and
    `add_invoice(number, customer_number, *, status, amount, remaining, external_document_number,
    due_date, company_id)` one by one."""
    invoices = [
        {
            "number": inv.number,
            "customer_number": inv.customer_number,
            "status": inv.status,
            "amount": inv.total,
            "remaining": inv.remaining,
            "external_document_number": inv.external_document_number,
            "due_date": inv.due_date,
        }
        for inv in world.invoices
    ]
    bulk = getattr(sandbox, "seed_receivables", None)
    if callable(bulk):
        customers = [{"number": c.number, "name": c.name} for c in world.customers]
        dated = [
            {**spec, "posting_date": inv.posting_date}
            for spec, inv in zip(invoices, world.invoices, strict=True)
        ]
        bulk(customers, dated, company_id=company_id)
        return
    for cust in world.customers:
        sandbox.add_customer(cust.number, name=cust.name, company_id=company_id)
    for spec in invoices:
        sandbox.add_invoice(spec.pop("number"), spec.pop("customer_number"), company_id=company_id, **spec)


# ---------------------------------------------------------------------------------------------------
# Labelled credits


@dataclass(frozen=True)
class Credit:
    """One incoming credit transfer as the bank reports it, with its label.

    Label: `intended` are the invoice numbers (as in the world) the payer meant to pay, empty when they
    meant none or nothing says which; `customer` is the customer number of whoever paid ("" for a payer
    the world does not know); `case` says how the payment was written (see `CASES`).

    `auto_ok` is True exactly when a correct matcher may apply the credit without review: the text
    (in a case's spelling) or a valid RF reference names the intended invoices and no other invoice,
    they are Open, they belong to `customer`, the payer's IBAN is that customer's or in nobody's map,
    and the amount equals their remainingAmount (the sum of them, for several). Otherwise (wrong
    amount, several-partial, typo, no or invalid reference, another customer's or a Paid invoice,
    unknown payer) a correct matcher sends it to review, and must never apply it to another invoice.
    `creditor_reference` is the RmtInf/Strd/CdtrRefInf/Ref (an RF reference, valid or not) or "";
    `acct_svcr_ref` is unique per credit within a seed ("" for a few: banks omit it)."""

    amount: Decimal
    currency: str
    booking_date: date
    value_date: date
    payer_name: str
    payer_iban: str
    text: str
    creditor_reference: str
    end_to_end_id: str
    acct_svcr_ref: str
    intended: tuple[str, ...]
    customer: str
    case: str
    auto_ok: bool = False
    uetr: str = ""


# The cases, and what their label says (intended / customer / auto_ok):
# exact                 "Invoice SI-104711", "Rechnung 104711": the number as it is; amount = remaining.  (inv,) payer  True
# spaces, dashes        "SI 104 711" / "104 711", "SI-104-711" / "104-711"; amount = remaining.          (inv,) payer  True
# no-prefix             "104711" for "SI-104711" (only prefixed invoices); amount = remaining.          (inv,) payer  True
# lowercase-and-noise   "pmt si104711 order po-5521 customer 10020": PO numbers of four digits and
#                       customer numbers that are no part of any invoice number; amount = remaining.   (inv,) payer  True
# several               2-3 Open invoices of one customer; amount = the sum of their remaining.          (all)  payer  True
# several-partial       2-3 quoted, amount = the sum of a proper subset (which one is a guess).         (subset) payer False
# wrong-amount          right reference; partial, 2 % discount, fees deducted, digits swapped, over.   (inv,) payer  False
# name-typo             right reference and amount, one slip in the payer's name.                      (inv,) payer  True
# rf-reference          valid RF creditor reference of the invoice digits (zero-padded or not), no text. (inv,) payer True
# rf-invalid            RF reference failing its check digits; True only when the text quotes the
#                       invoice too (four in ten).                                                      (inv,) payer  text?
# no-reference          generic text, a mapped IBAN; amount is one Open invoice's remaining (then that
#                       invoice is intended) or no invoice's.                                          (inv,)|() payer False
# unknown-payer         a name and IBAN the world does not know, generic text.                          ()     ""     False
# typo-in-number        a transposed or slipped digit; half land on a real invoice of another customer
#                       with another remaining, which must never be chosen.                             (inv,) payer  False
# other-customer-reference  customer B (B's mapped IBAN and name, often a similar name) quotes A's
#                       invoice at its remaining.                                                       (A's inv,) B  False
# paid-invoice          quotes a Paid invoice, amount = its total (a double payment).                   (inv,) payer  False
CASES = (
    "exact",
    "spaces",
    "dashes",
    "no-prefix",
    "lowercase-and-noise",
    "several",
    "several-partial",
    "wrong-amount",
    "name-typo",
    "rf-reference",
    "rf-invalid",
    "no-reference",
    "unknown-payer",
    "typo-in-number",
    "other-customer-reference",
    "paid-invoice",
)
# Default proportions, roughly what a B2B receivables account sees (most payers quote the invoice).
DEFAULT_MIX: Mapping[str, float] = {
    "exact": 0.32,
    "spaces": 0.05,
    "dashes": 0.04,
    "no-prefix": 0.06,
    "lowercase-and-noise": 0.07,
    "several": 0.07,
    "several-partial": 0.03,
    "wrong-amount": 0.06,
    "name-typo": 0.04,
    "rf-reference": 0.07,
    "rf-invalid": 0.02,
    "no-reference": 0.06,
    "unknown-payer": 0.03,
    "typo-in-number": 0.03,
    "other-customer-reference": 0.03,
    "paid-invoice": 0.02,
}

_EXACT = (
    "Invoice {r}",
    "Rechnung {r}",
    "INV {r} thank you",
    "RE {r}",
    "Rg. {r}",
    "Facture {r}",
    "Factuur {r}",
    "{r}",
    "Payment invoice {r}",
    "Zahlung zu Rechnung Nr. {r}",
    "Rechnungsnummer {r} Danke",
    "Betaling factuur {r}",
    "Paiement facture {r}",
    "Inv. No. {r}",
)
_GENERIC = (
    "",
    "",
    "Zahlung",
    "Payment",
    "Monthly payment",
    "Überweisung",
    "Betaling",
    "Paiement",
    "Transfer",
    "Ausgleich offener Posten",
    "Payment on account",
    "Abschlagszahlung",
)
_LONG_TAIL = (
    " Please allocate this payment to the invoices referenced above and contact our accounts payable"
    " team if there are any questions regarding the remittance or the amounts paid. Kind regards"
)
_PRIVATE_FIRST = ("Max", "Erika", "Jan", "Sophie", "Pierre", "Marie", "John", "Emma", "Lukas", "Anna")
_PRIVATE_LAST = ("Mustermann", "Jansen", "Martin", "Bernard", "Taylor", "Wagner", "Peeters", "Huber")
_UNKNOWN_CO = ("Globex", "Initech", "Umbrella", "Stark", "Acme", "Hooli", "Vandelay", "Soylent")


def _split3(digits: str) -> list[str]:
    return [digits[i : i + 3] for i in range(0, len(digits), 3)]


def _prefix(inv: Invoice) -> str:
    return inv.number[: len(inv.number) - len(inv.digits)].rstrip("-")


def _written(inv: Invoice, style: str) -> str:
    """The invoice number as a payer writes it in one case's style."""
    pre = _prefix(inv)
    if style == "spaces":
        return " ".join(([pre] if pre else []) + _split3(inv.digits))
    if style == "dashes":
        return "-".join(([pre] if pre else []) + _split3(inv.digits))
    if style == "no-prefix":
        return inv.digits
    return inv.number


def _typo_name(rng: random.Random, name: str, taken: set[str]) -> str:
    """The name with one slip in its longest word (a letter dropped, doubled, swapped or replaced)."""
    words = name.split(" ")
    for _ in range(50):
        k = max(range(len(words)), key=lambda j: (sum(ch.isalpha() for ch in words[j]), -j))
        w = words[k]
        if len(w) < 4:
            return name + "."
        i = rng.randrange(1, len(w) - 1)
        op = rng.randrange(4)
        if op == 0:
            new = w[:i] + w[i + 1 :]
        elif op == 1:
            new = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        elif op == 2:
            new = w[:i] + w[i] + w[i:]
        else:
            new = w[:i] + rng.choice("aeiouny") + w[i + 1 :]
        typo = " ".join([*words[:k], new, *words[k + 1 :]])
        if typo != name and typo not in taken:
            return typo
    return name + "."


def _digit_typos(digits: str) -> list[str]:
    """Every adjacent transposition and single-digit slip of a number (same length, first digit kept)."""
    out: list[str] = []
    for i in range(len(digits) - 1):
        if digits[i] != digits[i + 1]:
            out.append(digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :])
    for i in range(1, len(digits)):
        for d in "0123456789":
            if d != digits[i]:
                out.append(digits[:i] + d + digits[i + 1 :])
    return list(dict.fromkeys(out))


def _amount_slip(rng: random.Random, remaining: Decimal) -> Decimal:
    """An amount that differs from the remaining: partial, cash discount, fees deducted, or a typo."""
    for _ in range(20):
        kind = rng.randrange(5)
        if kind == 0:
            amount = (remaining * Decimal(rng.choice(("0.5", "0.25", "0.4")))).quantize(CENT)
        elif kind == 1:
            amount = (remaining * Decimal("0.98")).quantize(CENT, ROUND_HALF_UP)  # 2 % Skonto
        elif kind == 2:
            amount = remaining - Decimal(rng.choice(("7.50", "15.00", "25.00")))
        elif kind == 3:
            s = f"{remaining:.2f}".replace(".", "")
            i = rng.randrange(len(s) - 1)
            s = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
            amount = _money(int(s))
        else:
            amount = remaining + Decimal(rng.choice(("0.01", "10.00", "100.00")))
        if amount > 0 and amount != remaining:
            return amount
    return remaining + Decimal("1.00")


class _Draw:
    """The state of one credits() run: the world's lookups and which invoices were already paid in it
    (so one statement does not pay an invoice twice until the world runs out of open ones)."""

    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng
        self.used: set[str] = set()
        self.open = [i for i in world.invoices if i.status == "Open"]
        self.paid = [i for i in world.invoices if i.status == "Paid"]
        self.prefixed = [i for i in self.open if _prefix(i)]
        self.with_iban = [c for c in world.customers if c.ibans]
        self.names = world.names
        self.ibans = world.ibans
        self.digit_set = {i.digits for i in world.invoices}
        self.ext_set = {i.external_document_number for i in world.invoices}
        # Customer numbers a text may quote without reading as (part of) an invoice number.
        self.safe_numbers = {
            c.number for c in world.customers if not any(c.number in x for x in self.digit_set)
        }
        self.multi = [c for c in world.customers if len(world.invoices_of(c.number, open_only=True)) >= 2]

    def fresh(self, pool: Sequence[Invoice] | None = None) -> Invoice:
        pool = self.open if pool is None else pool
        if len(self.used) >= len(self.open):
            self.used.clear()
        for _ in range(30):
            inv = self.rng.choice(pool)
            if inv.number not in self.used:
                break
        self.used.add(inv.number)
        return inv

    def unmapped_iban(self, country: str) -> str:
        while True:
            iban = make_iban(self.rng, country)
            if iban not in self.ibans:
                return iban

    def payer(self, cust: Customer, *, iban_known: bool = False) -> tuple[str, str]:
        """The name as the payer's bank sends it (sometimes uppercase or cut at 35) and their IBAN."""
        rng = self.rng
        roll = rng.random()
        name = cust.name.upper() if roll < 0.2 else cust.name[:35].rstrip() if roll < 0.25 else cust.name
        if cust.ibans and (iban_known or rng.random() < 0.9):
            return name, rng.choice(cust.ibans)
        return name, "" if rng.random() < 0.15 else self.unmapped_iban(cust.country)

    def e2e(self, inv: Invoice | None = None) -> str:
        rng = self.rng
        if inv is not None and rng.random() < 0.2:
            return inv.number
        if rng.random() < 0.4:
            return "NOTPROVIDED"
        return (
            "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8)) + f"-{rng.randrange(1000):03d}"
        )

    def customer_of(self, inv: Invoice) -> Customer:
        return self.world.customer(inv.customer_number)

    def exact_text(self, written: str) -> str:
        text = self.rng.choice(_EXACT).format(r=written)
        return text + _LONG_TAIL if self.rng.random() < 0.04 else text


def _case_exact(d: _Draw, style: str = "exact") -> dict[str, Any] | None:
    inv = d.fresh()
    if style == "no-prefix" and not _prefix(inv):
        if not d.prefixed:
            return None
        inv = d.fresh(d.prefixed)
    name, iban = d.payer(d.customer_of(inv))
    return {
        "amount": inv.remaining,
        "payer_name": name,
        "payer_iban": iban,
        "text": d.exact_text(_written(inv, style)),
        "end_to_end_id": d.e2e(inv if style == "exact" else None),
        "intended": (inv.number,),
        "customer": inv.customer_number,
        "auto_ok": True,
    }


def _case_noise(d: _Draw) -> dict[str, Any]:
    rng = d.rng
    inv = d.fresh()
    cust = d.customer_of(inv)
    pre = _prefix(inv).lower()
    ref = rng.choice(
        (f"{pre}{inv.digits}", f"{pre}-{inv.digits}", f"{pre} {inv.digits}", f"inv.{inv.digits}")
    )
    ref = ref.lstrip(" -") if not pre else ref
    po = inv.external_document_number
    while not po:  # a PO number no invoice carries, four digits: never read as an invoice number
        po = f"PO-{rng.randrange(1000, 10000)}"
        po = "" if po in d.ext_set else po
    extras = [po.lower() if po.lower().startswith("order") else f"order {po.lower()}"]
    if cust.number in d.safe_numbers:
        extras.append(f"{rng.choice(('customer', 'kd-nr', 'cust'))} {cust.number.lower()}")
    rng.shuffle(extras)
    parts = [rng.choice(("payment for", "pmt", "zahlung", "ref", "betr.")), ref, *extras]
    name, iban = d.payer(cust)
    return {
        "amount": inv.remaining,
        "payer_name": name,
        "payer_iban": iban,
        "text": " ".join(parts),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": cust.number,
        "auto_ok": True,
    }


def _case_several(d: _Draw, partial: bool) -> dict[str, Any] | None:
    rng = d.rng
    if not d.multi:
        return None
    cust = rng.choice(d.multi)
    open_ = [i for i in d.world.invoices_of(cust.number, open_only=True) if i.number not in d.used]
    if len(open_) < 2:
        open_ = d.world.invoices_of(cust.number, open_only=True)
    chosen = sorted(rng.sample(open_, min(len(open_), rng.choice((2, 2, 3)))), key=lambda i: i.number)
    d.used.update(i.number for i in chosen)
    sep = rng.choice((", ", " ", "/", " + ", "; "))
    style = rng.choice(("exact", "exact", "no-prefix"))
    refs = sep.join(_written(i, style) for i in chosen)
    text = rng.choice(("{r}", "Invoices {r}", "Rechnungen {r}", "RE {r}", "Factures {r}")).format(r=refs)
    if rng.random() < 0.1:
        text += _LONG_TAIL
    intended = chosen
    if partial:
        subset = rng.sample(chosen, rng.randint(1, len(chosen) - 1))
        intended = sorted(subset, key=lambda i: i.number)
    name, iban = d.payer(cust)
    return {
        "amount": sum((i.remaining for i in intended), Decimal("0.00")),
        "payer_name": name,
        "payer_iban": iban,
        "text": text,
        "end_to_end_id": d.e2e(),
        "intended": tuple(i.number for i in intended),
        "customer": cust.number,
        "auto_ok": not partial,
    }


def _case_wrong_amount(d: _Draw) -> dict[str, Any]:
    inv = d.fresh()
    name, iban = d.payer(d.customer_of(inv))
    return {
        "amount": _amount_slip(d.rng, inv.remaining),
        "payer_name": name,
        "payer_iban": iban,
        "text": d.exact_text(inv.number),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": inv.customer_number,
        "auto_ok": False,
    }


def _case_name_typo(d: _Draw) -> dict[str, Any]:
    inv = d.fresh()
    cust = d.customer_of(inv)
    _, iban = d.payer(cust)
    return {
        "amount": inv.remaining,
        "payer_name": _typo_name(d.rng, cust.name, d.names),
        "payer_iban": iban,
        "text": d.exact_text(inv.number),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": cust.number,
        "auto_ok": True,
    }


def _case_rf(d: _Draw, valid: bool) -> dict[str, Any]:
    rng = d.rng
    inv = d.fresh()
    payload = inv.digits.zfill(rng.choice((len(inv.digits), 10, 12))) if rng.random() < 0.5 else inv.digits
    ref = rf_reference(payload) if valid else _rf_invalid(rng, payload)
    text = ""
    if not valid and rng.random() < 0.4:
        text = d.exact_text(inv.number)
    name, iban = d.payer(d.customer_of(inv))
    return {
        "amount": inv.remaining,
        "payer_name": name,
        "payer_iban": iban,
        "text": text,
        "creditor_reference": ref,
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": inv.customer_number,
        "auto_ok": valid or bool(text),
    }


def _case_no_reference(d: _Draw) -> dict[str, Any] | None:
    rng = d.rng
    if not d.with_iban:
        return None
    cust = rng.choice(d.with_iban)
    open_ = [i for i in d.world.invoices_of(cust.number, open_only=True) if i.number not in d.used]
    intended: tuple[str, ...] = ()
    if open_ and rng.random() < 0.6:
        inv = rng.choice(open_)
        d.used.add(inv.number)
        amount, intended = inv.remaining, (inv.number,)
    else:
        taken = {i.remaining for i in d.world.invoices_of(cust.number, open_only=True)}
        amount = _money(int(10 ** rng.uniform(3, 5.5)))
        while amount in taken:
            amount += CENT
    name, iban = d.payer(cust, iban_known=True)
    return {
        "amount": amount,
        "payer_name": name,
        "payer_iban": iban,
        "text": rng.choice(_GENERIC),
        "end_to_end_id": d.e2e(),
        "intended": intended,
        "customer": cust.number,
        "auto_ok": False,
    }


def _case_unknown_payer(d: _Draw) -> dict[str, Any]:
    rng = d.rng
    name = ""
    while not name or name in d.names:
        if rng.random() < 0.5:
            name = f"{rng.choice(_PRIVATE_FIRST)} {rng.choice(_PRIVATE_LAST)}"
        else:
            name = f"{rng.choice(_UNKNOWN_CO)} {rng.choice(_MIDDLES)} {rng.choice(('GmbH', 'Ltd', 'B.V.'))}"
    return {
        "amount": _money(int(10 ** rng.uniform(3, 5.5))),
        "payer_name": name,
        "payer_iban": d.unmapped_iban(rng.choice(_COUNTRIES)),
        "text": rng.choice(_GENERIC),
        "end_to_end_id": d.e2e(),
        "intended": (),
        "customer": "",
        "auto_ok": False,
    }


def _case_typo_in_number(d: _Draw) -> dict[str, Any]:
    """Half the time the slip lands on another real invoice, of another customer and another amount."""
    rng = d.rng
    inv = d.fresh()
    typos = _digit_typos(inv.digits)
    landing = []
    for t in typos:
        other = d.world.invoice_by_digits(t)
        if other and other.customer_number != inv.customer_number and other.remaining != inv.remaining:
            landing.append(other.number)
    nowhere = [t for t in typos if t not in d.digit_set]
    if landing and (rng.random() < 0.5 or not nowhere):
        written = rng.choice(landing)
    else:
        pre = _prefix(inv)
        t = rng.choice(nowhere)
        written = f"{pre}-{t}" if pre else t
    name, iban = d.payer(d.customer_of(inv))
    return {
        "amount": inv.remaining,
        "payer_name": name,
        "payer_iban": iban,
        "text": d.exact_text(written),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": inv.customer_number,
        "auto_ok": False,
    }


def _case_other_customer(d: _Draw) -> dict[str, Any] | None:
    """Customer B pays (B's IBAN and name) an invoice of customer A; B often has a similar name."""
    rng = d.rng
    inv = d.fresh()
    others = [c for c in d.with_iban if c.number != inv.customer_number]
    if not others:
        return None
    stem = d.customer_of(inv).name.split(" ")[0]
    similar = [c for c in others if c.name.split(" ")[0] == stem]
    payer = rng.choice(similar) if similar and rng.random() < 0.4 else rng.choice(others)
    name, iban = d.payer(payer, iban_known=True)
    return {
        "amount": inv.remaining,
        "payer_name": name,
        "payer_iban": iban,
        "text": d.exact_text(inv.number),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": payer.number,
        "auto_ok": False,
    }


def _case_paid(d: _Draw) -> dict[str, Any] | None:
    if not d.paid:
        return None
    inv = d.rng.choice(d.paid)
    name, iban = d.payer(d.customer_of(inv))
    return {
        "amount": inv.total,
        "payer_name": name,
        "payer_iban": iban,
        "text": d.exact_text(inv.number),
        "end_to_end_id": d.e2e(),
        "intended": (inv.number,),
        "customer": inv.customer_number,
        "auto_ok": False,
    }


def _one(d: _Draw, case: str) -> dict[str, Any] | None:
    if case in ("exact", "spaces", "dashes", "no-prefix"):
        return _case_exact(d, case)
    handlers = {
        "lowercase-and-noise": lambda: _case_noise(d),
        "several": lambda: _case_several(d, partial=False),
        "several-partial": lambda: _case_several(d, partial=True),
        "wrong-amount": lambda: _case_wrong_amount(d),
        "name-typo": lambda: _case_name_typo(d),
        "rf-reference": lambda: _case_rf(d, valid=True),
        "rf-invalid": lambda: _case_rf(d, valid=False),
        "no-reference": lambda: _case_no_reference(d),
        "unknown-payer": lambda: _case_unknown_payer(d),
        "typo-in-number": lambda: _case_typo_in_number(d),
        "other-customer-reference": lambda: _case_other_customer(d),
        "paid-invoice": lambda: _case_paid(d),
    }
    return handlers[case]()


def iter_credits(
    world: World,
    n: int,
    seed: int,
    *,
    mix: Mapping[str, float] | None = None,
    booking_date: date = DEFAULT_BOOKING_DATE,
) -> Iterator[Credit]:
    """Credits one at a time (for streaming writers); `credits` is this as a list.

    `mix` weighs the cases (see DEFAULT_MIX; missing cases weigh 0). A case the world cannot
    produce (no Paid invoice, no customer with two open invoices...) falls back to "exact"."""
    weights = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(weights) - set(CASES)
    if unknown:
        raise ValueError(f"unknown cases {sorted(unknown)}")
    names = [c for c in CASES if weights.get(c, 0) > 0]
    if not names:
        raise ValueError("the mix weighs no case")
    rng = random.Random(seed)
    d = _Draw(world, rng)
    prefix = f"{rng.getrandbits(32):08X}"
    for k in range(n):
        case = rng.choices(names, weights=[weights[c] for c in names])[0]
        fields = _one(d, case)
        if fields is None:
            case, fields = "exact", _case_exact(d)
            assert fields is not None
        value_date = booking_date + timedelta(days=rng.choice((0, 0, 0, 1)))
        uetr = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if rng.random() < 0.7 else ""
        ref = "" if rng.random() < 0.01 else f"{prefix}{k:08d}"
        fields.setdefault("creditor_reference", "")
        yield Credit(
            currency="EUR",
            booking_date=booking_date,
            value_date=value_date,
            acct_svcr_ref=ref,
            case=case,
            uetr=uetr,
            **fields,
        )


def credits(
    world: World,
    n: int,
    seed: int,
    *,
    mix: Mapping[str, float] | None = None,
    booking_date: date = DEFAULT_BOOKING_DATE,
) -> list[Credit]:
    """`n` labelled credits, all booked on `booking_date` (see `Credit` for the label, `iter_credits`)."""
    return list(iter_credits(world, n, seed, mix=mix, booking_date=booking_date))


# ---------------------------------------------------------------------------------------------------
# camt.053 / camt.054


def _amt(value: Decimal) -> str:
    if value != value.quantize(CENT):
        raise ValueError(f"amount {value} has more than two decimals")
    return f"{value:.2f}"


def _x(text: str) -> str:
    return escape(text)


def _ustrd_chunks(text: str) -> list[str]:
    """Split remittance text into Ustrd pieces of at most 140 characters, at a space where one falls in
    the last 30 characters (kept at the end of its piece), so joining the pieces with "" restores it."""
    out: list[str] = []
    while len(text) > USTRD_MAX:
        cut = text.rfind(" ", USTRD_MAX - 30, USTRD_MAX)
        cut = USTRD_MAX if cut < 0 else cut + 1
        out.append(text[:cut])
        text = text[cut:]
    if text:
        out.append(text)
    return out


@dataclass(frozen=True)
class _Entry:
    """One Ntry to write: its transactions and how the bank booked it."""

    txs: tuple[Credit, ...]
    debit: bool = False
    status: str = "BOOK"
    reversal: bool = False
    ref: str = ""  # the entry's AcctSvcrRef
    kind: str = "credit"  # credit | fee | transfer | reversal

    @property
    def amount(self) -> Decimal:
        return sum((t.amount for t in self.txs), Decimal("0.00"))


def _tx_xml(c: Credit, version: str, *, debit: bool, entry_ref: str, kind: str, own_iban: str) -> str:
    """One TxDtls. .02 carries the amount in AmtDtls/TxAmt/Amt, .08 in Amt (and AmtDtls)."""
    ind = "DBIT" if debit else "CRDT"
    refs = []
    tx_ref = c.acct_svcr_ref if kind != "reversal" else entry_ref
    if tx_ref:
        refs.append(f"<AcctSvcrRef>{_x(tx_ref)}</AcctSvcrRef>")
    refs.append(f"<EndToEndId>{_x(c.end_to_end_id or 'NOTPROVIDED')}</EndToEndId>")
    if version == "08" and c.uetr:
        refs.append(f"<UETR>{c.uetr}</UETR>")
    parts = [f"<Refs>{''.join(refs)}</Refs>"]
    amt = f'<Amt Ccy="{c.currency}">{_amt(c.amount)}</Amt>'
    if version == "08":
        parts.append(f"{amt}<CdtDbtInd>{ind}</CdtDbtInd>")
    parts.append(f"<AmtDtls><TxAmt>{amt}</TxAmt></AmtDtls>")
    # The counterparty: the payer (Dbtr) of a credit and of a returned credit, the payee (Cdtr) of a debit.
    role = "Cdtr" if debit and kind != "reversal" else "Dbtr"
    us = "Dbtr" if role == "Cdtr" else "Cdtr"
    name = f"<Nm>{_x(c.payer_name)}</Nm>"
    party = (
        (f"<{role}><Pty>{name}</Pty></{role}>" if version == "08" else f"<{role}>{name}</{role}>")
        if c.payer_name
        else ""
    )
    acct = f"<{role}Acct><Id><IBAN>{c.payer_iban}</IBAN></Id></{role}Acct>" if c.payer_iban else ""
    own = f"<{us}Acct><Id><IBAN>{own_iban}</IBAN></Id></{us}Acct>"
    parts.append(
        f"<RltdPties>{party}{acct}{own}</RltdPties>"
        if role == "Dbtr"
        else f"<RltdPties>{own}{party}{acct}</RltdPties>"
    )
    rmt = [f"<Ustrd>{_x(piece)}</Ustrd>" for piece in _ustrd_chunks(c.text)]
    if c.creditor_reference:
        rmt.append(
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp>"
            f"<Ref>{_x(c.creditor_reference)}</Ref></CdtrRefInf></Strd>"
        )
    if rmt:
        parts.append(f"<RmtInf>{''.join(rmt)}</RmtInf>")
    if kind == "reversal":
        parts.append("<RtrInf><Rsn><Cd>AC04</Cd></Rsn></RtrInf>")
    return f"<TxDtls>{''.join(parts)}</TxDtls>"


_BKTX = {
    "credit": ("PMNT", "RCDT", "ESCT", "NTRF+166"),
    "reversal": ("PMNT", "RCDT", "RRTN", "NRTI+159"),
    "transfer": ("PMNT", "ICDT", "ESCT", "NTRF+116"),
    "fee": ("ACMT", "MDOP", "CHRG", "NCHG+805"),
}


def _entry_xml(e: _Entry, version: str, own_iban: str) -> str:
    c = e.txs[0]
    ind = "DBIT" if e.debit else "CRDT"
    sts = f"<Sts><Cd>{e.status}</Cd></Sts>" if version == "08" else f"<Sts>{e.status}</Sts>"
    parts = [f'<Amt Ccy="{c.currency}">{_amt(e.amount)}</Amt>', f"<CdtDbtInd>{ind}</CdtDbtInd>"]
    if e.reversal:
        parts.append("<RvslInd>true</RvslInd>")
    parts += [
        sts,
        f"<BookgDt><Dt>{c.booking_date.isoformat()}</Dt></BookgDt>",
        f"<ValDt><Dt>{c.value_date.isoformat()}</Dt></ValDt>",
    ]
    if e.ref:
        parts.append(f"<AcctSvcrRef>{_x(e.ref)}</AcctSvcrRef>")
    domain, family, sub, proprietary = _BKTX[e.kind]
    parts.append(
        f"<BkTxCd><Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn>"
        f"<Prtry><Cd>{proprietary}</Cd><Issr>DK</Issr></Prtry></BkTxCd>"
    )
    details = []
    if len(e.txs) > 1:
        details.append(
            f'<Btch><NbOfTxs>{len(e.txs)}</NbOfTxs><TtlAmt Ccy="{c.currency}">{_amt(e.amount)}</TtlAmt>'
            f"<CdtDbtInd>{ind}</CdtDbtInd></Btch>"
        )
    details += [
        _tx_xml(t, version, debit=e.debit, entry_ref=e.ref, kind=e.kind, own_iban=own_iban) for t in e.txs
    ]
    parts.append(f"<NtryDtls>{''.join(details)}</NtryDtls>")
    if len(e.txs) > 1:
        parts.append(f"<AddtlNtryInf>SAMMLER-GUTSCHRIFT {len(e.txs)} POSTEN</AddtlNtryInf>")
    return f"<Ntry>{''.join(parts)}</Ntry>\n"


def _entries(
    txs: Sequence[Credit],
    *,
    doc_id: str,
    booking_date: date,
    debits: int,
    batch_bookings: bool,
    pending: int,
    reversals: int,
) -> list[_Entry]:
    """The entries of a statement: credits (in batches or one each; the last `pending` credits as PDNG),
    then `reversals` returns of the first credits (DBIT, RvslInd), then `debits` outgoing payments/fees."""
    if pending < 0 or reversals < 0 or debits < 0 or pending + reversals > len(txs):
        raise ValueError("pending + reversals must fit the credits, without overlap")
    rng = random.Random(f"entries/{doc_id}")
    booked, parked = list(txs[: len(txs) - pending]), list(txs[len(txs) - pending :])
    out: list[_Entry] = []
    i = 0
    while i < len(booked):
        size = rng.randint(2, 5) if batch_bookings and rng.random() < 0.3 else 1
        group = tuple(booked[i : i + size])
        i += len(group)
        if len(group) == 1:
            out.append(_Entry(group, ref=group[0].acct_svcr_ref))
        else:
            out.append(_Entry(group, ref=f"{doc_id}-B{len(out):05d}"))
    out += [
        _Entry((c,), status="PDNG", ref=f"{c.acct_svcr_ref}-P" if c.acct_svcr_ref else "") for c in parked
    ]
    for k, c in enumerate(txs[:reversals]):
        out.append(_Entry((c,), debit=True, reversal=True, ref=f"{doc_id}-R{k:05d}", kind="reversal"))
    for k in range(debits):
        fee = rng.random() < 0.3
        amount = (
            Decimal(rng.choice(("4.90", "12.50", "35.00"))) if fee else _money(int(10 ** rng.uniform(3, 6)))
        )
        payee = "" if fee else f"{rng.choice(_UNKNOWN_CO)} {rng.choice(_MIDDLES)} GmbH"
        text = "Kontoführungsgebühren" if fee else f"Lieferantenzahlung Beleg {rng.randrange(1000, 10000)}"
        iban = "" if fee else make_iban(rng, "DE")
        tx = Credit(
            amount=amount,
            currency="EUR",
            booking_date=booking_date,
            value_date=booking_date,
            payer_name=payee,
            payer_iban=iban,
            text=text,
            creditor_reference="",
            end_to_end_id="NOTPROVIDED",
            acct_svcr_ref=f"{doc_id}-D{k:05d}",
            intended=(),
            customer="",
            case="debit",
        )
        out.append(_Entry((tx,), debit=True, ref=tx.acct_svcr_ref, kind="fee" if fee else "transfer"))
    return out


@dataclass
class _Totals:
    """Running sums over booked entries (PDNG entries change no balance and are not summarised)."""

    n_credit: int = 0
    sum_credit: Decimal = Decimal("0.00")
    n_debit: int = 0
    sum_debit: Decimal = Decimal("0.00")

    def add(self, e: _Entry) -> None:
        if e.status != "BOOK":
            return
        if e.debit:
            self.n_debit += 1
            self.sum_debit += e.amount
        else:
            self.n_credit += 1
            self.sum_credit += e.amount

    @property
    def net(self) -> Decimal:
        return self.sum_credit - self.sum_debit


def _signed(value: Decimal) -> str:
    ind = "CRDT" if value >= 0 else "DBIT"
    return f'<Amt Ccy="EUR">{_amt(abs(value))}</Amt><CdtDbtInd>{ind}</CdtDbtInd>'


def _summary_xml(t: _Totals, version: str) -> str:
    net = (
        f"<TtlNetNtry>{_signed(t.net)}</TtlNetNtry>"
        if version == "08"
        else f"<TtlNetNtryAmt>{_amt(abs(t.net))}</TtlNetNtryAmt><CdtDbtInd>{'CRDT' if t.net >= 0 else 'DBIT'}"
        "</CdtDbtInd>"
    )
    return (
        "<TxsSummry>"
        f"<TtlNtries><NbOfNtries>{t.n_credit + t.n_debit}</NbOfNtries><Sum>{_amt(t.sum_credit + t.sum_debit)}"
        f"</Sum>{net}</TtlNtries>"
        f"<TtlCdtNtries><NbOfNtries>{t.n_credit}</NbOfNtries><Sum>{_amt(t.sum_credit)}</Sum></TtlCdtNtries>"
        f"<TtlDbtNtries><NbOfNtries>{t.n_debit}</NbOfNtries><Sum>{_amt(t.sum_debit)}</Sum></TtlDbtNtries>"
        "</TxsSummry>\n"
    )


def _balance_xml(code: str, value: Decimal, day: date) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>{_signed(value)}"
        f"<Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>\n"
    )


def _check_version(version: str) -> None:
    if version not in ("08", "02"):
        raise ValueError(f"version must be '08' or '02', not {version!r}")


def _head(message: str, version: str, doc_id: str, day: date, account_iban: str, seq: int) -> str:
    """Everything up to the balances: root, GrpHdr, the Stmt/Ntfctn opening and Acct."""
    root, record = ("BkToCstmrStmt", "Stmt") if message == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    created = f"{(day + timedelta(days=1 if message == '053' else 0)).isoformat()}T06:00:00+01:00"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{NS[(message, version)]}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"<{root}>\n"
        f"<GrpHdr><MsgId>{_x(doc_id)}</MsgId><CreDtTm>{created}</CreDtTm>"
        "<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>\n"
        f"<{record}><Id>{_x(doc_id)}</Id><ElctrncSeqNb>{seq}</ElctrncSeqNb><CreDtTm>{created}</CreDtTm>"
        f"<FrToDt><FrDtTm>{day.isoformat()}T00:00:00+01:00</FrDtTm><ToDtTm>{day.isoformat()}T23:59:59+01:00"
        "</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{account_iban}</IBAN></Id><Ccy>EUR</Ccy><Ownr><Nm>CRONUS International Ltd.</Nm>"
        "</Ownr></Acct>\n"
    )


def _tail(message: str) -> str:
    root, record = ("BkToCstmrStmt", "Stmt") if message == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    return f"</{record}>\n</{root}>\n</Document>\n"


def _opening(doc_id: str) -> Decimal:
    return _money(random.Random(f"opening/{doc_id}").randrange(1_000_00, 900_000_00))


def _day(txs: Sequence[Credit], booking_date: date | None) -> date:
    return booking_date or max((c.booking_date for c in txs), default=DEFAULT_BOOKING_DATE)


def camt053(
    credits: Sequence[Credit],
    *,
    account_iban: str,
    version: str = "08",
    statement_id: str,
    booking_date: date | None = None,
    debits: int = 0,
    batch_bookings: bool = False,
    pending: int = 0,
    reversals: int = 0,
) -> bytes:
    """A camt.053 statement of one account for one day (`booking_date`, default: the credits' latest).

    Entries keep each credit's dates. `batch_bookings`: about three in ten credit entries hold 2-5
    transactions under an entry AcctSvcrRef "<statement_id>-Bnnnnn", each TxDtls keeping the credit's
    own Refs/AcctSvcrRef. `pending`: the last that many credits are PDNG (not booked, outside balances
    and TxsSummry; entry reference "<ref>-P", TxDtls keeping the credit's own, as the day that books
    them will). `reversals`: the first that many credits come back as DBIT entries with RvslInd
    true (reason AC04). `debits`: outgoing transfers and fees. OPBD + booked credits - booked debits =
    CLBD; TxsSummry counts entries (a batch is one) and sums booked ones."""
    _check_version(version)
    day = _day(credits, booking_date)
    entries = _entries(
        credits,
        doc_id=statement_id,
        booking_date=day,
        debits=debits,
        batch_bookings=batch_bookings,
        pending=pending,
        reversals=reversals,
    )
    totals = _Totals()
    for e in entries:
        totals.add(e)
    opening = _opening(statement_id)
    seq = random.Random(f"seq/{statement_id}").randrange(1, 366)
    parts = [
        _head("053", version, statement_id, day, account_iban, seq),
        _balance_xml("OPBD", opening, day),
        _balance_xml("CLBD", opening + totals.net, day),
        _summary_xml(totals, version),
        *(_entry_xml(e, version, account_iban) for e in entries),
        _tail("053"),
    ]
    return "".join(parts).encode("utf-8")


def camt054(
    credits: Sequence[Credit],
    *,
    account_iban: str,
    version: str = "08",
    notification_id: str,
    booking_date: date | None = None,
    batch_bookings: bool = False,
) -> bytes:
    """The same credits as an intraday camt.054 credit notification (`Ntfctn`, no balances). Each
    TxDtls carries the credit's AcctSvcrRef, and an entry of one credit carries it too, exactly as
    camt053() writes them, so the day's statement can be checked against the notification it repeats
    (batch entries' own references differ between the two)."""
    _check_version(version)
    day = _day(credits, booking_date)
    entries = _entries(
        credits,
        doc_id=notification_id,
        booking_date=day,
        debits=0,
        batch_bookings=batch_bookings,
        pending=0,
        reversals=0,
    )
    totals = _Totals()
    for e in entries:
        totals.add(e)
    seq = random.Random(f"seq/{notification_id}").randrange(1, 366)
    parts = [
        _head("054", version, notification_id, day, account_iban, seq),
        _summary_xml(totals, version),
        *(_entry_xml(e, version, account_iban) for e in entries),
        _tail("054"),
    ]
    return "".join(parts).encode("utf-8")


def write_camt053(
    path: str | Path, n_transactions: int, *, seed: int, account_iban: str, version: str = "08"
) -> int:
    """Stream a camt.053 of `n_transactions` credits (one per entry) from world(seed) to `path`, one
    entry at a time: a first pass over the same seeded credits sums them (TxsSummry and the balances
    precede the entries), the second writes them. Returns the bytes written."""
    _check_version(version)
    w = world(seed)
    statement_id = f"STMT-{seed}-{n_transactions}"
    totals = _Totals()
    for c in iter_credits(w, n_transactions, seed):
        totals.add(_Entry((c,)))
    opening = _opening(statement_id)
    day = DEFAULT_BOOKING_DATE
    written = 0
    with open(path, "wb") as out:

        def put(text: str) -> None:
            nonlocal written
            data = text.encode("utf-8")
            out.write(data)
            written += len(data)

        put(_head("053", version, statement_id, day, account_iban, 1))
        put(_balance_xml("OPBD", opening, day))
        put(_balance_xml("CLBD", opening + totals.net, day))
        put(_summary_xml(totals, version))
        for c in iter_credits(w, n_transactions, seed):
            put(_entry_xml(_Entry((c,), ref=c.acct_svcr_ref), version, account_iban))
        put(_tail("053"))
    return written


# ---------------------------------------------------------------------------------------------------
# MT940 (German style :86:)

_TRANSLIT = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "Ä": "Ae",
        "Ö": "Oe",
        "Ü": "Ue",
        "ß": "ss",
        "é": "e",
        "è": "e",
        "ê": "e",
        "û": "u",
        "â": "a",
        "ç": "c",
        "?": ".",
        "\n": " ",
    }
)


def _swift(text: str) -> str:
    """German banks' MT940 text: transliterated to ASCII, no "?" (it separates the subfields)."""
    return text.translate(_TRANSLIT).encode("ascii", "replace").decode().replace("?", ".")


def _mt_amount(value: Decimal) -> str:
    return _amt(value).replace(".", ",")


def _field86(c: Credit) -> str:
    """`:86:166?00...?20EREF+...?21SVWZ+...?31IBAN?32Name`: the purpose in 27-character subfields ?20-?29
    then ?60-?63; lines of at most 65 characters, broken before a subfield as German banks do."""
    purpose = ""
    if c.end_to_end_id and c.end_to_end_id != "NOTPROVIDED":
        purpose += f"EREF+{c.end_to_end_id}"
    remittance = " ".join(p for p in (c.creditor_reference, c.text) if p)
    purpose += f"SVWZ+{remittance}" if remittance else ""
    purpose = _swift(purpose)
    chunks: list[str] = []
    while purpose and len(chunks) < 14:  # a subfield never ends in a space: readers strip it
        cut = min(27, len(purpose))
        while cut < len(purpose) and cut > 1 and purpose[cut - 1] == " ":
            cut -= 1
        chunks.append(purpose[:cut])
        purpose = purpose[cut:]
    tags = [f"?{20 + i}" for i in range(10)] + [f"?{60 + i}" for i in range(4)]
    fields = ["166", "?00SEPA-GUTSCHRIFT", "?100931"]
    fields += [f"{t}{ch}" for t, ch in zip(tags, chunks, strict=False)]
    if c.payer_iban:
        fields.append(f"?31{c.payer_iban}")
    name = _swift(c.payer_name)
    if name:
        fields.append(f"?32{name[:27]}")
        if len(name) > 27:
            fields.append(f"?33{name[27:54]}")
    fields.append("?34997")
    lines = [":86:"]
    for f in fields:
        if len(lines[-1]) + len(f) > 65:
            lines.append("")
        lines[-1] += f
    return "\r\n".join(lines)


def mt940(credits: Sequence[Credit], *, account: str, statement_number: int) -> bytes:
    """An MT940 statement of the credits (decimal commas, `:61:` with the AcctSvcrRef as bank reference,
    German `:86:`), opening/closing balances consistent; latin-1 bytes, CRLF lines."""
    day = _day(credits, None)
    opening = _opening(f"mt940/{account}/{statement_number}")
    lines = [
        ":20:STARTUMS",
        f":25:{account}",
        f":28C:{statement_number:05d}/001",
        f":60F:C{day - timedelta(days=1):%y%m%d}EUR{_mt_amount(opening)}",
    ]
    total = Decimal("0.00")
    for c in credits:
        total += c.amount
        bank_ref = f"//{c.acct_svcr_ref[:16]}" if c.acct_svcr_ref else ""
        lines.append(
            f":61:{c.value_date:%y%m%d}{c.booking_date:%m%d}C{_mt_amount(c.amount)}NTRFNONREF{bank_ref}"
        )
        lines.append(_field86(c))
    lines.append(f":62F:C{day:%y%m%d}EUR{_mt_amount(opening + total)}")
    lines.append("-")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def case_counts(credits: Iterable[Credit]) -> dict[str, int]:
    """How many credits of each case (for a test's report)."""
    out: dict[str, int] = {}
    for c in credits:
        out[c.case] = out.get(c.case, 0) + 1
    return out
