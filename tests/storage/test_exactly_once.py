"""Fault injection against the sandbox and Azurite: every scenario ends with each payment existing
exactly once at the target, or reported `ambiguous`, and with the ledger agreeing with the target.

Each scenario adds a row (payments sent, created, skipped, ambiguous) to the table printed at the
end of the run (see conftest.pytest_terminal_summary)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest

from devtools.invocation import context
from payments.filedrop import FileBusy
from payments.ledger import TableLedgerStore
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import deliver, report_of, upload
from tests.support.webhook import call, pay, posts

SCENARIOS: list[dict[str, object]] = []


def record(name: str, sandbox, *, sent: int, created: int, skipped: int, ambiguous: int = 0) -> None:
    """One row of the scenario table: payments sent (counting every resend), answered created,
    answered already-posted (skipped), left ambiguous, and how many exist at the target at the end: in
    its books, the journal's lines plus the payments posted from it (one receivables entry each)."""
    SCENARIOS.append(
        {
            "scenario": name,
            "sent": sent,
            "created": created,
            "skipped": skipped,
            "ambiguous": ambiguous,
            "at target": len(sandbox.payments())
            + sum(1 for e in sandbox.ledger_entries() if e["accountNumber"] == "2310"),
        }
    )


def ledger_entries(env) -> list:
    return list(TableLedgerStore(env.table).scan())


def assert_agrees(env, sandbox, *, ambiguous: int = 0) -> None:
    """Each payment exists once at the target; the ledger's posted ids are exactly the target's ids."""
    stored = sandbox.payments()
    ids = [p["id"] for p in stored]
    assert len(ids) == len(set(ids))
    entries = ledger_entries(env)
    states = Counter(e.state for e in entries)
    assert states.get("claimed", 0) == 0, states
    assert states.get("ambiguous", 0) == ambiguous, states
    posted = [e.target_id for e in entries if e.state == "posted"]
    assert len(posted) == len(set(posted))
    assert set(posted) <= set(ids)
    assert len(posted) + ambiguous == len(ids)


# -- webhook ------------------------------------------------------------------------------------


def test_same_request_twice_in_sequence_without_a_key(env, sandbox):
    first, created = call(pay(documentNumber="SEQ-1"))
    second, again = call(pay(documentNumber="SEQ-1"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["Payments-Already-Posted"] == "true"
    assert again["id"] == created["id"]
    assert len(posts(sandbox)) == 1 and len(sandbox.payments()) == 1
    assert_agrees(env, sandbox)
    record("webhook: same request twice, in sequence, no key", sandbox, sent=2, created=1, skipped=1)


def test_same_request_twice_in_sequence_with_idempotency_key(env, sandbox):
    key = {"Idempotency-Key": '"order-7781-payment"'}
    first, created = call(pay(), headers=key)
    second, again = call(pay(), headers=key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert again == created
    assert len(posts(sandbox)) == 1
    assert_agrees(env, sandbox)
    record("webhook: same request twice, in sequence, Idempotency-Key", sandbox, sent=2, created=1, skipped=1)


def test_same_key_with_a_different_payload_is_refused(env, sandbox):
    key = {"Idempotency-Key": "k-1"}
    assert call(pay(amount="-1.00"), headers=key)[0].status_code == 201
    resp, problem = call(pay(amount="-2.00"), headers=key)
    assert resp.status_code == 422
    assert problem["type"] == "urn:payments-relay:problem:idempotency-key-reused"
    assert len(posts(sandbox)) == 1
    assert_agrees(env, sandbox)


def test_invalid_idempotency_key_header(env, sandbox):
    resp, problem = call(pay(), headers={"Idempotency-Key": "x" * 256})
    assert resp.status_code == 400
    assert problem["type"] == "urn:payments-relay:problem:invalid-idempotency-key"
    assert sandbox.requests == []


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "concurrent-1"}], ids=["no key", "key"])
def test_same_request_twice_concurrently(env, sandbox, headers):
    sandbox.latency = 0.5
    answers: list = []
    started = threading.Barrier(2)

    def send():
        started.wait()
        answers.append(call(pay(documentNumber="CON-1"), headers=headers))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(resp.status_code for resp, _ in answers)
    assert statuses == [201, 409]
    conflict = next(body for resp, body in answers if resp.status_code == 409)
    assert conflict["type"] == "urn:payments-relay:problem:request-in-progress"
    assert len(posts(sandbox)) == 1
    # The sender retries the 409 later and learns the payment exists.
    sandbox.latency = 0
    resp, _ = call(pay(documentNumber="CON-1"), headers=headers)
    assert resp.status_code == (201 if headers else 200)
    assert len(posts(sandbox)) == 1
    assert_agrees(env, sandbox)
    label = "Idempotency-Key" if headers else "no key"
    record(
        f"webhook: same request twice at once ({label}; one 409), then resent",
        sandbox,
        sent=3,
        created=1,
        skipped=1,
    )


def test_throttling_and_unavailability_bursts(env, sandbox, azure_env):
    sandbox.inject("429", times=2, retry_after="0")
    sandbox.inject("503", times=1, retry_after="0")
    assert call(pay(documentNumber="B-1"))[0].status_code == 201
    azure_env("businesscentral", **env.settings, PAYMENTS_MAX_ATTEMPTS="2")
    sandbox.inject("503", times=2, retry_after="0")
    resp, _ = call(pay(documentNumber="B-2"))
    assert resp.status_code == 503  # not created, and the claim was released ...
    assert call(pay(documentNumber="B-2"))[0].status_code == 201  # ... so the sender's retry posts it
    assert call(pay(documentNumber="B-1"))[0].status_code == 200
    assert len(sandbox.payments()) == 2
    assert_agrees(env, sandbox)
    record(
        "webhook: 429/503 bursts; a 503 answer resent; a created one resent",
        sandbox,
        sent=4,
        created=2,
        skipped=1,
    )


def test_connection_dropped_after_commit_with_a_natural_key_is_reconciled(env, sandbox):
    sandbox.inject("drop-after")
    first, problem = call(pay(documentNumber="AMB-1"))
    assert first.status_code == 502 and problem["mayExist"] is True
    [entry] = ledger_entries(env)
    assert entry.state == "ambiguous"
    second, found = call(pay(documentNumber="AMB-1"))
    assert second.status_code == 200
    assert found["id"] == sandbox.payments()[0]["id"]
    assert len(posts(sandbox)) == 1  # looked up with GET, never posted again
    assert any(r.method == "GET" and "documentNumber%20eq%20%27AMB-1%27" in r.path for r in sandbox.requests)
    assert_agrees(env, sandbox)
    record(
        "webhook: dropped after commit (502), documentNumber given, resent",
        sandbox,
        sent=2,
        created=0,
        skipped=1,
        ambiguous=1,
    )


def test_ambiguous_then_journal_posted_then_resent_leaves_one_payment_in_the_books(env, sandbox):
    """Posting a journal deletes its lines (Gen. Jnl.-Post Batch): a search of the journal alone finds
    nothing, and the payment would be created twice. The posted G/L entries keep its documentNumber."""
    sandbox.inject("drop-after")
    first, problem = call(pay(documentNumber="AMB-P"))
    assert first.status_code == 502 and problem["mayExist"] is True
    assert sandbox.post_journal() == 1  # an accountant posts the journal meanwhile
    second, found = call(pay(documentNumber="AMB-P"))
    assert second.status_code == 200 and second.headers["Payments-Already-Posted"] == "true"
    assert found == {"documentNumber": "AMB-P", "amount": Decimal("-12.50"), "postedEntries": [1, 2]}
    assert sandbox.payments() == []  # nothing new in the journal
    assert len(posts(sandbox)) == 1
    assert [e["documentNumber"] for e in sandbox.ledger_entries()] == ["AMB-P", "AMB-P"]  # one payment
    assert any("generalLedgerEntries" in r.path and "AMB-P" in r.path for r in sandbox.requests)
    [entry] = ledger_entries(env)
    assert entry.state == "posted"
    record("webhook: ambiguous, journal posted, resent", sandbox, sent=2, created=0, skipped=1, ambiguous=1)


def test_connection_dropped_after_commit_without_a_natural_key_stays_ambiguous(env, sandbox, capsys):
    sandbox.inject("drop-after")
    assert call(pay(amount="-9.99"))[0].status_code == 502
    resp, problem = call(pay(amount="-9.99"))
    assert resp.status_code == 502
    assert "no documentNumber or externalDocumentNumber" in problem["detail"]
    assert len(posts(sandbox)) == 1 and len(sandbox.payments()) == 1
    assert_agrees(env, sandbox, ambiguous=1)
    record(
        "webhook: dropped after commit, no natural key, resent",
        sandbox,
        sent=2,
        created=0,
        skipped=0,
        ambiguous=2,
    )

    # A person checks the journal and records what they found; the next send is answered from the ledger.
    from payments.cli import main

    assert main(["ledger", "list"]) == 0
    listing = capsys.readouterr().out
    [entry] = ledger_entries(env)
    assert entry.key in listing and "ambiguous" in listing and "1 entries need attention" in listing
    target_id = sandbox.payments()[0]["id"]
    assert main(["ledger", "resolve", entry.key, "--company", C, "--journal", J, "--posted", target_id]) == 0
    resp, body = call(pay(amount="-9.99"))
    assert resp.status_code == 200 and body["id"] == target_id
    assert_agrees(env, sandbox)


def test_identical_payments_in_one_batch_count_once(env, sandbox):
    resp, body = call([pay(amount="-3.00"), pay(amount="-3.00"), pay(amount="-4.00")])
    assert resp.status_code == 207
    assert [r["outcome"] for r in body["results"]] == ["created", "skipped", "created"]
    assert body["results"][1]["payment"]["id"] == body["results"][0]["payment"]["id"]
    assert_agrees(env, sandbox)


# -- file drops ---------------------------------------------------------------------------------


def csv_of(n: int, prefix: str) -> str:
    rows = [f"{('10000', '20000', '30000')[i % 3]},{prefix}-{i:04d},-{i + 1}.{i % 100:02d}" for i in range(n)]
    return "customerNumber,documentNumber,amount\r\n" + "\r\n".join(rows) + "\r\n"


def test_worker_killed_halfway_through_a_file_then_delivered_again(env, sandbox):
    name = upload(env, f"{C}/{J}/kill-500.csv", csv_of(500, "K"))
    sandbox.latency = 0.01
    child_env = {**os.environ, **env.settings}
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from payments import runtime; runtime.file_drop().process({name!r})"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(sandbox.payments()) < 250:
        assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the worker made no progress"
        try:
            worker.wait(0.02)
        except subprocess.TimeoutExpired:
            pass
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    created_before = len(sandbox.payments())
    assert 250 <= created_before < 500
    # The file is still in the inbox under the dead worker's lease; the host redelivers after it ends.
    blob = env.service.get_blob_client(env.inbox, name)
    deadline = time.monotonic() + 40
    while blob.get_blob_properties().lease.state == "leased":
        assert time.monotonic() < deadline
        threading.Event().wait(0.5)  # the lease runs out on Azurite's clock
    sandbox.latency = 0
    deliver(env, name)
    stored = sandbox.payments()
    assert len(stored) == 500
    assert sorted(p["documentNumber"] for p in stored) == [f"K-{i:04d}" for i in range(500)]
    report = report_of(env, name)
    totals = report["totals"]
    assert totals["records"] == 500
    assert totals.get("created", 0) + totals.get("skipped", 0) == 500
    assert totals.get("skipped", 0) >= created_before - 1  # the one in flight may have been reconciled
    assert_agrees(env, sandbox)
    record(
        f"file: worker SIGKILLed after {created_before} of 500; file delivered again",
        sandbox,
        sent=1000,
        created=totals.get("created", 0),
        skipped=totals.get("skipped", 0),
    )


def drop_twice(env, records: int, name: str) -> tuple[dict, dict]:
    """The same file dropped under two names, one after the other; the two reports."""
    content = csv_of(records, name.upper())
    first = upload(env, f"{C}/{J}/{name}-a.csv", content)
    deliver(env, first)
    second = upload(env, f"{C}/{J}/{name}-b.csv", content)
    deliver(env, second)
    return report_of(env, first), report_of(env, second)


def test_same_file_dropped_twice(env, sandbox):
    a, b = drop_twice(env, 40, "twice")
    assert a["totals"] == {"records": 40, "created": 40}
    assert b["totals"] == {"records": 40, "skipped": 40}
    assert [r["id"] for r in b["records"]] == [r["id"] for r in a["records"]]
    assert all(r["note"] == "posted before" for r in b["records"])
    assert b["status"] == "processed"
    assert len(sandbox.payments()) == 40
    assert_agrees(env, sandbox)
    record("file: the same 40-record file dropped twice", sandbox, sent=80, created=40, skipped=40)


def test_two_workers_on_the_same_blob_at_once(env, sandbox):
    name = upload(env, f"{C}/{J}/race.csv", csv_of(60, "R"))
    sandbox.latency = 0.005
    results: list = []
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        try:
            results.append(deliver(env, name))
        except FileBusy as exc:
            results.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(r).__name__ for r in results) == ["FileBusy", "NoneType"]
    deliver(env, name)  # the host's retry of the busy delivery: nothing left to do
    assert len(sandbox.payments()) == 60
    assert_agrees(env, sandbox)
    record(
        "file: one 60-record blob delivered to two workers at once", sandbox, sent=120, created=60, skipped=0
    )


def test_two_files_with_the_same_payments_processed_at_once(env, sandbox):
    content = csv_of(60, "S")
    names = [upload(env, f"{C}/{J}/same-{i}.csv", content) for i in range(2)]
    sandbox.latency = 0.005
    barrier = threading.Barrier(2)

    def work(name):
        barrier.wait()
        deliver(env, name)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reports = [report_of(env, n) for n in names]
    assert len(sandbox.payments()) == 60
    by_doc = Counter()
    for report in reports:
        for r in report["records"]:
            by_doc[r["outcome"]] += 1
    assert by_doc["created"] == 60
    assert by_doc["created"] + by_doc["skipped"] + by_doc["in-flight"] == 120
    assert_agrees(env, sandbox)
    record(
        "file: two files with the same 60 payments at once",
        sandbox,
        sent=120,
        created=by_doc["created"],
        skipped=by_doc["skipped"] + by_doc["in-flight"],
    )


def _stale_claim(env, payload: dict) -> None:
    """Leave the ledger as a worker does when it dies between claiming and recording."""
    from datetime import UTC, datetime, timedelta

    from payments.ledger import Entry, Scope, derived_key, fingerprint, natural_key
    from payments.model import check

    payment = check(payload).payment.payload()
    scope = Scope(C, J)
    past = datetime.now(UTC) - timedelta(minutes=10)
    entry = Entry(
        scope,
        derived_key(scope, payment),
        "claimed",
        fingerprint(payment),
        past,
        past,
        past,
        natural=natural_key(payment),
    )
    assert TableLedgerStore(env.table).insert(entry) is not None


def test_stale_claim_whose_payment_reached_the_target_is_adopted(env, sandbox):
    import requests

    payload = pay(documentNumber="STALE-1")
    _stale_claim(env, payload)
    # The dead worker's POST had reached the target.
    requests.post(
        sandbox.bc_base_url + f"/companies({C})/customerPaymentJournals({J})/customerPayments",
        json=payload,
        headers={"Authorization": "Bearer t"},
        timeout=5,
    )
    before = len(posts(sandbox))
    resp, body = call(payload)
    assert resp.status_code == 200 and body["id"] == sandbox.payments()[0]["id"]
    assert len(posts(sandbox)) == before
    assert_agrees(env, sandbox)
    record(
        "webhook: resent after a worker died holding the claim (payment had landed)",
        sandbox,
        sent=2,
        created=1,
        skipped=1,
    )


def test_stale_claim_is_not_posted_again_while_its_request_may_still_run(env, sandbox, azure_env):
    """Business Central queues a request up to 8 minutes and ends it at 10: not found is not absent yet."""
    azure_env("businesscentral", **env.settings, PAYMENTS_TARGET_SETTLE_SECONDS="900")
    payload = pay(documentNumber="STALE-3")
    _stale_claim(env, payload)
    resp, problem = call(payload)
    assert resp.status_code == 502 and problem["mayExist"] is True
    assert "may still be queued or running there" in problem["detail"]
    assert posts(sandbox) == [] and sandbox.payments() == []
    [entry] = ledger_entries(env)
    assert entry.state == "ambiguous"


def test_stale_claim_whose_payment_never_left_is_posted(env, sandbox):
    payload = pay(documentNumber="STALE-2")
    _stale_claim(env, payload)
    resp, _ = call(payload)
    assert resp.status_code == 201
    assert len(posts(sandbox)) == 1
    assert_agrees(env, sandbox)
    record(
        "webhook: resent after a worker died holding the claim (payment had not landed)",
        sandbox,
        sent=2,
        created=1,
        skipped=0,
    )


def test_same_file_dropped_twice_with_batching(env, sandbox, azure_env):
    azure_env("businesscentral", **env.settings, PAYMENTS_BATCH_SIZE="20")
    a, b = drop_twice(env, 50, "batched")
    assert a["totals"] == {"records": 50, "created": 50}
    assert b["totals"] == {"records": 50, "skipped": 50}
    assert sandbox.batch_count == 3  # 20 + 20 + 10, and nothing sent the second time
    assert_agrees(env, sandbox)
    record(
        "file: the same 50-record file dropped twice, $batch of 20", sandbox, sent=100, created=50, skipped=50
    )


def test_table_store_writes_a_group_all_or_nothing(env):
    from datetime import UTC, datetime, timedelta

    from payments.ledger import Entry, Scope

    store = TableLedgerStore(env.table)
    now = datetime.now(UTC)
    scope = Scope(C, J)

    def entry(key):
        return Entry(scope, key, "claimed", "f", now + timedelta(minutes=5), now, now)

    first = store.insert_many([entry("k1"), entry("k2")])
    assert [e.key for e in first] == ["k1", "k2"] and all(e.etag for e in first)
    assert store.insert_many([entry("k3"), entry("k1")]) is None  # k1 exists: nothing written
    assert store.get(scope, "k3") is None
    posted = first
    for e in posted:
        e.state = "posted"
    stale = [
        posted[0],
        Entry(scope, "k2", "posted", "f", now, now, now, etag="W/\"datetime'2000-01-01T00%3A00%3A00Z'\""),
    ]
    assert store.replace_many(stale) is None  # one etag is stale: nothing written
    assert store.get(scope, "k1").state == "claimed"
    written = store.replace_many(posted)
    assert written is not None and {store.get(scope, k).state for k in ("k1", "k2")} == {"posted"}


def test_nightly_purge_is_registered_and_removes_only_expired_entries(env, sandbox):
    from datetime import UTC, datetime, timedelta

    from payments.ledger import Entry, Scope
    from tests.support.host import FUNCTIONS

    [trigger] = FUNCTIONS["ledger_purge"].get_bindings_dict()["bindings"]
    assert trigger["type"] == "timerTrigger" and trigger["schedule"] == "0 17 3 * * *"
    store = TableLedgerStore(env.table)
    scope = Scope(C, J)
    old = datetime.now(UTC) - timedelta(days=31)
    assert store.insert(Entry(scope, "old", "posted", "f", old, old, old, target_id="t-old"))
    assert call(pay(documentNumber="KEEP-1"))[0].status_code == 201
    FUNCTIONS["ledger_purge"].get_user_function()(None, context=context("ledger_purge"))
    remaining = ledger_entries(env)
    assert [e.state for e in remaining] == ["posted"] and remaining[0].key != "old"
