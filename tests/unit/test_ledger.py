"""The ledger protocol's own rules, on the in-memory store with a controllable clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from payments.ledger import Ledger, MemoryLedgerStore, Scope, canonical, derived_key
from payments.model import check
from payments.outbound import odata_filter
from tests.support.clock import FakeClock

SCOPE = Scope("5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01", "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02")


def payment(**extra):
    return check({"customerNumber": "10000", "amount": "-10.10", **extra}).payment


def nothing_found(_natural):
    return []


def test_equal_payments_have_equal_keys_whatever_the_spelling():
    a = payment(documentNumber="inv-1").payload()
    b = payment(documentNumber="INV-1", amount="-10.1").payload()
    assert canonical(a) == canonical(b)
    assert derived_key(SCOPE, a) == derived_key(SCOPE, b)
    assert derived_key(SCOPE, a) != derived_key(Scope(SCOPE.company_id, "other"), a)
    assert derived_key(SCOPE, a) != derived_key(SCOPE, payment(documentNumber="INV-2").payload())


def test_keys_are_forgotten_after_the_retention_period_and_purged():
    clock = FakeClock()
    ledger = Ledger(MemoryLedgerStore(), retention=timedelta(days=30), clock=clock)
    key = derived_key(SCOPE, payment().payload())
    first = ledger.claim(SCOPE, key, payment(), nothing_found)
    ledger.record_posted(first.entry, {"id": "p-1"}, status=201)
    clock.advance(timedelta(days=29))
    assert ledger.claim(SCOPE, key, payment(), nothing_found).action == "done"
    clock.advance(timedelta(days=2))
    assert ledger.purge() == 1
    assert ledger.claim(SCOPE, key, payment(), nothing_found).action == "post"


def test_a_live_claim_is_in_flight_and_a_stale_one_is_reconciled():
    clock = FakeClock()
    ledger = Ledger(MemoryLedgerStore(), lease=timedelta(minutes=5), clock=clock)
    p = payment(documentNumber="D-1")
    key = derived_key(SCOPE, p.payload())
    assert ledger.claim(SCOPE, key, p, nothing_found).action == "post"
    assert ledger.claim(SCOPE, key, p, nothing_found).action == "in-flight"
    clock.advance(timedelta(minutes=6))
    searched = []
    decision = ledger.claim(SCOPE, key, p, lambda natural: searched.append(natural) or [{"id": "found"}])
    assert decision.action == "done" and decision.found == {"id": "found"}
    assert searched == [{"documentNumber": "D-1", "customerNumber": "10000", "amount": "-10.10"}]
    assert [e.state for e in ledger.store.scan()] == ["posted"]


def test_two_matches_at_the_target_leave_it_ambiguous():
    clock = FakeClock()
    ledger = Ledger(MemoryLedgerStore(), lease=timedelta(seconds=1), clock=clock)
    p = payment(documentNumber="D-2")
    key = derived_key(SCOPE, p.payload())
    ledger.claim(SCOPE, key, p, nothing_found)
    clock.advance(timedelta(seconds=2))
    decision = ledger.claim(SCOPE, key, p, lambda _n: [{"id": "a"}, {"id": "b"}])
    assert decision.action == "ambiguous" and "2 payments at the target match it" in decision.reason
    assert [e.state for e in ledger.attention()] == ["ambiguous"]


def test_resolved_as_not_posted_is_posted_on_the_next_send():
    clock = FakeClock()
    ledger = Ledger(MemoryLedgerStore(), lease=timedelta(seconds=1), clock=clock)
    p = payment()
    key = derived_key(SCOPE, p.payload())
    entry = ledger.claim(SCOPE, key, p, nothing_found).entry
    ledger.record_ambiguous(entry, client_request_id="r", message="timed out")
    assert ledger.claim(SCOPE, key, p, nothing_found).action == "ambiguous"  # no natural key
    ledger.resolve(SCOPE, key, target_id=None)
    assert ledger.claim(SCOPE, key, p, nothing_found).action == "post"


def test_odata_filter_for_reconciliation():
    natural = {"documentNumber": "o'neil-1", "customerNumber": "10000", "amount": "-10.10"}
    assert (
        odata_filter(natural)
        == "documentNumber eq 'O''NEIL-1' and customerNumber eq '10000' and amount eq -10.10"
    )


def test_not_found_counts_as_absent_only_once_the_first_request_cannot_still_run():
    """Business Central queues a request up to 8 minutes and ends it at 10 (operational limits): a
    payment not found after an ambiguous outcome may still be on its way. Resending does not move the
    moment it becomes safe: only a claim that may send sets it."""
    clock = FakeClock()
    ledger = Ledger(
        MemoryLedgerStore(), lease=timedelta(minutes=1), settle=timedelta(minutes=10), clock=clock
    )
    p = payment(documentNumber="D-9")
    key = derived_key(SCOPE, p.payload())
    entry = ledger.claim(SCOPE, key, p, nothing_found).entry  # may send until 12:01
    ledger.record_ambiguous(entry, client_request_id="r", message="timed out")
    for minutes in (2, 5, 9):
        clock.advance(timedelta(minutes=minutes) - timedelta(seconds=clock.elapsed))
        decision = ledger.claim(SCOPE, key, p, nothing_found, find_posted=nothing_found)
        assert decision.action == "ambiguous"
        assert "may still be queued or running" in decision.reason
        assert decision.reason.endswith("send it again after 2026-11-24 12:11:00 UTC")
    clock.advance(timedelta(minutes=11, seconds=1) - timedelta(seconds=clock.elapsed))
    decision = ledger.claim(SCOPE, key, p, nothing_found, find_posted=nothing_found)
    assert decision.action == "post"
    assert decision.entry.sent_by == FakeClock.START + timedelta(
        minutes=12, seconds=1
    )  # this claim's lease end


def left_ambiguous(**natural: str):
    """A ledger (nothing left to wait for at the target) holding one payment whose outcome was ambiguous."""
    ledger = Ledger(MemoryLedgerStore(), lease=timedelta(seconds=1), settle=timedelta(0), clock=FakeClock())
    p = payment(**natural)
    key = derived_key(SCOPE, p.payload())
    entry = ledger.claim(SCOPE, key, p, nothing_found).entry
    ledger.record_ambiguous(entry, client_request_id="r", message="timed out")
    return ledger, p, key


def test_a_payment_found_among_posted_entries_is_adopted_not_posted_again():
    """Posting a journal deletes its lines (Gen. Jnl.-Post Batch): the payment is then found among the
    posted G/L entries by its documentNumber."""
    ledger, p, key = left_ambiguous(documentNumber="D-7")
    posted = [{"entryNumber": 41, "documentNumber": "D-7"}, {"entryNumber": 42, "documentNumber": "D-7"}]
    decision = ledger.claim(SCOPE, key, p, nothing_found, find_posted=lambda natural: posted)
    assert decision.action == "done"
    assert decision.found == {"documentNumber": "D-7", "amount": Decimal("-10.10"), "postedEntries": [41, 42]}
    assert [e.state for e in ledger.store.scan()] == ["posted"]


def test_missing_from_the_journal_without_a_document_number_stays_ambiguous():
    """generalLedgerEntries has no externalDocumentNumber: without a documentNumber a posted payment
    cannot be found, so "not in the journal" proves nothing."""
    ledger, p, key = left_ambiguous(externalDocumentNumber="BANK-1")
    decision = ledger.claim(SCOPE, key, p, nothing_found, find_posted=nothing_found)
    assert decision.action == "ambiguous"
    assert "only a documentNumber can be found among posted entries" in decision.reason
