"""Queue-levelled posting: the webhook and the file drop accept and queue; the queue function posts.

Everything runs for real: Azurite's queue, table and blobs, the sandbox over HTTP, and the registered
functions called as the Python worker calls them (devtools.queue_host plays the host's listener)."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from decimal import Decimal

import pytest

from devtools.invocation import context
from payments.cli import main as cli
from payments.ledger import TableLedgerStore
from payments.model import check
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import configure_storage, deliver, report_of, upload
from tests.support.host import FUNCTIONS
from tests.support.webhook import call, get_status, pay, posts
from tests.support.work import queue_host, queue_settings


@pytest.fixture
def queued(azure_env, azurite, sandbox):
    return configure_storage(azure_env, azurite, **queue_settings())


def wait_until(condition, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        threading.Event().wait(0.05)


def status_of(batch_url: str):
    return get_status(batch_url)


def entries(env) -> list:
    return list(TableLedgerStore(env.table).scan())


def test_a_small_call_is_answered_201_once_the_queue_function_posted_it(queued, sandbox):
    with queue_host(queued):
        resp, body = call(pay(documentNumber="Q-1"))
    assert resp.status_code == 201, body
    [stored] = sandbox.payments()
    assert body["id"] == stored["id"] and body["documentNumber"] == "Q-1"
    assert resp.headers["client-request-id"] == posts(sandbox)[0].headers["client-request-id"]
    [entry] = entries(queued)
    assert entry.state == "posted" and entry.target_id == stored["id"]


def test_respond_async_is_answered_202_and_its_status_ends_as_the_synchronous_answer_would(queued, sandbox):
    batch = [pay(documentNumber="RA-1"), pay(number="20000", amount="-7.00", documentNumber="RA-2")]
    resp, body = call(batch, headers={"Prefer": "respond-async"})
    assert resp.status_code == 202, body
    location = resp.headers["Location"]
    assert location == f"/api/batches/{body['id']}" and body["statusUrl"] == location
    assert resp.headers["Preference-Applied"] == "respond-async"
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["summary"] == {"total": 2, "accepted": 2}
    assert sandbox.payments() == []  # nothing sent by the webhook itself

    running, report = status_of(location)
    assert running.status_code == 200 and report["status"] == "running"
    assert [r["outcome"] for r in report["results"]] == ["accepted", "accepted"]
    assert "Retry-After" in running.headers

    with queue_host(queued) as host:
        host.drain()
    done, report = status_of(location)
    assert done.status_code == 200 and report["status"] == "completed"
    assert "Retry-After" not in done.headers
    stored = {p["documentNumber"]: p for p in sandbox.payments()}
    assert report["summary"] == {"total": 2, "created": 2}
    for result, number in zip(report["results"], ("RA-1", "RA-2"), strict=True):
        assert result["status"] == 201 and result["outcome"] == "created"
        assert result["payment"]["id"] == stored[number]["id"]
        assert result["clientRequestId"]
    assert len(posts(sandbox)) == 2  # one request each (no $batch configured)


def test_an_unknown_batch_id_is_a_404_problem(queued, sandbox):
    resp, body = status_of("/api/batches/0123456789abcdef0123456789abcdef")
    assert resp.status_code == 404 and body["type"].endswith("batch-not-found")
    resp, body = status_of("/api/batches/..%2Fsecret")
    assert resp.status_code == 404


def test_a_large_batch_is_answered_202_at_once_and_every_payment_lands_once(azure_env, azurite, sandbox):
    env = configure_storage(
        azure_env, azurite, **queue_settings(PAYMENTS_BATCH_SIZE="100", PAYMENTS_MAX_BODY_BYTES="4194304")
    )
    batch = [pay(number="10000", amount=f"-{i + 1}.25", documentNumber=f"BIG-{i}") for i in range(5000)]
    resp, body = call(batch)
    assert resp.status_code == 202, body
    assert body["summary"] == {"total": 5000, "accepted": 5000}
    with queue_host(env, concurrency=2) as host:
        host.drain(timeout=120)
    _, report = status_of(resp.headers["Location"])
    assert report["status"] == "completed" and report["summary"] == {"total": 5000, "created": 5000}
    stored = sandbox.payments()
    assert sorted(p["documentNumber"] for p in stored) == sorted(f"BIG-{i}" for i in range(5000))
    assert all(p["amount"] == Decimal(f"-{int(p['documentNumber'][4:]) + 1}.25") for p in stored)
    assert len(posts(sandbox)) == 50  # fifty $batch requests of 100


def test_a_429_puts_the_payments_back_on_the_queue_with_its_delay_instead_of_retrying_in_place(
    azure_env, azurite, sandbox
):
    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_ANSWER_WITHIN_SECONDS="0.3"))
    sandbox.inject("429", times=1, retry_after="2")
    with queue_host(env) as host:
        started = time.monotonic()
        resp, body = call(pay(documentNumber="THR-1"))
        assert resp.status_code == 202, body  # not posted within the answer budget
        wait_until(lambda: bool(sandbox.payments()), timeout=20)
        landed = time.monotonic() - started
        host.drain()
    assert landed >= 2.0  # the Retry-After was kept, as a delay on the queue
    assert host.invocations == 2  # delivered, put back, delivered again: no retry inside one invocation
    assert [r.method for r in posts(sandbox)] == ["POST", "POST"]
    _, report = status_of(resp.headers["Location"])
    assert report["results"][0]["outcome"] == "created"
    assert report["results"][0]["payment"]["id"] == sandbox.payments()[0]["id"]


def test_a_repeat_of_a_queued_payment_joins_it_and_is_posted_once(queued, sandbox):
    first, _ = call(pay(documentNumber="JOIN-1"), headers={"Prefer": "respond-async"})
    assert first.status_code == 202
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(call, pay(documentNumber="JOIN-1"))  # the same payment, still queued
        with pytest.raises(FuturesTimeout):
            waiting.result(timeout=0.5)  # still waiting for the queued payment's outcome
        with queue_host(queued):
            again, created = waiting.result(timeout=30)
    assert again.status_code == 201, created
    [stored] = sandbox.payments()
    assert created["id"] == stored["id"]
    assert len(posts(sandbox)) == 1
    _, report = status_of(first.headers["Location"])
    assert report["results"][0]["payment"]["id"] == stored["id"]


def backdate(env, key: str, seconds: float) -> None:
    """Storage as it would be `seconds` later for one entry: its last change moved back (test setup)."""
    from datetime import timedelta

    [entity] = [e for e in env.table.list_entities() if e["RowKey"] == key]
    entity["UpdatedAt"] = entity["UpdatedAt"] - timedelta(seconds=seconds)
    env.table.update_entity(entity)


def test_an_accepted_payment_whose_message_was_lost_is_queued_again_by_the_timer(azure_env, azurite, sandbox):
    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_ANSWER_WITHIN_SECONDS="0.2"))
    resp, body = call(pay(documentNumber="LOST-1"))  # accepted, not posted within the budget: 202
    assert resp.status_code == 202
    host = queue_host(env)
    host.queue.clear_messages()  # the message is gone (expired after 7 days, or deleted by hand)
    [entry] = entries(env)
    assert entry.state == "queued" and entry.payload is not None

    out = io.StringIO()
    assert cli(["queue", "status"], out) == 0  # not stranded yet: younger than the re-drive threshold
    assert "0 stranded payments" in out.getvalue()
    backdate(env, entry.key, 901)
    out = io.StringIO()
    assert cli(["queue", "status"], out) == 1
    assert f"{entry.key}  {C}_{J}  batch {body['id']}: accepted, no message seen" in out.getvalue()

    FUNCTIONS["work_redrive"].get_user_function()(None, context=context("work_redrive"))
    with host:
        host.drain()
    [stored] = sandbox.payments()
    assert stored["documentNumber"] == "LOST-1"
    _, report = status_of(resp.headers["Location"])
    assert report["status"] == "completed" and report["results"][0]["payment"]["id"] == stored["id"]
    out = io.StringIO()
    assert cli(["queue", "status"], out) == 0 and "0 stranded payments" in out.getvalue()


def test_a_deferred_batch_whose_intake_message_was_lost_is_taken_in_by_the_redrive(queued, sandbox):
    from datetime import timedelta

    from payments import runtime
    from payments.work.redrive import redrive_intakes

    resp, body = call(
        [pay(documentNumber="DEF-1"), pay(documentNumber="DEF-2")], headers={"Prefer": "respond-async"}
    )
    assert resp.status_code == 202 and body["summary"] == {"total": 2, "accepted": 2}
    host = queue_host(queued)
    host.queue.clear_messages()
    assert entries(queued) == []  # nothing in the ledger yet: the batch waits, kept, for its intake
    queued_pipeline = runtime.pipeline()
    # The timer's threshold (PAYMENTS_REDRIVE_AFTER_SECONDS, at least 60 s) is the only difference.
    assert redrive_intakes(queued_pipeline.batches, queued_pipeline.queue, timedelta(0)) == 1
    with host:
        host.drain()
    assert sorted(p["documentNumber"] for p in sandbox.payments()) == ["DEF-1", "DEF-2"]
    _, report = status_of(resp.headers["Location"])
    assert report["status"] == "completed" and report["summary"] == {"total": 2, "created": 2}
    assert redrive_intakes(queued_pipeline.batches, queued_pipeline.queue, timedelta(0)) == 0


def test_a_file_drop_through_the_queue_reports_what_the_queue_function_posted(azure_env, azurite, sandbox):
    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_BATCH_SIZE="100"))
    rows = "\n".join(f"10000,-{i}.10,FQ-{i}" for i in range(1, 251))
    upload(env, f"{C}/{J}/queued.csv", "customerNumber,amount,documentNumber\n" + rows + "\n")
    with queue_host(env):
        deliver(env, f"{C}/{J}/queued.csv")
    report = report_of(env, f"{C}/{J}/queued.csv")
    assert report["totals"] == {"records": 250, "created": 250}
    stored = sandbox.payments()
    assert len(stored) == 250 and len({p["documentNumber"] for p in stored}) == 250
    by_number = {p["documentNumber"]: p["id"] for p in stored}
    assert sorted(r["id"] for r in report["records"]) == sorted(by_number.values())
    assert len(posts(sandbox)) == 3  # 100 + 100 + 50, each a $batch sent by the queue function


def test_a_single_payment_is_answered_at_once_by_the_priority_queue_behind_a_queued_backlog(
    azure_env, azurite, sandbox
):
    """Issue 25: a batch waits on the work queue (no worker takes it in this test); a single payment a
    caller waits for goes on the priority queue, which its own function takes at once: answered 201,
    while the batch is still queued."""
    from tests.support.work import priority_host

    env = configure_storage(
        azure_env, azurite, **queue_settings(PAYMENTS_PRIORITY_QUEUE=f"prio-{time.monotonic_ns()}")
    )
    backlog = [pay(documentNumber=f"BACK-{i}") for i in range(20)]
    resp, _ = call(backlog, headers={"Prefer": "respond-async"})
    assert resp.status_code == 202
    with priority_host(env):
        resp, body = call(pay(documentNumber="SINGLE-1"))
    assert resp.status_code == 201, body
    assert [p["documentNumber"] for p in sandbox.payments()] == ["SINGLE-1"]  # the backlog still waits
    with queue_host(env) as host:
        host.drain()
    assert len(sandbox.payments()) == 21


def test_a_call_of_more_payments_than_priority_at_most_stays_on_the_work_queue(azure_env, azurite, sandbox):
    from tests.support.work import priority_host

    env = configure_storage(
        azure_env,
        azurite,
        **queue_settings(
            PAYMENTS_PRIORITY_QUEUE=f"prio-{time.monotonic_ns()}", PAYMENTS_ANSWER_WITHIN_SECONDS="1"
        ),
    )
    with priority_host(env):
        resp, body = call([pay(documentNumber=f"MANY-{i}") for i in range(11)])
    assert resp.status_code == 202 and sandbox.payments() == []  # not taken by the priority function
    assert body["summary"] == {"total": 11, "accepted": 11}


def _open_rows(env) -> list[str]:
    return [
        e["RowKey"].split("|", 1)[1]
        for e in env.table.query_entities("PartitionKey ge '~open|' and PartitionKey lt '~open}'")
    ]


def test_the_re_drive_reads_the_index_of_open_entries_not_the_whole_ledger(azure_env, azurite, sandbox):
    """Issue 25: an entry accepted for the queue has an index row from before it is written until it is
    settled; the re-drive reads that index, so its cost follows open work, not the ledger's history."""
    from payments import runtime

    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_ANSWER_WITHIN_SECONDS="0.2"))
    assert runtime.redrive_work() == 0  # an empty ledger: indexed from the start
    with queue_host(env):
        resp, _ = call([pay(documentNumber=f"DONE-{i}") for i in range(5)])
    assert resp.status_code in (201, 202) and _open_rows(env) == []  # settled: out of the index
    resp, _ = call(pay(documentNumber="LOST-2"))
    host = queue_host(env)
    host.queue.clear_messages()  # its message is gone
    [lost] = [e for e in entries(env) if e.state == "queued"]
    assert _open_rows(env) == [lost.key]
    # An open entry the index does not hold is not seen: the re-drive reads the index, not the ledger.
    ghost = {k: v for k, v in env.table.get_entity(lost.scope.partition, lost.key).items()}
    ghost["RowKey"] = "p-" + "0" * 64
    env.table.create_entity(ghost)
    backdate(env, lost.key, 901)
    backdate(env, ghost["RowKey"], 901)
    assert runtime.redrive_work() == 1  # LOST-2 only
    with host:
        host.drain()
    assert [p["documentNumber"] for p in sandbox.payments()][-1] == "LOST-2" and _open_rows(env) == []


def test_a_ledger_from_before_the_index_is_scanned_once_and_its_open_entries_indexed(
    azure_env, azurite, sandbox
):
    from payments import runtime

    env = configure_storage(azure_env, azurite, **queue_settings(PAYMENTS_ANSWER_WITHIN_SECONDS="0.2"))
    resp, _ = call(pay(documentNumber="OLD-1"))
    assert resp.status_code == 202
    queue_host(env).queue.clear_messages()
    [old] = entries(env)
    for row in env.table.query_entities("PartitionKey ge '~' and PartitionKey lt '~~'"):
        env.table.delete_entity(row)  # as a ledger written before the index (no rows, no mark)
    backdate(env, old.key, 901)
    assert runtime.redrive_work() == 1  # found by the one scan
    assert _open_rows(env) == [old.key]  # and indexed by it
    marks = [e["RowKey"] for e in env.table.query_entities("PartitionKey eq '~ledger'")]
    assert "open-indexed" in marks


def test_a_deferred_batch_whose_intake_meets_a_ledger_failure_is_taken_in_again_and_posted(
    queued, sandbox, monkeypatch
):
    """A batch answered 202 was promised "it will be posted": when the ledger cannot be written while
    its intake runs, the intake fails (the host delivers it again; the batch stays kept with its
    payloads), rather than turning the payments into "not accepted, send again" nobody asked for."""
    import azure.functions as func
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

    from devtools.azurite import Azurite
    from payments import runtime
    from payments.errors import LedgerUnavailable

    resp, body = call(
        [pay(documentNumber="INT-1"), pay(documentNumber="INT-2")], headers={"Prefer": "respond-async"}
    )
    assert resp.status_code == 202 and body["summary"] == {"total": 2, "accepted": 2}
    azurite = queued.azurite
    queue = QueueClient.from_connection_string(
        azurite.connection_string,
        queued.settings["PAYMENTS_WORK_QUEUE"],
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    [message] = queue.receive_messages(max_messages=1, visibility_timeout=1)
    # The table service (the ledger) cannot be reached; blobs and queues can.
    broken = Azurite(azurite.blob_port, azurite.queue_port, table_port=9).connection_string
    monkeypatch.setenv("AzureWebJobsStorage", broken)
    runtime.reset()
    post_work = FUNCTIONS["post_work"].get_user_function()
    with pytest.raises(LedgerUnavailable):
        post_work(func.QueueMessage(id=message.id, body=message.content), context=context("post_work"))
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    runtime.reset()
    _, report = status_of(resp.headers["Location"])
    assert [r["outcome"] for r in report["results"]] == ["accepted", "accepted"]  # not "unavailable"
    with queue_host(queued) as host:  # the intake message is delivered again
        host.drain()
    assert sorted(p["documentNumber"] for p in sandbox.payments()) == ["INT-1", "INT-2"]
    _, report = status_of(resp.headers["Location"])
    assert report["status"] == "completed" and report["summary"] == {"total": 2, "created": 2}


def test_a_message_for_a_journal_this_worker_already_waits_for_steps_aside_untouched(queued, sandbox):
    """A poster holding a message while its journal is busy holds one of its instance's five message
    slots. When another of the worker's threads already waits for that journal, a further message for it
    goes back on the queue as it is (nothing claimed, nothing sent) and the slot is free for a journal
    that is; the payment is posted once the journal is free."""
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

    from payments import runtime

    [payment] = [check({"customerNumber": "10000", "amount": "-3.00", "documentNumber": "ASIDE-1"}).payment]
    runtime.pipeline().submit(C, J, [payment])
    queue = QueueClient.from_connection_string(
        queued.azurite.connection_string,
        queued.settings["PAYMENTS_WORK_QUEUE"],
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    [message] = queue.receive_messages(max_messages=1, visibility_timeout=60)
    poster = runtime.poster()
    journals = poster.client.journals
    held = journals.acquire((C, J), None)  # one thread of this worker inserts into the journal
    waited = threading.Event()

    def wait_for_the_journal() -> None:  # and another waits for its turn
        lock = journals.acquire((C, J), time.monotonic() + 30)
        waited.set()
        if lock is not None:
            lock.release()

    waiter = threading.Thread(target=wait_for_the_journal)
    waiter.start()
    wait_until(lambda: journals.crowded((C, J)), 10)
    handled = poster.handle(message.content)
    assert handled.stepped_aside == 1 and not handled.kinds
    [entry] = entries(queued)
    assert entry.state == "queued"  # not claimed
    assert sandbox.payments() == [] and posts(sandbox) == []
    queue.delete_message(message)  # the host deletes a message its function took without failing
    held.release()
    waiter.join(10)
    assert waited.is_set() and not journals.crowded((C, J))
    with queue_host(queued) as host:  # the message put back comes again after its delay
        host.drain()
    [stored] = sandbox.payments()
    assert stored["documentNumber"] == "ASIDE-1"
    [entry] = entries(queued)
    assert entry.state == "posted" and entry.target_id == stored["id"]


def test_a_journals_line_is_one_message_long_across_instances_and_the_rest_step_aside_untouched(
    azure_env, azurite, sandbox
):
    """With limits shared by every instance, a message for a busy journal waits in its line, holding the
    journal's one place in it; a message for the same journal at another instance, while the place is
    held, goes back on the queue as it is (nothing claimed, nothing sent), freeing its message slot for a
    journal that is free. The waiter leaves the place once the turn is its own, for the next message."""
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

    from payments import runtime
    from payments.credentials import target_credential
    from payments.outbound import TargetClient
    from payments.settings import load_settings
    from payments.work import Poster

    env = configure_storage(
        azure_env,
        azurite,
        **queue_settings(PAYMENTS_SHARED_CONCURRENCY="5", PAYMENTS_FLOW_CONTAINER=f"flow-{id(sandbox)}"),
    )
    payments = [
        check({"customerNumber": "10000", "amount": f"-{n}.00", "documentNumber": f"LINE-{n}"}).payment
        for n in (1, 2)
    ]
    for payment in payments:  # two messages for one journal
        runtime.pipeline().submit(C, J, [payment])
    queue = QueueClient.from_connection_string(
        azurite.connection_string,
        env.settings["PAYMENTS_WORK_QUEUE"],
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    first, second = queue.receive_messages(max_messages=2, visibility_timeout=60)
    elsewhere = runtime.make_shared_flow(load_settings())  # another instance, inserting into the journal
    assert elsewhere is not None
    with elsewhere.journal(C, J, until=None) as turn:
        assert turn
        waiting = threading.Thread(target=runtime.poster().handle, args=(first.content,))
        waiting.start()  # this instance's first message waits in the journal's line
        wait_until(
            lambda: {e.state for e in entries(env) if e.natural["documentNumber"] == "LINE-1"} == {"claimed"},
            10,
        )
        assert elsewhere.place(C, J) is None  # it holds the journal's one place in line
        assert sandbox.payments() == []

        # A third instance takes the second message.
        mine = runtime.poster()
        settings = mine.client.settings
        client = TargetClient(
            settings, target_credential(settings), shared=runtime.make_shared_flow(settings)
        )
        handled = Poster(client, mine.ledger, mine.queue).handle(second.content)
        assert handled.stepped_aside == 1 and not handled.kinds
        states = {e.natural["documentNumber"]: e.state for e in entries(env)}
        assert states["LINE-2"] == "queued"  # not claimed
    waiting.join(30)
    for message in (first, second):
        queue.delete_message(message)  # the host deletes a message its function took without failing
    place = elsewhere.place(C, J)
    assert place is not None  # the waiter left it once the turn was its own
    place.leave()
    with queue_host(env) as host:  # the message put back comes again after its delay
        host.drain()
    assert sorted(p["documentNumber"] for p in sandbox.payments()) == ["LINE-1", "LINE-2"]
    assert {e.state for e in entries(env)} == {"posted"}


# The table transactions a deferred batch's payments go through, in order: their rows in the index of
# open entries, their acceptance, the poster's claim, the outcomes.
WRITES = ("open-index", "acceptance", "claim", "outcomes")


@pytest.mark.parametrize("arrived", [False, True], ids=["not-arrived", "answer-lost"])
@pytest.mark.parametrize("write", range(len(WRITES)), ids=WRITES)
def test_a_ledger_write_whose_connection_resets_is_sent_again_and_every_payment_is_posted_once(
    azure_env, azurite, sandbox, write, arrived
):
    """A connection reset on a table transaction (a busy service or a load balancer does that) no longer
    fails the whole message until its redelivery: the write is sent again. When the first one had landed,
    the repeat fails cleanly and the protocol reads what is there: a claim whose answer was lost is one
    the poster cannot know is its own, so those payments wait until the claim has ended and the target
    has settled, then are found absent and posted. Never twice."""
    from devtools.azurite import Azurite
    from tests.support.resets import resetting

    with resetting(azurite.table_port) as proxy:
        env = configure_storage(
            azure_env,
            Azurite(azurite.blob_port, azurite.queue_port, proxy.port),
            **queue_settings(
                PAYMENTS_BATCH_SIZE="100",
                PAYMENTS_LEDGER_LEASE_SECONDS="2",
                PAYMENTS_TARGET_SETTLE_SECONDS="1",
            ),
        )
        batch = [pay(amount=f"-{i + 1}.00", documentNumber=f"RST-{i}") for i in range(3)]
        resp, body = call(batch, headers={"Prefer": "respond-async"})
        assert resp.status_code == 202, body
        proxy.arm(b"/$batch HTTP/1.1", arrived=arrived, skip=write)
        with queue_host(env) as host:
            host.drain(timeout=60)
        assert proxy.resets == 1
        assert host.failures == 0  # no message failed: nothing waited for a redelivery
        _, report = status_of(resp.headers["Location"])
    assert report["status"] == "completed" and report["summary"] == {"total": 3, "created": 3}
    numbers = sorted(p["documentNumber"] for p in sandbox.payments())
    assert numbers == ["RST-0", "RST-1", "RST-2"]
    assert [e.state for e in entries(env)] == ["posted"] * 3
