"""Concurrency, JSON $batch and the shared throttle gate, checked for behaviour (never for speed:
bench/throughput.py measures that)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from payments.ledger import Ledger, MemoryLedgerStore
from payments.model import check
from payments.posting import Pipeline
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from sandbox import Limits
from tests.support.clock import FakeClock
from tests.support.parallel import peak_in_flight, side_by_side
from tests.support.relay import make_client, make_pipeline


def payments(n: int, tag: str = "T"):
    return [
        check(
            {
                "customerNumber": ("10000", "20000")[i % 2],
                "documentNumber": f"{tag}-{i}",
                "amount": f"-{i + 1}.{i % 100:02d}",
            }
        ).payment
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("target", "item_url"),
    [
        ("businesscentral", f"companies({C})/customerPaymentJournals({J})/customerPayments"),
        ("graph", f"/financials/companies/{C}/customerPaymentJournals/{J}/customerPayments"),
    ],
)
def test_batch_posting_sends_each_payment_once_in_the_targets_batch_form(
    azure_env, sandbox, target, item_url
):
    size = 100 if target == "businesscentral" else 20
    azure_env(target, PAYMENTS_BATCH_SIZE=str(size))
    items = payments(2 * size + 5)
    outcomes = make_pipeline().post_all(C, J, items)
    assert [o.kind for o in outcomes] == ["created"] * len(items)
    # Outcomes come back in input order, each mapped to its own payment.
    assert [o.created["amount"] for o in outcomes] == [p.amount for p in items]
    assert sandbox.batch_count == 3
    batch_posts = [r for r in sandbox.requests if r.method == "POST"]
    assert len(batch_posts) == 3 and all(r.path.endswith("/$batch") for r in batch_posts)
    assert {r.path for r in sandbox.inner_requests} == {item_url}
    first = json.loads(batch_posts[0].body, parse_float=Decimal)["requests"][0]
    assert first["method"] == "POST" and first["headers"] == {"Content-Type": "application/json"}
    assert sorted(p["documentNumber"] for p in sandbox.payments()) == sorted(p.documentNumber for p in items)


def test_an_item_throttled_inside_a_batch_is_resent_after_its_own_retry_after(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="50")
    sandbox.inject_inner("429", times=2, retry_after="3")
    sleeps: list[float] = []
    outcomes = make_pipeline(sleeps).post_all(C, J, payments(50))
    assert [o.kind for o in outcomes] == ["created"] * 50
    assert sandbox.batch_count == 2  # the second batch carries only the two throttled items
    assert len(sandbox.inner_requests) == 52
    assert sleeps and max(sleeps) >= 3
    assert len(sandbox.payments()) == 50


def test_a_batch_dropped_after_commit_is_ambiguous_then_reconciled(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="10")
    relay = make_pipeline()
    sandbox.inject("drop-after")
    items = payments(10, "DROP")
    first = relay.post_all(C, J, items)
    assert [o.kind for o in first] == ["ambiguous"] * 10
    assert len(sandbox.payments()) == 10
    again = relay.post_all(C, J, items)
    assert [o.kind for o in again] == ["skipped"] * 10  # each found by documentNumber and adopted
    assert len(sandbox.payments()) == 10 and sandbox.batch_count == 1


def test_concurrency_stays_under_the_targets_limit_and_a_429_pauses_every_worker(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_MAX_CONCURRENCY="5")
    sandbox.latency = 0.05
    # The target processes fewer than the relay was told, and its queue is full (other callers).
    sandbox.limits = Limits(concurrent=3, queue=0)
    journals = [J] + [sandbox.add_journal(name=f"GATE{n}") for n in range(4)]
    relay = make_pipeline()
    results = side_by_side([(relay, j, payments(8, f"GATE-{k}")) for k, j in enumerate(journals)])
    assert [o.kind for r in results for o in r] == ["created"] * 40
    assert [len(sandbox.payments(journal_id=j)) for j in journals] == [8] * 5
    assert relay.client.gate.throttled == sandbox.throttled_count >= 1
    assert relay.client.gate.pauses >= 1
    # Not a storm: the relay lowers its own bound to what the target takes, probing upwards rarely.
    assert sandbox.throttled_count <= 12
    assert relay.client.in_flight.limit <= 4


def test_one_insert_at_a_time_per_journal_and_journals_in_parallel(azure_env, sandbox):
    """Business Central numbers a line by reading the journal's last line, then inserting after it, and
    Microsoft advises against parallel inserts under one parent: a worker sends one insert at a time
    into a journal, and inserts into different journals side by side."""
    azure_env("businesscentral", PAYMENTS_MAX_CONCURRENCY="5")
    sandbox.insert_gap = 0.02  # every insert overlapping another in its journal would collide
    other = sandbox.add_journal(name="BANK2")
    relay = make_pipeline()
    with peak_in_flight(sandbox) as peak:
        one, two = side_by_side([(relay, J, payments(10, "ONE")), (relay, other, payments(10, "TWO"))])
    assert [o.kind for o in one + two] == ["created"] * 20
    assert [len(sandbox.payments(journal_id=j)) for j in (J, other)] == [10, 10]
    assert sandbox.line_collisions == 0
    assert len([r for r in sandbox.requests if r.method == "POST"]) == 20  # each sent once
    assert peak[0] == 2  # the two journals at once, never two into one


def test_a_refused_batch_envelope_answers_every_item_and_releases_its_claims(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="10")
    sandbox.inject("401", times=2)  # refused even after a fresh token
    relay = make_pipeline()
    items = payments(10, "DENY")
    outcomes = relay.post_all(C, J, items)
    assert [o.kind for o in outcomes] == ["denied"] * 10
    assert sandbox.payments() == []
    assert list(relay.ledger.store.scan()) == []  # nothing was created: the claims are released
    assert [o.kind for o in relay.post_all(C, J, items)] == ["created"] * 10


def test_a_batch_keeps_one_connection_alive_and_reads_each_answer_whole(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="10", PAYMENTS_MAX_CONCURRENCY="1")
    relay = make_pipeline()
    before = sandbox.connections_accepted
    outcomes = relay.post_all(C, J, payments(50, "KEEP"))
    assert [o.kind for o in outcomes] == ["created"] * 50
    assert sandbox.batch_count == 5
    # Every answer was read to its end, so the one connection went back to the pool each time: one
    # connection for the five batches, one for the token (azure-identity has its own).
    assert sandbox.connections_accepted - before == 2
    assert sorted(str(o.created["amount"]) for o in outcomes) == sorted(
        str(p.amount) for p in payments(50, "KEEP")
    )


def test_a_line_number_taken_by_a_concurrent_insert_is_retried_not_rejected(azure_env, sandbox):
    """Business Central numbers a line by reading the last one, then inserting after it: two inserts at
    once into one journal (here from two workers, which do not share their journal turns) can get the
    same number, and the second fails on the key having created nothing. For a line the target
    numbers, that is a transient: sent again, never a rejection."""
    azure_env("businesscentral")
    sandbox.insert_gap = 0.3
    relays = [make_pipeline(), make_pipeline()]
    items = payments(2, "RACE")
    outcomes = [r[0] for r in side_by_side([(relays[0], J, items[:1]), (relays[1], J, items[1:])])]
    assert [o.kind for o in outcomes] == ["created", "created"]
    assert sorted(p["lineNumber"] for p in sandbox.payments()) == [10000, 20000]
    assert sandbox.line_collisions == 1
    posted = [r for r in sandbox.requests if r.method == "POST"]
    assert len(posted) == 3  # the collision, then its retry
    for relay in relays:
        assert list(relay.ledger.store.scan({"rejected", "ambiguous", "claimed"})) == []


def test_a_line_number_the_caller_chose_that_exists_is_a_rejection(azure_env, sandbox):
    azure_env("businesscentral")
    relay = make_pipeline()
    first = check(
        {"customerNumber": "10000", "amount": "-1.00", "lineNumber": 10000, "documentNumber": "L-1"}
    ).payment
    again = check(
        {"customerNumber": "10000", "amount": "-2.00", "lineNumber": 10000, "documentNumber": "L-2"}
    ).payment
    assert [o.kind for o in relay.post_all(C, J, [first])] == ["created"]
    [outcome] = relay.post_all(C, J, [again])
    assert outcome.kind == "rejected" and outcome.error.code == "Internal_EntityWithSameKeyExists"
    assert len([r for r in sandbox.requests if r.method == "POST"]) == 2  # not retried: the caller's number


def test_one_refused_payment_in_a_batch_does_not_leave_the_others_unanswered(azure_env, sandbox):
    """Business Central stops a $batch at its first failed operation unless asked
    `Prefer: odata.continue-on-error`: the relay asks, so a refused payment is the only one refused."""
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="10", PAYMENTS_MAX_CONCURRENCY="1")
    items = payments(5, "MIX")
    items[1] = check({"customerNumber": "99999", "documentNumber": "MIX-X", "amount": "-1.00"}).payment
    outcomes = make_pipeline().post_all(C, J, items)
    assert [o.kind for o in outcomes] == ["created", "rejected", "created", "created", "created"]
    [batch] = [r for r in sandbox.requests if r.path.endswith("/$batch")]
    assert batch.headers["Prefer"] == "odata.continue-on-error"
    assert len(sandbox.payments()) == 4


def test_a_payment_whose_claim_runs_out_while_its_journal_is_busy_is_not_sent(azure_env, sandbox):
    """A claim's lease end is the last moment its request may leave (another worker reconciles from
    then on): a payment still waiting for its journal's turn by then is released unsent, not sent late."""
    azure_env("businesscentral", PAYMENTS_MAX_CONCURRENCY="2")
    sandbox.latency = 0.6  # the first insert holds the journal this long
    relay = Pipeline(make_client(), Ledger(MemoryLedgerStore(), lease=timedelta(seconds=0.3)))
    outcomes = relay.post_all(C, J, payments(2, "LEASE"))
    # Two workers: whichever had the journal first created its payment, the other waited past its lease.
    created, late = sorted(outcomes, key=lambda o: o.kind)
    assert (created.kind, late.kind) == ("created", "unavailable")
    assert "claim ran out" in late.error.message
    assert [p["documentNumber"] for p in sandbox.payments()] == [created.created["documentNumber"]]
    assert len([r for r in sandbox.requests if r.method == "POST"]) == 1
    assert list(relay.ledger.store.scan({"claimed", "ambiguous"})) == []  # released: free to send again
    sandbox.latency = 0.0
    again = relay.post_all(C, J, payments(2, "LEASE"))
    assert sorted(o.kind for o in again) == ["created", "skipped"]
    assert len(sandbox.payments()) == 2


def test_a_batch_cut_off_by_the_operation_timeout_is_ambiguous_then_each_payment_lands_once(
    azure_env, sandbox
):
    """Business Central answers 408 at its operation timeout and cancels the session: the operations
    done by then stay, the rest never happen. The relay cannot tell which, so every payment in the
    batch is ambiguous; a resend adopts the ones that exist, leaves the others alone while the first
    request may still run at the target, and posts them once it cannot."""
    azure_env("businesscentral", PAYMENTS_BATCH_SIZE="10")
    sandbox.limits = Limits(operation_timeout=0.25)
    sandbox.latency = 0.1  # two operations finish in time, the third would not
    clock = FakeClock()
    relay = Pipeline(make_client(), Ledger(MemoryLedgerStore(), clock=clock))
    items = payments(5, "CUT")
    assert [o.kind for o in relay.post_all(C, J, items)] == ["ambiguous"] * 5
    assert [p["documentNumber"] for p in sandbox.payments()] == ["CUT-0", "CUT-1"]
    sandbox.limits = Limits()
    sandbox.latency = 0.0
    soon = relay.post_all(C, J, items)
    assert [o.kind for o in soon] == ["skipped", "skipped", "ambiguous", "ambiguous", "ambiguous"]
    assert len(sandbox.payments()) == 2  # not sent again: the first request may still be queued
    clock.advance(timedelta(minutes=16))  # past the claim's lease and the 10-minute settle window
    later = relay.post_all(C, J, items)
    assert [o.kind for o in later] == ["skipped", "skipped", "created", "created", "created"]
    assert sorted(p["documentNumber"] for p in sandbox.payments()) == [f"CUT-{i}" for i in range(5)]


def test_the_relay_paces_itself_under_the_targets_rate_window_instead_of_provoking_429s(azure_env, sandbox):
    """Business Central answers 429 beyond 6,000 requests in a sliding five-minute window per identity
    (here 4 per 0.5 s, told to both): the relay waits for the window instead."""
    sandbox.limits = Limits(rate=4, window=0.5)
    azure_env("businesscentral", PAYMENTS_TARGET_RATE_REQUESTS="4", PAYMENTS_TARGET_RATE_WINDOW_SECONDS="0.5")
    outcomes = make_pipeline().post_all(C, J, payments(10, "RATE"))
    assert [o.kind for o in outcomes] == ["created"] * 10
    assert sandbox.throttled_count == 0
    assert len([r for r in sandbox.requests if r.method == "POST"]) == 10
