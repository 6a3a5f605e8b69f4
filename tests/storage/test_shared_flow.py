"""Limits every instance keeps together (issue 13), through blob leases in Azurite: two workers, each
with its own in-process limits, never exceed the identity's shared slots at the target, and never
insert into one journal at once."""

from __future__ import annotations

from datetime import timedelta

from payments.credentials import target_credential
from payments.ledger import Ledger, MemoryLedgerStore
from payments.model import check
from payments.outbound import TargetClient
from payments.posting import Pipeline
from payments.runtime import make_shared_flow
from payments.settings import load_settings
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from sandbox import Limits
from tests.support.parallel import peak_in_flight, side_by_side
from tests.support.webhook import answer_through, unreachable_storage


def worker(lease: timedelta = timedelta(minutes=5)) -> Pipeline:
    """One instance of the relay: its own client, its own in-process limits, the shared ones in storage."""
    settings = load_settings()
    client = TargetClient(settings, target_credential(settings), shared=make_shared_flow(settings))
    return Pipeline(client, Ledger(MemoryLedgerStore(), lease=lease))


def payments(n: int, tag: str):
    return [
        check({"customerNumber": "10000", "documentNumber": f"{tag}-{i}", "amount": f"-{i + 1}.00"}).payment
        for i in range(n)
    ]


def test_two_workers_together_stay_within_the_identitys_shared_slots(drop, sandbox, azure_env):
    azure_env(
        "businesscentral", **drop.settings, PAYMENTS_MAX_CONCURRENCY="5", PAYMENTS_SHARED_CONCURRENCY="3"
    )
    sandbox.limits = Limits(concurrent=3, queue=0)  # beyond 3 at once: 429
    sandbox.latency = 0.05
    journals = [J] + [sandbox.add_journal(name=f"SHARE{n}") for n in range(5)]
    one, two = worker(), worker()
    with peak_in_flight(sandbox) as peak:
        results = side_by_side(
            [(one if k % 2 else two, j, payments(6, f"S{k}")) for k, j in enumerate(journals)]
        )
    assert [o.kind for r in results for o in r] == ["created"] * 36
    assert sandbox.throttled_count == 0
    assert peak[0] <= 3
    assert one.client.shared.waits + two.client.shared.waits > 0  # the slots were contended, and held


def test_two_workers_never_insert_into_one_journal_at_once(drop, sandbox, azure_env):
    azure_env("businesscentral", **drop.settings, PAYMENTS_SHARED_CONCURRENCY="5")
    sandbox.insert_gap = 0.03  # every overlapping insert into the journal would collide
    one, two = worker(), worker()
    results = side_by_side([(one, J, payments(8, "A")), (two, J, payments(8, "B"))])
    assert [o.kind for r in results for o in r] == ["created"] * 16
    assert sandbox.line_collisions == 0
    assert len([r for r in sandbox.requests if r.method == "POST"]) == 16  # each sent once


def test_a_payment_whose_claim_runs_out_while_another_worker_holds_the_journal_is_not_sent(
    drop, sandbox, azure_env
):
    azure_env("businesscentral", **drop.settings, PAYMENTS_SHARED_CONCURRENCY="5")
    holder = make_shared_flow(load_settings())
    late = worker(lease=timedelta(seconds=0.5))
    with holder.journal(C, J, until=None) as ours:
        assert ours
        [outcome] = late.post_all(C, J, payments(1, "LATE"))
    assert outcome.kind == "unavailable" and "journal was busy" in outcome.error.message
    assert sandbox.requests == [r for r in sandbox.requests if r.method != "POST"]  # nothing sent


def test_two_workers_together_keep_the_targets_rate_window(drop, sandbox, azure_env):
    """Business Central takes 6,000 requests per five minutes per identity, whatever the number of
    callers (here 6 per second): two workers, each able to keep the window alone, keep it together."""
    azure_env(
        "businesscentral",
        **drop.settings,
        PAYMENTS_SHARED_CONCURRENCY="5",
        PAYMENTS_TARGET_RATE_REQUESTS="6",
        PAYMENTS_TARGET_RATE_WINDOW_SECONDS="1",
    )
    sandbox.limits = Limits(rate=6, window=1.0)
    other = sandbox.add_journal(name="RATE2")
    one, two = worker(), worker()
    results = side_by_side([(one, J, payments(8, "RA")), (two, other, payments(8, "RB"))])
    assert [o.kind for r in results for o in r] == ["created"] * 16
    assert sandbox.throttled_count == 0


def test_without_its_storage_a_worker_sends_nothing_and_says_so(azure_env, sandbox):
    """The shared limits live in the storage account: when it cannot be reached the relay cannot keep
    them, so it sends nothing and the caller gets a 503 to retry, never a 500 or the storage error."""
    from azure.storage.blob import ContainerClient

    from payments.outbound.shared import SharedFlow

    azure_env("businesscentral")
    container = ContainerClient.from_connection_string(unreachable_storage(), "payments-flow", retry_total=0)
    settings = load_settings()
    client = TargetClient(settings, target_credential(settings), shared=SharedFlow(container, 5))
    answer, body, raw = answer_through(Pipeline(client, Ledger(MemoryLedgerStore())))
    assert answer.status == 503 and answer.headers["Retry-After"] == "30"
    assert (
        "the relay's storage (which keeps the limits shared by its instances) is unavailable"
        in body["detail"]
    )
    assert "Error" not in raw and "127.0.0.1" not in raw
    assert [r for r in sandbox.requests if r.method == "POST"] == []


def test_a_caller_waiting_for_its_answer_asks_for_a_journals_turn_more_often_than_batches(azurite):
    """A blob lease gives no notice of its release: waiters ask again, backing off. The priority queue's
    poster (a caller waits for its answer) backs off to 0.1 s, batches to 0.5 s, so when the turn is
    given back the single payment most likely takes it first (issue 25). Asked of real leases in Azurite
    while another instance holds the journal; the waiters' clocks are their own."""
    import uuid

    from azure.storage.blob import ContainerClient

    from payments.outbound.shared import SharedFlow

    container = ContainerClient.from_connection_string(
        azurite.connection_string, f"flow-{uuid.uuid4().hex[:8]}"
    )
    holder = SharedFlow(container, 5)
    asked: dict[bool, list[float]] = {}
    with holder.journal(C, J, until=None) as held:
        assert held
        for eager in (False, True):
            now = [0.0]
            waits = asked.setdefault(eager, [])

            def sleep(seconds: float, waits=waits, now=now) -> None:
                waits.append(seconds)
                now[0] += seconds

            waiter = SharedFlow(container, 5, sleep=sleep, clock=lambda now=now: now[0])
            with waiter.journal(C, J, until=3.0, eager=eager) as ours:
                assert ours is False  # the holder kept it throughout
    assert max(asked[False]) == 0.5 and max(asked[True]) == 0.1
    assert len(asked[True]) > 2 * len(asked[False])  # asked that much more often in the same 3 s


def test_a_journals_turn_goes_as_an_identity_with_a_slot_free_across_instances(drop, sandbox, azure_env):
    """Which identity has room is known to each instance for its own requests only: another instance
    holds all five of identity A's slots. This instance's turns, whichever identity it would have chosen
    first, go as B, which has slots free, rather than wait for A's."""
    import threading
    import time
    from contextlib import ExitStack

    a, b = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
    azure_env(
        "businesscentral",
        **drop.settings,
        PAYMENTS_SHARED_CONCURRENCY="5",
        PAYMENTS_TARGET_CLIENT_IDS=f"{a},{b}",
    )
    elsewhere = make_shared_flow(load_settings())
    with ExitStack() as held:
        for _ in range(5):
            held.enter_context(elsewhere.slot(a))
        release = held.pop_all()
        freed = threading.Timer(20, release.close)  # should it come to waiting for A
        freed.start()
        one = worker()
        started = time.monotonic()
        for payment in payments(4, "ROOM"):  # four turns: round-robin puts A first in some
            with one.client.journal_turn(C, J, None) as ours:
                assert ours
                one.client.create_payment(C, J, payment.payload())
        elapsed = time.monotonic() - started
        freed.cancel()
        release.close()
    assert sandbox.requests_by_identity[a] == 0 and sandbox.requests_by_identity[b] == 4
    assert elapsed < 10
    assert len(sandbox.payments()) == 4
