"""The bank data generator is itself tested: its files must be what a bank sends and its labels what the
payer meant, or a matcher measured against it would be measured against a mistake."""

from __future__ import annotations

import csv
import inspect
import io
import re
import tracemalloc
import xml.etree.ElementTree as ET
from decimal import Decimal

import mt940
import pytest
from schwifty import IBAN

from tests.support import bankgen as g

OWN = "DE89370400440532013000"
V = {
    "08": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
    "02": "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02",
}


@pytest.fixture(scope="module")
def world() -> g.World:
    return g.world(11)


@pytest.fixture(scope="module")
def credits(world) -> list[g.Credit]:
    return g.credits(world, 1500, 11)


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def find(el, path: str):
    """First element along a '/'-separated path of local names (namespaces ignored)."""
    for name in path.split("/"):
        if el is None:
            return None
        el = next((c for c in el if local(c.tag) == name), None)
    return el


def findall(el, name: str) -> list:
    return [c for c in el if local(c.tag) == name]


def text(el, path: str) -> str:
    found = find(el, path)
    return "" if found is None or found.text is None else found.text


def signed(el) -> Decimal:
    value = Decimal(text(el, "Amt"))
    return value if text(el, "CdtDbtInd") == "CRDT" else -value


def statement(raw: bytes):
    root = ET.fromstring(raw)
    return root, find(root, "BkToCstmrStmt/Stmt")


# --- world ------------------------------------------------------------------------------------------


def test_world_has_the_traps_a_matcher_must_survive(world):
    assert len(world.customers) == 300 and len(world.invoices) == 1500
    numbers = [i.number for i in world.invoices]
    assert len(set(numbers)) == len(numbers)
    assert len({i.digits for i in world.invoices}) == len(numbers), "digits unique across prefixes"
    assert any(n.startswith("SI-") for n in numbers) and any(n.isdigit() for n in numbers)
    assert {c.number[0] for c in world.customers} >= {"1", "C"}
    # Substring numbers: "SI-10471" beside "SI-104711".
    digits = {i.digits for i in world.invoices}
    assert any(len(d) == 5 and any(o != d and o.startswith(d) for o in digits) for d in digits)
    # One customer with several open invoices of the same amount.
    same = False
    for c in world.customers:
        amounts = [i.remaining for i in world.invoices_of(c.number, open_only=True)]
        same = same or len(amounts) != len(set(amounts))
    assert same
    names = world.names
    assert {"Contoso Ltd", "Contoso Lighting Ltd", "Müller & Söhne GmbH & Co. KG"} <= names
    statuses = [i.status for i in world.invoices]
    assert 0.08 < statuses.count("Paid") / len(statuses) < 0.25
    assert all(i.remaining == 0 for i in world.invoices if i.status == "Paid")
    assert any(0 < i.remaining < i.total for i in world.invoices)
    assert any(i.external_document_number for i in world.invoices)
    assert all(i.total == i.total.quantize(g.CENT) and i.remaining >= 0 for i in world.invoices)
    ibans = [len(c.ibans) for c in world.customers]
    assert {0, 1, 2} <= set(ibans)


def test_world_unprefixed_is_all_plain_and_same_seed_same_world():
    plain = g.world(5, customers=40, invoices=200, prefixed=False)
    assert all(i.number.isdigit() for i in plain.invoices)
    assert g.world(5, customers=40, invoices=200) == g.world(5, customers=40, invoices=200)
    assert g.world(5, customers=40, invoices=200) != g.world(6, customers=40, invoices=200)


def test_ibans_have_valid_check_digits_by_our_sum_and_schwifty(world):
    ibans = [iban for c in world.customers for iban in c.ibans]
    assert {iban[:2] for iban in ibans} >= {"DE", "NL", "FR", "GB", "BE", "AT", "CH"}
    for iban in ibans:
        assert g.iban_valid(iban)
        # FR and BE carry national check digits too; schwifty checks them.
        IBAN(iban, validate_bban=iban[:2] in ("FR", "BE"))
    assert g.iban_valid("DE89 3704 0044 0532 0130 00")
    assert not g.iban_valid("DE88370400440532013000")
    assert g.iban_check_digits("GB", "WEST12345698765432") == "82"  # the ISO 13616 example


def test_rf_reference_follows_iso_11649():
    assert g.rf_reference("539007547034") == "RF18539007547034"  # the standard's example
    assert g.rf_valid("RF18 5390 0754 7034")
    assert not g.rf_valid("RF19539007547034")
    for payload in ("1", "104711", "000000104711", "SI104711"):
        ref = g.rf_reference(payload)
        assert g.rf_valid(ref) and ref.endswith(payload)


# --- labelled credits -------------------------------------------------------------------------------


def test_every_case_is_present_in_about_its_proportion(credits):
    counts = g.case_counts(credits)
    assert set(counts) == set(g.CASES)
    for case, share in g.DEFAULT_MIX.items():
        assert abs(counts[case] / len(credits) - share) < 0.03 + share / 2, case
    assert max(counts, key=counts.get) == "exact"


def test_credits_are_well_formed(credits):
    refs = [c.acct_svcr_ref for c in credits if c.acct_svcr_ref]
    assert len(refs) == len(set(refs))
    assert 0 < len(credits) - len(refs) < len(credits) * 0.05
    for c in credits:
        assert isinstance(c.amount, Decimal) and c.amount == c.amount.quantize(g.CENT) and c.amount > 0
        assert c.currency == "EUR" and c.value_date >= c.booking_date
        assert c.payer_name and (c.payer_iban == "" or g.iban_valid(c.payer_iban))


def remaining_sum(world, numbers) -> Decimal:
    return sum((world.invoice(n).remaining for n in numbers), Decimal("0.00"))


def test_auto_ok_credits_name_open_invoices_of_the_customer_and_pay_exactly(world, credits):
    for c in credits:
        if not c.auto_ok:
            continue
        invoices = [world.invoice(n) for n in c.intended]
        assert invoices and all(i.status == "Open" and i.customer_number == c.customer for i in invoices), c
        assert c.amount == remaining_sum(world, c.intended), c
        owner = world.customer_by_iban(c.payer_iban) if c.payer_iban else None
        assert owner is None or owner.number == c.customer, c
        assert c.text or g.rf_valid(c.creditor_reference), c


def squeeze(s: str) -> str:
    return re.sub(r"[\s\-]", "", s).upper()


def test_labels_match_how_each_case_was_written(world, credits):
    by = {case: [c for c in credits if c.case == case] for case in g.CASES}
    auto: dict[str, set[bool]] = {case: set() for case in g.CASES}
    for c in credits:
        auto[c.case].add(c.auto_ok)
    for case in ("exact", "spaces", "dashes", "no-prefix", "lowercase-and-noise", "several", "name-typo"):
        assert auto[case] <= {True}, case
    for case in (
        "several-partial",
        "wrong-amount",
        "no-reference",
        "unknown-payer",
        "typo-in-number",
        "other-customer-reference",
        "paid-invoice",
    ):
        assert auto[case] <= {False}, case
    for c in by["exact"]:
        assert world.invoice(c.intended[0]).number in c.text
    for c in by["spaces"] + by["dashes"]:
        inv = world.invoice(c.intended[0])
        sep = " " if c.case == "spaces" else "-"
        assert inv.digits not in c.text and sep.join(g._split3(inv.digits)) in c.text
        assert squeeze(inv.number) in squeeze(c.text)
    for c in by["no-prefix"]:
        inv = world.invoice(c.intended[0])
        assert inv.number != inv.digits and inv.number not in c.text and inv.digits in c.text
    for c in by["lowercase-and-noise"]:
        assert c.text == c.text.lower() and world.invoice(c.intended[0]).digits in c.text
    for c in by["several"]:
        assert 2 <= len(c.intended) <= 3 and all(world.invoice(n).digits in c.text for n in c.intended)
    for c in by["several-partial"]:
        quoted = [i for i in world.invoices_of(c.customer) if re.search(rf"(?<!\d){i.digits}(?!\d)", c.text)]
        assert set(c.intended) < {i.number for i in quoted}
        assert c.amount == remaining_sum(world, c.intended)
    for c in by["wrong-amount"]:
        assert c.amount != world.invoice(c.intended[0]).remaining
    for c in by["name-typo"]:
        assert c.payer_name not in world.names
    for c in by["rf-reference"]:
        assert g.rf_valid(c.creditor_reference) and c.text == ""
        assert int(c.creditor_reference[4:]) == int(world.invoice(c.intended[0]).digits)
    for c in by["rf-invalid"]:
        assert c.creditor_reference.startswith("RF") and not g.rf_valid(c.creditor_reference)
        assert c.auto_ok == bool(c.text)
    assert {c.auto_ok for c in by["rf-invalid"]} == {True, False}
    for c in by["no-reference"]:
        assert world.customer_by_iban(c.payer_iban).number == c.customer
        assert not re.search(r"\d", c.text)
        assert not c.intended or c.amount == world.invoice(c.intended[0]).remaining
    assert {bool(c.intended) for c in by["no-reference"]} == {True, False}
    for c in by["unknown-payer"]:
        assert c.customer == "" and c.intended == () and world.customer_by_iban(c.payer_iban) is None
        assert c.payer_name not in world.names
    landed = 0
    for c in by["typo-in-number"]:
        inv = world.invoice(c.intended[0])
        assert inv.digits not in re.findall(r"\d+", c.text)
        for other in (world.invoice_by_digits(d) for d in re.findall(r"\d+", c.text)):
            if other is not None:
                assert other.customer_number != c.customer and other.remaining != c.amount
                landed += 1
    assert landed, "some typos must land on another real invoice"
    for c in by["other-customer-reference"]:
        payer = world.customer_by_iban(c.payer_iban)
        assert payer.number == c.customer != world.invoice(c.intended[0]).customer_number
    for c in by["paid-invoice"]:
        assert world.invoice(c.intended[0]).status == "Paid"


def test_a_mix_selects_cases_and_the_same_seed_gives_the_same_credits(world):
    only = g.credits(world, 50, 3, mix={"rf-reference": 1, "unknown-payer": 1})
    assert {c.case for c in only} == {"rf-reference", "unknown-payer"}
    assert g.credits(world, 200, 3) == g.credits(world, 200, 3)
    assert g.credits(world, 200, 3) != g.credits(world, 200, 4)
    with pytest.raises(ValueError, match="unknown"):
        g.credits(world, 1, 1, mix={"nope": 1})


# --- camt.053 / camt.054 ----------------------------------------------------------------------------


def check_totals(stmt) -> list:
    """Entries against TxsSummry and the balances; returns the entries."""
    entries = findall(stmt, "Ntry")
    booked = [e for e in entries if (text(e, "Sts/Cd") or text(e, "Sts")) == "BOOK"]
    cdt = [Decimal(text(e, "Amt")) for e in booked if text(e, "CdtDbtInd") == "CRDT"]
    dbt = [Decimal(text(e, "Amt")) for e in booked if text(e, "CdtDbtInd") == "DBIT"]
    summary = find(stmt, "TxsSummry")
    assert int(text(summary, "TtlCdtNtries/NbOfNtries")) == len(cdt)
    assert Decimal(text(summary, "TtlCdtNtries/Sum")) == sum(cdt)
    assert int(text(summary, "TtlDbtNtries/NbOfNtries")) == len(dbt)
    assert Decimal(text(summary, "TtlDbtNtries/Sum")) == sum(dbt)
    assert int(text(summary, "TtlNtries/NbOfNtries")) == len(booked)
    assert Decimal(text(summary, "TtlNtries/Sum")) == sum(cdt) + sum(dbt)
    balances = {text(b, "Tp/CdOrPrtry/Cd"): signed(b) for b in findall(stmt, "Bal")}
    if balances:
        assert balances["OPBD"] + sum(cdt) - sum(dbt) == balances["CLBD"]
    for e in entries:  # every entry's transactions add up to it
        txs = findall(find(e, "NtryDtls"), "TxDtls")
        amounts = [Decimal(text(t, "AmtDtls/TxAmt/Amt")) for t in txs]
        assert sum(amounts) == Decimal(text(e, "Amt"))
    return entries


@pytest.mark.parametrize("version", ["08", "02"])
def test_camt053_parses_with_the_right_namespace_and_consistent_totals(credits, version):
    chosen = credits[:120]
    raw = g.camt053(
        chosen,
        account_iban=OWN,
        version=version,
        statement_id="STMT-1",
        debits=5,
        batch_bookings=True,
        pending=3,
        reversals=2,
    )
    root, stmt = statement(raw)
    assert root.tag == f"{{{V[version]}}}Document"
    assert text(stmt, "Acct/Id/IBAN") == OWN and text(stmt, "Acct/Ccy") == "EUR"
    entries = check_totals(stmt)
    batches = [e for e in entries if len(findall(find(e, "NtryDtls"), "TxDtls")) > 1]
    assert batches
    for e in batches:
        tx_refs = [text(t, "Refs/AcctSvcrRef") for t in findall(find(e, "NtryDtls"), "TxDtls")]
        assert text(e, "AcctSvcrRef") not in tx_refs
    reversed_ = [e for e in entries if text(e, "RvslInd") == "true"]
    assert len(reversed_) == 2 and all(text(e, "CdtDbtInd") == "DBIT" for e in reversed_)
    status = [(text(e, "Sts/Cd") if version == "08" else text(e, "Sts")) for e in entries]
    assert status.count("PDNG") == 3 and set(status) == {"BOOK", "PDNG"}
    assert sum(text(e, "CdtDbtInd") == "DBIT" for e in entries) == 7
    # Every credit is there exactly once as a transaction (the pending ones too), with its own fields.
    txs = {}
    for e in entries:
        if text(e, "CdtDbtInd") == "CRDT":
            for t in findall(find(e, "NtryDtls"), "TxDtls"):
                txs[
                    text(t, "Refs/AcctSvcrRef") or text(t, "Refs/EndToEndId") + text(t, "AmtDtls/TxAmt/Amt")
                ] = t
    for c in chosen:
        t = txs[c.acct_svcr_ref or c.end_to_end_id + f"{c.amount:.2f}"]
        name = text(t, "RltdPties/Dbtr/Pty/Nm" if version == "08" else "RltdPties/Dbtr/Nm")
        assert name == c.payer_name
        assert text(t, "RltdPties/DbtrAcct/Id/IBAN") == c.payer_iban
        rmt = find(t, "RmtInf")
        ustrd = [u.text for u in findall(rmt, "Ustrd")] if rmt is not None else []
        assert "".join(ustrd) == c.text and all(len(u) <= 140 for u in ustrd)
        if c.creditor_reference:
            assert text(rmt, "Strd/CdtrRefInf/Ref") == c.creditor_reference
            assert text(rmt, "Strd/CdtrRefInf/Tp/CdOrPrtry/Cd") == "SCOR"
        if version == "08":
            assert Decimal(text(t, "Amt")) == c.amount
    assert any(len(c.text) > 140 for c in chosen) or any(len(c.text) > 140 for c in credits)


def test_long_text_splits_into_several_ustrd_and_names_are_escaped(world):
    c = next(c for c in g.credits(world, 3000, 5) if len(c.text) > 140)
    tricky = g.Credit(**{**c.__dict__, "payer_name": "Müller & Söhne <GmbH>", "text": c.text + " & Co"})
    _, stmt = statement(g.camt053([tricky], account_iban=OWN, statement_id="S"))
    tx = find(stmt, "Ntry/NtryDtls/TxDtls")
    assert text(tx, "RltdPties/Dbtr/Pty/Nm") == "Müller & Söhne <GmbH>"
    pieces = [u.text for u in findall(find(tx, "RmtInf"), "Ustrd")]
    assert len(pieces) >= 2 and "".join(pieces) == tricky.text


@pytest.mark.parametrize("version", ["08", "02"])
def test_camt054_carries_the_same_references_as_the_days_camt053(credits, version):
    chosen = credits[:60]
    n_raw = g.camt054(chosen, account_iban=OWN, version=version, notification_id="NTF-1")
    root = ET.fromstring(n_raw)
    assert root.tag == f"{{urn:iso:std:iso:20022:tech:xsd:camt.054.001.{version}}}Document"
    ntf = find(root, "BkToCstmrDbtCdtNtfctn/Ntfctn")
    assert ntf is not None and not findall(ntf, "Bal")
    check_totals(ntf)
    _, stmt = statement(g.camt053(chosen, account_iban=OWN, version=version, statement_id="STMT-2"))

    def refs(record):
        return [
            (text(e, "AcctSvcrRef"), text(t, "Refs/AcctSvcrRef"), text(t, "Refs/EndToEndId"))
            for e in findall(record, "Ntry")
            for t in findall(find(e, "NtryDtls"), "TxDtls")
        ]

    assert refs(ntf) == refs(stmt)
    assert [r[1] for r in refs(ntf)] == [c.acct_svcr_ref for c in chosen]


def test_same_seed_same_bytes():
    def make(seed: int) -> bytes:
        w = g.world(seed, customers=60, invoices=300)
        cs = g.credits(w, 100, seed)
        return g.camt053(
            cs, account_iban=OWN, statement_id="S", debits=2, batch_bookings=True
        ) + g.payers_csv(w)

    assert make(4) == make(4)
    assert make(4) != make(5)


def test_streamed_camt053_is_small_in_memory_and_complete(tmp_path):
    path = tmp_path / "big.xml"
    tracemalloc.start()
    try:
        written = g.write_camt053(path, 20_000, seed=9, account_iban=OWN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak
    assert written == path.stat().st_size
    count, total = 0, Decimal("0")
    summary = None
    for _, el in ET.iterparse(path):
        name = local(el.tag)
        if name == "Ntry":
            count += 1
            total += Decimal(text(el, "Amt"))
            el.clear()
        elif name == "TxsSummry":
            summary = el
    assert count == 20_000
    assert int(text(summary, "TtlCdtNtries/NbOfNtries")) == 20_000
    assert Decimal(text(summary, "TtlCdtNtries/Sum")) == total


def test_streamed_camt053_version_02_parses(tmp_path):
    path = tmp_path / "v2.xml"
    g.write_camt053(path, 200, seed=2, account_iban=OWN, version="02")
    root = ET.parse(path).getroot()
    assert root.tag == f"{{{V['02']}}}Document"
    assert len(check_totals(find(root, "BkToCstmrStmt/Stmt"))) == 200


# --- MT940, payer map, sandbox ----------------------------------------------------------------------


def test_mt940_parses_with_the_mt940_library(credits):
    chosen = credits[:80]
    raw = g.mt940(chosen, account=OWN, statement_number=12)
    parsed = mt940.models.Transactions()
    parsed.parse(raw.decode("latin-1"))
    assert len(parsed) == len(chosen)
    assert [t.data["amount"].amount for t in parsed] == [c.amount for c in chosen]
    opening = parsed.data["final_opening_balance"].amount.amount
    closing = parsed.data["final_closing_balance"].amount.amount
    assert opening + sum(c.amount for c in chosen) == closing
    for t, c in zip(parsed, chosen, strict=True):
        want = g._swift(" ".join(p for p in (c.creditor_reference, c.text) if p)) or None
        assert t.data["purpose"] == want
        assert t.data["bank_reference"] == (c.acct_svcr_ref or None)


def test_payers_csv_maps_every_iban_some_in_print_format(world):
    rows = list(csv.DictReader(io.StringIO(g.payers_csv(world).decode())))
    assert list(rows[0]) == ["iban", "customerNumber"]
    assert len(rows) == sum(len(c.ibans) for c in world.customers)
    assert any(" " in r["iban"] for r in rows) and any(" " not in r["iban"] for r in rows)
    for r in rows:
        assert world.customer_by_iban(r["iban"]).number == r["customerNumber"]


class Recorder:
    def __init__(self):
        self.customers: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}

    def add_customer(self, number, id=None, *, name, company_id):
        self.customers[number] = {"name": name, "company_id": company_id}
        return f"id-{number}"

    def add_invoice(
        self,
        number,
        customer_number,
        id=None,
        *,
        status="Open",
        amount,
        remaining=None,
        external_document_number="",
        due_date=None,
        company_id,
    ):
        assert customer_number in self.customers
        self.invoices[number] = {
            "customer": customer_number,
            "status": status,
            "amount": amount,
            "remaining": remaining,
            "ext": external_document_number,
            "due": due_date,
        }
        return f"id-{number}"


def test_seed_sandbox_adds_every_customer_then_every_invoice():
    w = g.world(1, customers=30, invoices=120)
    box = Recorder()
    g.seed_sandbox(box, w, "company-1")
    assert set(box.customers) == {c.number for c in w.customers}
    assert {v["company_id"] for v in box.customers.values()} == {"company-1"}
    inv = w.invoices[7]
    assert box.invoices[inv.number] == {
        "customer": inv.customer_number,
        "status": inv.status,
        "amount": inv.total,
        "remaining": inv.remaining,
        "ext": inv.external_document_number,
        "due": inv.due_date,
    }


def test_seed_sandbox_into_the_real_sandbox(sandbox):
    """Through the sandbox's own seeding methods: the bulk one, and one by one as a fallback."""
    if (
        "seed_receivables" not in dir(sandbox)
        and "remaining" not in inspect.signature(sandbox.add_invoice).parameters
    ):
        pytest.skip("the sandbox's seeding methods take no names and amounts yet")
    w = g.world(2, customers=20, invoices=60)
    company = sandbox.add_company()
    g.seed_sandbox(sandbox, w, company)
    partly = next(i for i in w.invoices if 0 < i.remaining < i.total)
    stored = sandbox.invoice(partly.number, company_id=company)
    assert (stored["amount"], stored["remaining"], stored["customer"]) == (
        partly.total,
        partly.remaining,
        partly.customer_number,
    )

    class OneByOne:
        add_customer = sandbox.add_customer
        add_invoice = sandbox.add_invoice

    other = sandbox.add_company()
    g.seed_sandbox(OneByOne(), w, other)
    assert sandbox.invoice(partly.number, company_id=other)["remaining"] == partly.remaining
