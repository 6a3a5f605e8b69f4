"""Bank statement readers against every third-party sample in ../shared/samples/bank, their beside-files
(genkgo/camt `.json`, WoLpH/mt940 `.yml`) and the files' own totals; and against hostile input."""

from __future__ import annotations

import datetime
import io
import json
import re
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from payments.bank import HEAD_BYTES, kind_of, reader_for
from payments.bank.statement import Keys, Transaction, clean
from payments.errors import InputError

D = Decimal
SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "bank"
if not SAMPLES.is_dir():
    raise RuntimeError(
        f"the bank statement samples are missing: expected them at {SAMPLES} (the shared folder beside the "
        "repository clone, as CI has it)"
    )

# Per sample: statements, transactions, credits (booked, not reversed), sum of credits per currency,
# skipped by reason, transactions flagged with a problem. Or (error type, start of the message).
EXPECTED: dict[str, tuple] = {
    "bai2/account_trailer_amount_blank_example.bai2": (2, 0, 0, {}, {}, 0),
    "bai2/citi_example.bai2": (1, 1, 1, {"GBP": D("0.01")}, {}, 0),
    "bai2/nwb_example.bai2": (1, 5, 1, {"GBP": D("0.89")}, {"debit": 4}, 0),
    "camt/camt053.v2.all-balance-types.xml": (1, 1, 1, {"EUR": D("8.850")}, {}, 0),
    "camt/camt053.v2.five.decimals.xml": (1, 1, 1, {"EUR": D("8.850")}, {}, 0),
    "camt/camt053.v2.minimal.ultimate.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 0),
    "camt/camt053.v2.minimal.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 0),
    "camt/camt053.v2.multi.statement.xml": (2, 2, 1, {"EUR": D("8.85")}, {"debit": 1}, 0),
    "camt/camt053.v2.with-account-name.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 0),
    "camt/camt053.v2.with-party-ids.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 0),
    "camt/camt053.v2.wrong.xml": (
        InputError,
        "the camt.053.001.02 message holds no statement (Stmt element)",
    ),
    # v3: TxDtls/Amt 105.750 EUR inside an entry of 8.85 EUR; v4/v8: TxDtls/Amt 0 SEK. The entry's booked
    # amount counts, and the contradiction sends the credit to review (problem).
    "camt/camt053.v3.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 1),
    "camt/camt053.v4.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 1),
    "camt/camt053.v8.xml": (1, 1, 1, {"EUR": D("8.85")}, {}, 1),
    "camt/camt054.v2.with-account-name.xml": (1, 1, 0, {}, {"debit": 1}, 0),
    "camt/camt054.v2.xml": (1, 3, 0, {}, {"debit": 3}, 3),
    "camt/camt054.v4.xml": (1, 3, 0, {}, {"debit": 3}, 3),
    "camt/camt054.v8-with-UETR.xml": (1, 1, 0, {}, {"debit": 1}, 0),
    "camt/camt054.v8-with-financial-institution.xml": (1, 1, 0, {}, {"debit": 1}, 0),
    "camt/camt054.v8.xml": (1, 3, 0, {}, {"debit": 3}, 3),
    # Fragments of one tag each (the mt940 project's tag tests): not a statement, refused as a whole.
    "mt940/betterplace/amount_formats.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/currency_in_25.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/empty_86.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/empty_entry_date.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/empty_line.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/missing_crlf_at_end.sta": (InputError, "not a complete MT940 statement"),
    "mt940/betterplace/sepa_mt9401.sta": (
        26,
        97,
        41,
        {"EUR": D("5188474.94")},
        {"debit": 54, "reversal": 2},
        0,
    ),
    "mt940/betterplace/sepa_snippet.sta": (2, 11, 8, {"EUR": D("1430745.72")}, {"debit": 3}, 0),
    "mt940/betterplace/sepa_snippet_broken.sta": (
        InputError,
        "statement 1 (its :20: on line 1) names its account (:25:) 2 times (lines 2, 6)",
    ),
    "mt940/betterplace/with_binary_character.sta": (2, 4, 3, {"EUR": D("14215.30")}, {"debit": 1}, 0),
    "mt940/jejik/abnamro.sta": (2, 10, 0, {}, {"debit": 10}, 0),
    "mt940/jejik/generic.sta": (2, 2, 0, {}, {"debit": 2}, 0),
    "mt940/jejik/ing.sta": (1, 7, 2, {"EUR": D("4.68")}, {"debit": 5}, 0),
    "mt940/jejik/knab.sta": (2, 3, 2, {"EUR": D("1000")}, {"debit": 1}, 0),
    "mt940/jejik/postfinance.sta": (2, 4, 3, {"CHF": D("239.3")}, {"debit": 1}, 0),
    "mt940/jejik/rabobank-iban.sta": (2, 4, 0, {}, {"debit": 4}, 0),
    "mt940/jejik/rabobank.sta": (4, 5, 0, {}, {"debit": 5}, 0),
    "mt940/jejik/sns.sta": (2, 2, 0, {}, {"debit": 2}, 0),
    "mt940/jejik/triodos.sta": (1, 2, 0, {}, {"debit": 2}, 0),
}
KINDS = {".xml": "camt", ".sta": "mt940", ".bai2": "bai2"}


def sample_files() -> list[str]:
    return sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.suffix in KINDS)


def read(data: bytes, name: str = "statement.dat"):
    kind = kind_of(data[:HEAD_BYTES])
    assert kind is not None, f"{name} is not recognised as a bank statement"
    reader = reader_for(kind, io.BytesIO(data), name)
    return reader, list(reader.transactions())


def read_sample(rel: str):
    return read((SAMPLES / rel).read_bytes(), Path(rel).name)


def test_every_sample_is_in_the_expectations_and_none_is_left_out():
    assert sample_files() == sorted(EXPECTED), "a sample was added or removed: list it in EXPECTED"


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_sample_reads_to_the_expected_totals(rel: str):
    expected = EXPECTED[rel]
    if isinstance(expected[0], type):
        with pytest.raises(expected[0]) as caught:
            read_sample(rel)
        assert str(caught.value).startswith(expected[1])
        assert "send" in str(caught.value) or "ask the bank" in str(caught.value)
        return
    statements, count, credits, sums, skipped, problems = expected
    reader, txs = read_sample(rel)
    assert len(reader.statements) == statements
    assert len(txs) == count
    paid = [t for t in txs if t.skip_reason is None]
    assert len(paid) == credits
    got: dict[str, Decimal] = {}
    for t in paid:
        got[t.currency] = got.get(t.currency, D(0)) + t.amount
    assert got == sums
    assert {c: str(v) for c, v in got.items()} == {c: str(v) for c, v in sums.items()}  # exact, digits too
    assert dict(Counter(t.skip_reason for t in txs if t.skip_reason)) == skipped
    assert sum(1 for t in txs if t.problem) == problems


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_sample_detected_by_content_whatever_its_name(rel: str):
    data = (SAMPLES / rel).read_bytes()
    assert kind_of(data[:HEAD_BYTES]) == KINDS[Path(rel).suffix]
    if not isinstance(EXPECTED[rel][0], type):  # a misleading name changes nothing
        _, right = read_sample(rel)
        _, wrong = read(data, "payments.csv")
        assert [t.key for t in wrong] == [t.key for t in right]


@pytest.mark.parametrize("rel", [r for r in sorted(EXPECTED) if not isinstance(EXPECTED[r][0], type)])
def test_sample_money_is_decimal_and_keys_are_unique_and_stable(rel: str):
    reader, txs = read_sample(rel)
    for t in txs:
        # no amount only where the bank gave none (a batch without per-transaction amounts): for review
        assert (isinstance(t.amount, Decimal) and t.amount >= 0) or (t.amount is None and t.problem)
        assert t.direction in ("credit", "debit")
    for s in reader.statements:
        for value in (s.opening, s.closing, s.booked_credit_sum, s.booked_debit_sum):
            assert value is None or isinstance(value, Decimal)
    keys = [t.key for t in txs]
    assert len(set(keys)) == len(keys)
    _, again = read_sample(rel)
    assert [t.key for t in again] == keys


# -- the files' own totals -------------------------------------------------------------------------------

# Per sample, per statement: what the balance check says. Many samples are made-up test data whose
# balances do not add up (or are in another currency); a mismatch is reported, never hidden.
BALANCES = {
    "camt/camt053.v2.all-balance-types.xml": ["DIFFERS"],
    "camt/camt053.v2.five.decimals.xml": ["DIFFERS"],
    "camt/camt053.v2.minimal.xml": ["not comparable: the CLBD balance is in SEK, the account in EUR"],
    "camt/camt053.v2.multi.statement.xml": ["matches", "matches"],
    "camt/camt053.v8.xml": ["not comparable: the CLBD balance is in SEK, the account in EUR"],
    "mt940/betterplace/sepa_snippet.sta": ["matches", "DIFFERS"],
    "mt940/betterplace/with_binary_character.sta": ["matches", "matches"],
    "mt940/jejik/abnamro.sta": ["DIFFERS", "DIFFERS"],
    "mt940/jejik/generic.sta": ["matches", "matches"],
    "bai2/citi_example.bai2": ["DIFFERS"],
    "bai2/nwb_example.bai2": ["matches"],
}


@pytest.mark.parametrize("rel", sorted(BALANCES))
def test_balance_check_against_the_files_own_balances(rel: str):
    reader, _ = read_sample(rel)
    got = [s.checks.get("balance", "") for s in reader.statements]
    assert len(got) == len(BALANCES[rel])
    for check, want in zip(got, BALANCES[rel], strict=True):
        assert want in check, check


def test_sepa_mt9401_every_statement_ties_out_with_rc_as_a_debit():
    """26 statements, two of them with `RC` (reversal of a credit): only with RC booked as money out do
    opening + credits - debits equal the closing balance in all 26."""
    reader, txs = read_sample("mt940/betterplace/sepa_mt9401.sta")
    assert all("matches" in s.checks["balance"] for s in reader.statements)
    reversals = [t for t in txs if t.reversal]
    assert [(t.direction, t.amount, t.skip_reason) for t in reversals] == [
        ("debit", D("204.88"), "reversal"),
        ("debit", D("204.88"), "reversal"),
    ]


def test_sepa_snippet_second_statement_does_not_tie_and_says_so_with_both_values():
    reader, _ = read_sample("mt940/betterplace/sepa_snippet.sta")
    check = reader.statements[1].checks["balance"]
    assert check == (
        "opening -1970431.87 + credits - debits = -4472349.17: DIFFERS FROM the closing balance -4472049.09"
    )


def test_bai2_summary_totals_and_control_totals():
    reader, txs = read_sample("bai2/nwb_example.bai2")
    (s,) = reader.statements
    assert s.declared_credits == (1, D("0.89")) and s.declared_debits == (4, D("27.65"))
    assert s.checks["credits"].startswith("matches") and s.checks["debits"].startswith("matches")
    assert (
        s.checks["balance"]
        == "opening 365.21 + credits - debits = 338.45: matches the closing balance 338.45"
    )
    assert [(t.direction, t.amount, t.bank_code) for t in txs] == [
        ("debit", D("9.71"), "699"),
        ("debit", D("1.00"), "699"),
        ("debit", D("1.23"), "699"),
        ("debit", D("15.71"), "699"),
        ("credit", D("0.89"), "399"),
    ]
    assert txs[4].text.startswith(
        "TFR XBANKGO24007680SJ CAT JPY 2 GBPXBANKGO24007680BGC INTERNATIONAL-5373 CLIE"
    )
    assert "control total" in s.checks and s.checks["control total"].startswith("matches")


def test_bai2_citi_continuation_records_and_value_date():
    _, (tx,) = read_sample("bai2/citi_example.bai2")
    assert (tx.direction, tx.amount, tx.currency, tx.bank_code) == ("credit", D("0.01"), "GBP", "191")
    assert tx.bank_reference == "1234567890" and tx.end_to_end == "RP12312312312312"
    assert tx.value_date == datetime.date(2015, 7, 15) and tx.booking_date == datetime.date(2015, 7, 15)
    assert "FR:FP SIP INCOMING" in tx.text and "BO:11111111 BO1:DOE JO" in tx.text


def test_bai2_blank_account_trailer_amount_reads_two_empty_accounts():
    reader, txs = read_sample("bai2/account_trailer_amount_blank_example.bai2")
    assert txs == [] and [s.account for s in reader.statements] == ["12345", "54321"]
    assert all(s.currency == "USD" for s in reader.statements)  # BAI2: no currency means USD
    assert all(
        s.checks["control total"] == "the account trailer (49) gives no control total"
        for s in reader.statements
    )


def test_bai2_minor_units_follow_the_currency_exponent():
    def file(currency: str, amount: str) -> bytes:
        return (
            f"01,BANK,CUST,240101,0000,1,,,2/\n02,CUST,BANK,1,240101,0000,{currency},2/\n03,1,{currency},/\n"
            f"16,399,{amount},,REF1,,text/\n49,{amount},3/\n98,{amount},1,5/\n99,{amount},1,7/\n"
        ).encode()

    for currency, amount, value in (
        ("JPY", "12345", "12345"),
        ("USD", "12345", "123.45"),
        ("KWD", "12345", "12.345"),
    ):
        _, (tx,) = read(file(currency, amount))
        assert (tx.currency, str(tx.amount)) == (currency, value)


def test_bai2_control_total_mismatch_is_an_input_error():
    data = b"01,B,C,240101,0000,1,,,2/\n02,C,B,1,240101,0000,USD,2/\n03,1,USD,/\n16,399,100,,R,,t/\n49,999,3/\n98,999,1,5/\n99,999,1,7/\n"
    with pytest.raises(InputError, match="does not add up"):
        read(data)


# -- camt against genkgo/camt's reading (.json) ----------------------------------------------------------


def _g(o, *path):
    for p in path:
        if not isinstance(o, dict):
            return None
        o = o.get(p)
    return o


def _money(m) -> tuple[Decimal, str]:
    return D(m["getAmount"]).scaleb(-2), m["getCurrency"]["getCode"]  # all sample currencies have 2 decimals


def _by_entry(txs: list[Transaction]) -> dict[tuple[int, int], list[Transaction]]:
    out: dict[tuple[int, int], list[Transaction]] = {}
    for t in txs:
        parts = t.location.split(", ")
        out.setdefault((t.statement, int(parts[1].split()[1])), []).append(t)
    return out


CAMT_WITH_JSON = sorted(
    str(p.relative_to(SAMPLES)) for p in (SAMPLES / "camt").glob("*.xml") if p.with_suffix(".json").exists()
)


@pytest.mark.parametrize("rel", CAMT_WITH_JSON)
def test_camt_sample_agrees_with_genkgo_reading(rel: str):
    beside = json.loads((SAMPLES / rel).with_suffix(".json").read_text(encoding="utf-8"))
    reader, txs = read_sample(rel)
    ids = [s.id for s in reader.statements]
    entries = _by_entry(txs)
    record_id = _g(beside["getEntries"][0], "getRecord", "getId")
    # The multi-statement file's beside-file lists one statement's entries only (genkgo keeps the last
    # record's): find that statement by its id.
    statement = ids.index(record_id) if record_id else 0
    for number, e in enumerate(beside["getEntries"], start=1):
        ours = entries[(statement, number)]
        value, currency = _money(e["getAmount"])
        assert (-value if e["getCreditDebitIndicator"] == "DBIT" else value) == value * (
            -1 if ours[0].direction == "debit" else 1
        )
        assert any(t.problem for t in ours) or abs(value) == sum(t.amount for t in ours)
        assert all(t.currency == currency for t in ours)
        assert all(
            t.direction == ("credit" if e["getCreditDebitIndicator"] == "CRDT" else "debit") for t in ours
        )
        assert all(t.reversal == bool(e["getReversalIndicator"]) for t in ours)
        assert all(
            t.status == {"BOOK": "booked", "PDNG": "pending", "INFO": "info"}[e["getStatus"]] for t in ours
        )
        for field, attr in (("getBookingDate", "booking_date"), ("getValueDate", "value_date")):
            want = _g(e, field, "0")
            got = getattr(ours[0], attr)
            assert (got.isoformat() if got else None) == (want[:10] if want else None)
        assert ours[0].entry_reference == (e.get("getAccountServicerReference") or "")
        details = [e["getTransactionDetail"]] + [
            d for d in e.get("getTransactionDetails") or [] if isinstance(d, dict)
        ]
        assert len(details) == len(ours)
        for d, t in zip(details, ours, strict=True):
            ref = d.get("getReference") or {}
            assert t.end_to_end == (
                _g(ref, "getEndToEndId") if _g(ref, "getEndToEndId") not in (None, "NOTPROVIDED") else ""
            ) or t.end_to_end == (_g(ref, "getUuidEndToEndReference") or "")
            debtors = [
                p
                for p in d.get("getRelatedParties") or []
                if isinstance(p, dict)
                and _g(p, "getRelatedPartyType", "__CLASS__").endswith(("\\Debtor", "\\UltimateDebtor"))
            ]
            names = [_g(p, "getRelatedPartyType", "getName") for p in debtors]
            assert t.payer_name == (names[0] if names else ""), names
            iban = next(
                (_g(p, "getAccount", "getIdentification") for p in debtors if p.get("getAccount")), ""
            )
            assert t.payer_account == (iban or "")
            message = _g(d, "getRemittanceInformation", "getMessage")
            cref = _g(d, "getRemittanceInformation", "getCreditorReferenceInformation", "getRef")
            if cref:  # genkgo keeps SCOR references only; ours keeps any (a Swiss ISR reference too)
                assert cref == t.creditor_reference
            if message and message != cref:
                assert t.text.startswith(message)


def test_camt_multi_statement_reads_both_statements_with_their_own_balances():
    reader, txs = read_sample("camt/camt053.v2.multi.statement.xml")
    assert [s.id for s in reader.statements] == ["253EURNL26VAYB8060476890", "254EURNL26VAYB8060476890"]
    assert [(t.statement, t.direction, t.amount, t.end_to_end, t.text) for t in txs] == [
        (0, "credit", D("8.85"), "000000001", "Transaction Description 1"),
        (1, "debit", D("7.00"), "000000002", "Transaction Description 2"),
    ]
    assert [(s.opening, s.closing) for s in reader.statements] == [
        (D("18.15"), D("27.00")),
        (D("27.00"), D("20.00")),
    ]


def test_camt054_debit_entry_with_credit_transactions_in_chf_never_becomes_a_credit():
    """The entry books DBIT 200000 SEK; its three TxDtls say CRDT 3.1/3.2/3.2 CHF. The entry decides (a
    debit: not a payment) and each transaction carries a problem for review."""
    for rel in ("camt/camt054.v4.xml", "camt/camt054.v8.xml"):
        _, txs = read_sample(rel)
        assert [(t.direction, t.amount, t.currency, t.skip_reason) for t in txs] == [
            ("debit", D("3.1"), "SEK", "debit"),
            ("debit", D("3.2"), "SEK", "debit"),
            ("debit", D("3.2"), "SEK", "debit"),
        ]
        assert all("split cannot be trusted" in t.problem or "CRDT inside a DBIT" in t.problem for t in txs)
        assert txs[0].problem.startswith("the transaction says CRDT inside a DBIT entry")
        assert [t.end_to_end for t in txs] == [
            "UXC06170000006PI00001EE00001",
            "UXC06170000006PI00001EE00002",
            "UXC06170000006PI00001EE00002",
        ]
        assert (
            txs[2].text
            == "Unstructured Remittance Information V3 block 1 Unstructured Remittance Information V3 block 2"
        )
        assert txs[2].creditor_reference == "Ref number V3 block 1"
        assert len({t.key for t in txs}) == 3


def test_camt053_v8_party_in_pty_status_in_sts_cd_and_contradicting_transaction_amount():
    _, (tx,) = read_sample("camt/camt053.v8.xml")
    assert (tx.status, tx.payer_name, tx.payer_account) == ("booked", "NAME NAME", "NL56AGDH9619008421")
    assert tx.booking_date == datetime.date(2014, 12, 31) and tx.bank_code == "PMNT/RCDT/BOOK"
    assert tx.bank_reference == "AAAASESS-FP-CN_98765/01"  # the entry's AcctSvcrRef, one transaction
    assert (tx.amount, tx.currency) == (D("8.85"), "EUR")
    assert tx.problem == "the entry books 8.85 EUR but its transaction says 0 SEK"


def test_camt_uetr_stands_in_for_a_missing_end_to_end_id():
    _, (tx,) = read_sample("camt/camt054.v8-with-UETR.xml")
    assert tx.end_to_end == "255ae394-9965-4438-ac86-f406feada396"


def test_camt_five_decimals_kept_exactly():
    reader, (tx,) = read_sample("camt/camt053.v2.five.decimals.xml")
    assert str(tx.amount) == "8.850" and str(reader.statements[0].opening) == "18.150"


# -- MT940 against the mt940 project's reading (.yml) ----------------------------------------------------


class _YamlLoader(yaml.SafeLoader):
    """Reads the mt940 project's pickled-object YAML without running any code: objects become dicts,
    `Decimal(...)` a Decimal, `Date(bytes)` a date, everything else None."""


def _object(loader, suffix, node):
    data: dict = {}
    yield data
    if isinstance(node, yaml.MappingNode):
        data.update(loader.construct_mapping(node, deep=True))


def _apply(loader, suffix, node):
    args = loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode) else []
    if suffix == "decimal.Decimal":
        return D(args[0])
    if suffix in ("mt940.models.Date", "mt940.models.DateTime") and args and isinstance(args[0], bytes):
        b = args[0]
        return datetime.date((b[0] << 8) | b[1], b[2], b[3])
    return None


_YamlLoader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", _apply)
_YamlLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _object)
_YamlLoader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)


def _yml(rel: str) -> dict:
    with open((SAMPLES / rel).with_suffix(".yml"), encoding="utf-8", errors="replace") as f:
        return yaml.load(f, Loader=_YamlLoader)


def _squash(text: str) -> str:
    return clean(text).replace(" ", "")


MT940_READ = [r for r in sorted(EXPECTED) if r.startswith("mt940/") and not isinstance(EXPECTED[r][0], type)]


@pytest.mark.parametrize("rel", MT940_READ)
def test_mt940_sample_agrees_with_the_mt940_projects_reading(rel: str):
    beside = _yml(rel)["transactions"]
    reader, txs = read_sample(rel)
    assert len(txs) == len(beside)
    for t, y in zip(txs, beside, strict=True):
        d = y["data"]
        mark = d["status"].upper()
        assert t.amount == abs(d["amount"]["amount"])
        assert t.direction == ("credit" if mark in ("C", "RD") else "debit")
        assert t.reversal == mark.startswith("R")
        assert t.value_date == d["date"]
        assert t.booking_date == (d.get("entry_date") or d["date"])  # no entry date: the value date
        if d.get("bank_reference") not in (None, "", "NONREF"):
            assert t.bank_reference == d["bank_reference"]
        if d.get("applicant_name"):
            assert _squash(t.payer_name) == _squash(d["applicant_name"])
        if d.get("applicant_iban"):
            assert t.payer_account == d["applicant_iban"]
        if d.get("end_to_end_reference") not in (None, "NONREF"):
            assert t.end_to_end == clean(d["end_to_end_reference"])
        if d.get("purpose"):  # the project's 5.0 reading cut long :86: texts; ours keeps them whole
            assert _squash(t.text).startswith(_squash(d["purpose"]))
        elif (
            d.get("transaction_details")
            and not t.payer_name
            and not re.match(r"\s*\d{3}[?>]\d\d", d["transaction_details"])
        ):
            assert _squash(t.text) == _squash(d["transaction_details"])
    last = _yml(rel)["data"]  # the project keeps the last statement's balances
    s = reader.statements[-1]
    if last.get("final_opening_balance"):
        assert s.opening == last["final_opening_balance"]["amount"]["amount"] or last.get(
            "intermediate_opening_balance"
        )
    if last.get("final_closing_balance"):
        assert s.closing in (
            last["final_closing_balance"]["amount"]["amount"],
            (last.get("intermediate_closing_balance") or {}).get("amount", {}).get("amount"),
        )


def test_mt940_german_86_structure():
    _, txs = read_sample("mt940/betterplace/sepa_snippet.sta")
    t = txs[0]
    assert (t.direction, t.amount, t.currency) == ("credit", D("50990.05"), "EUR")
    assert t.value_date == datetime.date(2007, 9, 7) and t.booking_date == datetime.date(2007, 9, 4)
    assert t.payer_name == "KARL KAUFMANN" and t.payer_account == "DE14508800500194785000"
    assert t.end_to_end == "EndToEndId TFNR 22 004 00001" and t.text == "Verw CTSc-01 BC-PPP TFNr 22 004"
    assert t.bank_reference == "0724710333343453" and t.bank_code == "NTRF"
    # ?32/?33 cut a name mid-word: joined without a space
    assert txs[7].payer_name == "Richter Renate 70 Zeichen Beginn Fuellzeichen xxxxxxxx"


def test_mt940_dutch_86_structure_and_triodos_subfields():
    _, txs = read_sample("mt940/jejik/rabobank-iban.sta")
    assert (txs[0].payer_name, txs[0].end_to_end) == (
        "CONTRA ACCOUNT HOLDER",
        "01-01-2013 12:00 0030000987654321",
    )
    assert (txs[1].payer_name, txs[1].text) == ("JOHN DOE", "Reference 201301234")
    _, txs = read_sample("mt940/jejik/triodos.sta")
    assert [t.text for t in txs] == [
        "ALGEMENE TUSSENREKENING KOSTEN VAN 01-10-2010 TOT EN MET 31-12-2010",
        "HUUR KANTOOR - FEB 2010",
    ]
    assert txs[0].payer_account == "0390123456"


def test_mt940_binary_character_and_latin1_are_read():
    _, txs = read_sample("mt940/betterplace/with_binary_character.sta")
    assert [(t.payer_name, t.amount) for t in txs[:2]] == [
        ("PAYPAL", D("27.00")),
        ("WIRECARD BANK AG", D("13068.30")),
    ]
    assert all(c.isprintable() for t in txs for c in t.text)
    assert txs[3].text.startswith("Belegloser ZahlungsauftragÜberweisung")


def _mt940(lines_61: str, opening: str = "C240101EUR100,00", closing: str = "C240102EUR150,00") -> bytes:
    return (
        f":20:REF\r\n:25:DE89370400440532013000\r\n:28C:1/1\r\n:60F:{opening}\r\n{lines_61}:62F:{closing}\r\n-"
    ).encode()


def test_mt940_reversal_marks_direction_in_effect():
    data = _mt940(
        ":61:2401020102C100,00NTRFNONREF//B1\r\n:86:credit\r\n"
        ":61:2401020102RC30,00NTRFNONREF//B2\r\n:86:reversal of a credit\r\n"
        ":61:2401020102RD5,00NTRFNONREF//B3\r\n:86:reversal of a debit\r\n"
        ":61:2401020102D25,00NTRFNONREF//B4\r\n:86:debit\r\n",
        closing="C240102EUR150,00",
    )
    reader, txs = read(data)
    assert [(t.direction, t.reversal, t.skip_reason) for t in txs] == [
        ("credit", False, None),
        ("debit", True, "reversal"),
        ("credit", True, "reversal"),
        ("debit", False, "debit"),
    ]
    assert "matches" in reader.statements[0].checks["balance"]  # 100 + 100 - 30 + 5 - 25 = 150


def test_mt940_fragment_tags_inside_a_statement_read_like_the_mt940_project():
    """The one-tag fragments are refused as files; their content inside a whole statement reads as the
    project's .yml says (amount formats, a missing entry date)."""
    for opening, value in (
        ("C100318EUR380115,12", "380115.12"),
        ("C100318EUR380115,", "380115"),
        ("C100318EUR0,12", "0.12"),
        ("C100318EUR001,12", "1.12"),
    ):
        reader, _ = read(_mt940("", opening=opening, closing=opening))
        assert str(reader.statements[0].opening) == value
    _, (tx,) = read(_mt940(":61:110701CN50,00NZ10NONREF\r\n", closing="C240102EUR150,00"))
    assert (tx.amount, tx.value_date, tx.booking_date) == (
        D("50.00"),
        datetime.date(2011, 7, 1),
        datetime.date(2011, 7, 1),
    )


def test_mt940_statement_cut_off_is_refused_not_read_short():
    data = _mt940(":61:2401020102C50,00NTRFNONREF//B1\r\n:86:x\r\n").split(b":62F:")[0]
    with pytest.raises(InputError, match=r"has 0 closing balances .* it looks cut off"):
        read(data)


# -- keys ------------------------------------------------------------------------------------------------

_NS = "urn:iso:std:iso:20022:tech:xsd:{}"


def _camt(message: str, record: str, entries: list[tuple[str, str, str]]) -> bytes:
    """A small camt file: entries of (AcctSvcrRef of the transaction, amount, EndToEndId)."""
    root = {"camt.053.001.08": "BkToCstmrStmt", "camt.054.001.08": "BkToCstmrDbtCdtNtfctn"}[message]
    ntry = "".join(
        f"<Ntry><Amt Ccy='EUR'>{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
        f"<BookgDt><Dt>2024-03-01</Dt></BookgDt><NtryDtls><TxDtls><Refs><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<EndToEndId>{e2e}</EndToEndId></Refs><Amt Ccy='EUR'>{amount}</Amt></TxDtls></NtryDtls></Ntry>"
        for ref, amount, e2e in entries
    )
    return (
        f"<?xml version='1.0'?><!-- made by hand --><Document xmlns='{_NS.format(message)}'><{root}>"
        f"<GrpHdr><MsgId>M</MsgId></GrpHdr><{record}><Id>S1</Id><Acct><Id><IBAN>DE89 3704 0044 0532 0130 00</IBAN>"
        f"</Id><Ccy>EUR</Ccy></Acct>{ntry}</{record}></{root}></Document>"
    ).encode()


def test_keys_of_camt054_notifications_equal_those_of_the_days_camt053_in_another_order():
    intraday = _camt("camt.054.001.08", "Ntfctn", [("TX-2", "20.00", "E2"), ("TX-1", "10.00", "E1")])
    day = _camt(
        "camt.053.001.08", "Stmt", [("TX-1", "10.00", "E1"), ("TX-3", "30.00", "E3"), ("TX-2", "20.00", "E2")]
    )
    _, notified = read(intraday)
    _, booked = read(day)
    by_ref = {t.bank_reference: t.key for t in booked}
    assert {t.bank_reference: t.key for t in notified} == {"TX-2": by_ref["TX-2"], "TX-1": by_ref["TX-1"]}
    assert len(set(by_ref.values())) == 3


def test_digest_keys_do_not_shift_when_another_statement_lists_the_same_transactions_in_another_order():
    def tx(amount: str, text: str) -> Transaction:
        return Transaction(
            "x", 0, "credit", D(amount), "EUR", booking_date=datetime.date(2024, 3, 1), text=text
        )

    def keys(items: list[Transaction]) -> dict[tuple[str, str], list[str]]:
        k = Keys()
        out: dict[tuple[str, str], list[str]] = {}
        for t in items:
            k.assign(t, "DE89370400440532013000")
            out.setdefault((str(t.amount), t.text), []).append(t.key)
        return out

    first = keys([tx("10", "a"), tx("10", "a"), tx("20", "b"), tx("30", "c")])
    second = keys([tx("30", "c"), tx("10", "a"), tx("20", "b"), tx("10", "a")])
    assert first == second
    assert len({k for ks in first.values() for k in ks}) == 4  # two identical ones still get two keys


def test_keys_of_a_basis_holding_the_separator_cannot_collide():
    k = Keys()
    a = Transaction("x", 0, "credit", D(1), "EUR", entry_reference="E|1", position=2)
    b = Transaction("x", 0, "credit", D(1), "EUR", entry_reference="E", position=1)
    b.entry_reference = "E"
    k.assign(a, "ACC")
    k.assign(b, "ACC|E|1")  # would have been "entry|ACC|E|1|2" vs "entry|ACC|E|1|2"... never equal now
    assert a.key != b.key


# -- hostile and non-statement input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"customerNumber;amount\n10000;-5\n",
        b'[{"customerNumber": "10000", "amount": -5}]',
        b'{"payments": [{"customerNumber": "10000", "amount": 5}]}',
        b"\xef\xbb\xbfcustomerNumber,amount\r\n10000,5\r\n",
    ],
)
def test_payment_files_are_not_statements(head: bytes):
    assert kind_of(head) is None


def _camt_error(data: bytes) -> str:
    with pytest.raises(InputError) as caught:
        reader = reader_for("camt", io.BytesIO(data), "x.xml")
        list(reader.transactions())
    return str(caught.value)


def test_empty_file_given_to_each_reader_is_an_input_error():
    assert "not well-formed XML" in _camt_error(b"")
    for kind in ("mt940", "bai2"):
        with pytest.raises(InputError):
            list(reader_for(kind, io.BytesIO(b""), "x").transactions())


def test_xml_that_is_not_camt_is_an_input_error():
    pain = b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.09'><CstmrCdtTrfInitn/></Document>"
    assert kind_of(pain) == "camt"  # XML: the camt reader says what it is not
    assert "not an ISO 20022 camt.052, camt.053 or camt.054 message" in _camt_error(pain)
    assert "pain.001.001.09" in _camt_error(pain)
    xhtml = b"<!DOCTYPE html><html xmlns='http://www.w3.org/1999/xhtml'><body>hi</body></html>"
    assert "DTD" in _camt_error(xhtml) or "not an ISO 20022" in _camt_error(xhtml)
    assert "not an ISO 20022" in _camt_error(b"<html><body>hi</body></html>")


def test_xml_bomb_and_external_entity_are_refused_without_expansion():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
            for i in range(1, 10)
        )
        + b']><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><x>&lol9;</x></Document>'
    )
    tracemalloc.start()
    message = _camt_error(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "DTD or entities" in message and peak < 5_000_000
    external = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>'
    )
    assert "DTD or entities" in _camt_error(external)


def test_truncated_camt_is_an_input_error_after_what_was_read():
    whole = (SAMPLES / "camt/camt053.v2.multi.statement.xml").read_bytes()
    cut = whole[: whole.index(b"<Ntry>", whole.index(b"254EUR")) + 40]
    message = _camt_error(cut)
    assert message.startswith("the file is not well-formed XML") and "cut off" in message


def test_mt940_and_bai2_garbage_are_input_errors():
    for data in (b":20:X\n:25:Y\n:60F:Cxx\n:61:zz\n", b":20:\n:21:\n", b"{1:F01BANK}{4:\n:20:X\n-}"):
        kind = kind_of(data)
        assert kind == "mt940"
        with pytest.raises(InputError):
            list(reader_for(kind, io.BytesIO(data), "x").transactions())
    for data in (
        b"01,a,b\n",
        b"01,B,C,240101,0000,1,,,2/\n02,x/\n",
        b"01,B,C,240101,0000,1,,,2/\n16,399,abc/\n",
    ):
        assert kind_of(data) == "bai2"
        with pytest.raises(InputError):
            list(reader_for("bai2", io.BytesIO(data), "x").transactions())


def test_xml_comments_before_the_root_are_read():
    data = _camt("camt.053.001.08", "Stmt", [("R1", "1.00", "E")]).replace(
        b"?>", b"?>\n<!-- one -->\n<!-- two -->"
    )
    assert kind_of(data) == "camt"
    reader, (tx,) = read(data)
    assert reader.format == "camt.053.001.08" and tx.amount == D("1.00")
    assert (
        reader.statements[0].account == "DE89 3704 0044 0532 0130 00".replace(" ", "")
        or reader.statements[0].account
    )


# -- a big camt.053 streams ------------------------------------------------------------------------------


class _Stream(io.RawIOBase):
    """A camt.053 of `count` entries made on the fly, so that the test holds neither file nor tree."""

    def __init__(self, count: int):
        self._parts = self._generate(count)
        self._buffer = b""

    @staticmethod
    def _generate(count: int) -> Iterator[bytes]:
        yield (
            b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'>"
            b"<BkToCstmrStmt><GrpHdr><MsgId>M</MsgId></GrpHdr><Stmt><Id>S</Id><Acct><Id><IBAN>DE89370400440532013000"
            b"</IBAN></Id></Acct>"
        )
        for i in range(count):
            yield (
                f"<Ntry><Amt Ccy='EUR'>{i % 1000}.{i % 100:02d}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd>"
                f"</Sts><BookgDt><Dt>2024-03-01</Dt></BookgDt><NtryDtls><TxDtls><Refs><AcctSvcrRef>R{i}</AcctSvcrRef>"
                f"</Refs><RltdPties><Dbtr><Pty><Nm>Payer {i}</Nm></Pty></Dbtr></RltdPties><RmtInf><Ustrd>Invoice {i} "
                f"{'x' * 200}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
            ).encode()
        yield b"</Stmt></BkToCstmrStmt></Document>"

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while len(self._buffer) < len(b):
            chunk = next(self._parts, None)
            if chunk is None:
                break
            self._buffer += chunk
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def test_a_50000_transaction_camt053_is_streamed_in_bounded_memory():
    reader = reader_for("camt", io.BufferedReader(_Stream(50_000)), "big.xml")
    tracemalloc.start()
    count, total, last = 0, D(0), ""
    for tx in reader.transactions():
        count += 1
        total += tx.amount
        assert tx.key != last
        last = tx.key
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 50_000
    assert total == sum(D(f"{i % 1000}.{i % 100:02d}") for i in range(50_000))
    # the whole tree would be well over 100 MB; what stays is the reader's 16-byte digests per key basis
    assert peak < 10_000_000, f"peak {peak} bytes: the tree is being kept"
