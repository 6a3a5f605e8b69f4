"""The sandbox limits each identity as Business Central online does. Source for every test here: the
documentation's operational limits for OData (`administration/operational-limits-online.md`, "OData
request limits": max concurrent requests 5, max request queue size 95, 6,000 requests per five-minute
sliding window, queue wait 8 minutes (503), operation timeout 8 minutes (408)), its current API limits
(`api-reference/v2.0/dynamics-current-limits.md`: 504 beyond ten minutes' execution) and its OData
`$batch` page (operations run in order). The sizes and times are shrunk so the tests run fast."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import requests

from sandbox import SANDBOX_COMPANY_ID, SANDBOX_JOURNAL_ID, Limits, Sandbox

_TICK = threading.Event()  # never set: its wait() is the polling interval


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        _TICK.wait(0.005)


def url(sb: Sandbox) -> str:
    journal = f"companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})"
    return f"{sb.bc_base_url}/{journal}/customerPayments"


def send(sb: Sandbox, doc: str, token: str = "one", timeout: float = 10) -> requests.Response:
    body = {"customerNumber": "10000", "amount": -1, "documentNumber": doc}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return requests.post(url(sb), data=json.dumps(body), headers=headers, timeout=timeout)


def send_batch(sb: Sandbox, docs: list[str], token: str = "one") -> requests.Response:
    inner = f"companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})/customerPayments"
    items = [
        {
            "id": doc,
            "method": "POST",
            "url": inner,
            "headers": {"Content-Type": "application/json"},
            "body": {"customerNumber": "10000", "amount": -1, "documentNumber": doc},
        }
        for doc in docs
    ]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Prefer": "odata.continue-on-error",
    }
    return requests.post(
        f"{sb.bc_base_url}/$batch", data=json.dumps({"requests": items}), headers=headers, timeout=10
    )


def in_parallel(
    sb: Sandbox, *calls: Callable[[], requests.Response]
) -> list[requests.Response | BaseException]:
    """Start each call on its own thread, in order, each once the sandbox has taken the previous one."""
    results: list[requests.Response | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = []
    for i in range(len(calls)):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
        wait_until(lambda i=i: len(sb.requests) > i)
    for t in threads:
        t.join()
    return results  # type: ignore[return-value]


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    return sandbox


def test_requests_beyond_the_concurrent_ones_wait_in_the_queue_and_all_complete(sb):
    """Max concurrent requests 5: "Requests that exceed the limit will wait in the queue"."""
    sb.latency = 0.3
    seen = {"processing": 0, "queued": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen["processing"] = max(seen["processing"], sb.in_flight)
            seen["queued"] = max(seen["queued"], sb.queued)
            _TICK.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    answers = in_parallel(sb, *(lambda i=i: send(sb, f"Q-{i}") for i in range(8)))
    done.set()
    watcher.join()
    assert [a.status_code for a in answers] == [201] * 8  # type: ignore[union-attr]
    assert seen == {"processing": 5, "queued": 3}
    assert sb.throttled_count == 0 and len(sb.payments()) == 8


def test_429_only_beyond_the_queue_and_without_retry_after(sb):
    """Max request queue size: "When the limit is exceeded, a 429 (Too Many Requests) error occurs";
    Retry-After is documented for 502 and 503 only."""
    sb.limits = Limits(concurrent=1, queue=1)
    sb.latency = 0.4
    first, queued, refused = in_parallel(
        sb, lambda: send(sb, "A"), lambda: send(sb, "B"), lambda: send(sb, "C")
    )
    assert (first.status_code, queued.status_code, refused.status_code) == (201, 201, 429)
    assert refused.json()["error"]["code"] == "Application_TooManyRequests"
    assert "Retry-After" not in refused.headers
    assert sorted(p["documentNumber"] for p in sb.payments()) == ["A", "B"]
    assert sb.throttled_count == 1


def test_429_beyond_the_rate_of_the_sliding_window(sb):
    """Rate: 6,000 requests per five-minute sliding window per user (here 3 per 0.6 s)."""
    sb.limits = Limits(rate=3, window=0.6)
    assert [send(sb, f"R-{i}").status_code for i in range(3)] == [201] * 3
    refused = send(sb, "R-3")
    assert refused.status_code == 429 and "3 requests in 0.6 seconds" in refused.json()["error"]["message"]
    wait_until(lambda: send(sb, "R-4").status_code == 201)  # the window slides on
    assert sorted(p["documentNumber"] for p in sb.payments())[:3] == ["R-0", "R-1", "R-2"]
    assert "R-3" not in {p["documentNumber"] for p in sb.payments()}


def test_limits_apply_per_identity(sb):
    """The limits are per user or service principal: another identity has its own five and queue."""
    sb.limits = Limits(concurrent=1, queue=0)
    sb.latency = 0.3
    mine, theirs, mine_again = in_parallel(
        sb,
        lambda: send(sb, "A", token="one"),
        lambda: send(sb, "B", token="two"),
        lambda: send(sb, "C", token="one"),
    )
    assert (mine.status_code, theirs.status_code, mine_again.status_code) == (201, 201, 429)


def test_a_queued_request_completes_even_after_its_client_gave_up(sb):
    """Queued requests wait "until a time slot becomes available": the service does not know the client
    left, so the payment is created later, with nobody to read the answer."""
    sb.limits = Limits(concurrent=1)
    sb.latency = 0.5
    first, gave_up = in_parallel(sb, lambda: send(sb, "A"), lambda: send(sb, "B", timeout=0.2))
    assert first.status_code == 201
    assert isinstance(gave_up, requests.ReadTimeout)
    wait_until(lambda: len(sb.payments()) == 2)
    assert [p["documentNumber"] for p in sb.payments()] == ["A", "B"]


def test_a_request_queued_too_long_gets_503_and_is_not_processed(sb):
    """A request waiting in the queue for eight minutes gets 503 (REFERENCE section 3); 503 carries
    Retry-After."""
    sb.limits = Limits(concurrent=1, queue_timeout=0.2)
    sb.latency = 0.6
    first, waited = in_parallel(sb, lambda: send(sb, "A"), lambda: send(sb, "B"))
    assert (first.status_code, waited.status_code) == (201, 503)
    assert waited.headers["Retry-After"]
    assert [p["documentNumber"] for p in sb.payments()] == ["A"]
    assert sb.queue_timeouts == 1


def test_batch_operations_run_one_after_another_each_taking_the_latency(sb):
    """OData $batch: the operations are executed in order; each takes its time, so a batch of four
    takes four operations' time and its payments appear one by one."""
    sb.latency = 0.15
    answer: list[requests.Response] = []
    worker = threading.Thread(target=lambda: answer.append(send_batch(sb, ["B1", "B2", "B3", "B4"])))
    worker.start()
    wait_until(lambda: len(sb.payments()) == 2)
    assert not answer  # half done: no answer yet
    worker.join()
    assert answer[0].status_code == 200
    assert [p["documentNumber"] for p in sb.payments()] == ["B1", "B2", "B3", "B4"]


def test_operation_timeout_answers_408_and_the_operations_not_finished_are_not_done(sb):
    """Operation timeout 8 minutes: 408 Request Timeout, and the session is canceled (here 0.25 s
    with 0.1 s operations: two finish, the third would end after the timeout)."""
    sb.limits = Limits(operation_timeout=0.25)
    sb.latency = 0.1
    answer = send_batch(sb, ["T1", "T2", "T3", "T4", "T5"])
    assert answer.status_code == 408
    assert [p["documentNumber"] for p in sb.payments()] == ["T1", "T2"]
    assert sb.timeouts == 1


def test_request_timeout_counts_from_arrival_and_answers_504(sb):
    """Request timeout 10 minutes from arrival, queueing included: 504 Gateway Timeout, aborted."""
    sb.limits = Limits(concurrent=1, request_timeout=0.5)
    sb.latency = 0.3
    first, late = in_parallel(sb, lambda: send(sb, "A"), lambda: send_batch(sb, ["L1", "L2"]))
    assert first.status_code == 201
    assert late.status_code == 504  # queued ~0.3 s, its first operation would end at ~0.6 s
    assert [p["documentNumber"] for p in sb.payments()] == ["A"]


def test_its_load_instruments_count_requests_at_once_and_writers_per_journal(sb):
    """Not a Business Central behaviour: the peaks the scale benchmark reads (bench/scale.py)."""
    sb.latency = 0.3
    other = sb.add_journal("5f0e6a3c-0000-4000-8000-00000000a002", name="CASH2")
    inner = f"companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({other})/customerPayments"
    body = {"customerNumber": "10000", "amount": -1, "documentNumber": "OTHER-1"}
    headers = {"Authorization": "Bearer one", "Content-Type": "application/json"}
    into_other = lambda: requests.post(f"{sb.bc_base_url}/{inner}", data=json.dumps(body), headers=headers, timeout=10)  # noqa: E731
    threads = [threading.Thread(target=send, args=(sb, "PEAK-1")), threading.Thread(target=into_other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (sb.peak_in_flight, sb.peak_journal_writers) == (2, 1)  # two journals, one writer each
    threads = [threading.Thread(target=send, args=(sb, f"PEAK-{n}")) for n in (2, 3)]
    threads.append(threading.Thread(target=send_batch, args=(sb, ["PEAK-4"])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (sb.peak_in_flight, sb.peak_journal_writers) == (3, 3)  # a $batch naming the journal counts
    sb.reset()
    assert (sb.peak_in_flight, sb.peak_journal_writers) == (0, 0)
