"""Flow control towards the target, without a server: the adaptive in-flight bound and the throttle gate."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from payments.errors import Throttled
from payments.outbound.flow import InFlightLimit, RateWindow, ThrottleGate
from tests.support.clock import FakeClock


def test_in_flight_limit_steps_down_on_429_and_back_up_after_successes():
    limit = InFlightLimit(5)
    limit.throttled()
    limit.throttled()
    assert limit.limit == 3
    for _ in range(11):
        limit.succeeded()
    assert limit.limit == 3
    limit.succeeded()  # 4 x limit successes in a row
    assert limit.limit == 4
    for _ in range(10):
        limit.throttled()
    assert limit.limit == 1


def test_the_gate_holds_every_caller_until_it_opens():
    fake = FakeClock()
    gate = ThrottleGate(fake.sleep, fake.monotonic)
    gate.wait()
    assert fake.sleeps == []
    gate.pause(2.5)
    gate.pause(1.0)  # a shorter pause does not shorten the first
    gate.wait()
    assert fake.sleeps == [2.5]
    gate.wait()
    assert fake.sleeps == [2.5]


def test_a_freed_slot_goes_to_the_waiting_worker_before_its_releaser_goes_on():
    # A long handoff window makes the order certain: the releaser may only go on once the waiter
    # holds the slot (in the relay the window is 5 ms; the target never sees the slot idle).
    limit = InFlightLimit(1, handoff_seconds=30)
    events: list[str] = []
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        with limit:
            events.append("waiter has the slot")

    limit.__enter__()
    thread = threading.Thread(target=waiter)
    thread.start()
    waiting.wait(5)
    while limit._waiting == 0:  # the waiter is inside __enter__
        threading.Event().wait(0.001)
    limit.__exit__(None, None, None)
    events.append("releaser goes on")
    thread.join(5)
    assert events == ["waiter has the slot", "releaser goes on"]
    assert limit._busy == 0


def test_releasing_with_nobody_waiting_does_not_wait():
    limit = InFlightLimit(2, handoff_seconds=30)
    with limit:
        pass  # would hang for 30 s if it waited for a taker that is not there
    assert limit._busy == 0


def test_the_rate_window_paces_requests_and_refuses_a_wait_beyond_its_budget():
    """Business Central takes 6,000 requests per five-minute sliding window per identity (here 3 per
    10 s): the relay waits for the window to slide rather than provoke 429s, and does not wait longer
    than its retry budget."""
    fake = FakeClock()
    rate = RateWindow(3, 10.0, max_wait=60.0, sleep=fake.sleep, clock=fake.monotonic)
    for _ in range(3):
        rate.acquire()
    assert fake.sleeps == []
    fake.advance(timedelta(seconds=4))
    rate.acquire()  # the fourth waits until the first is 10 s old, plus a 5 % margin
    assert fake.sleeps == [6.5]
    short = RateWindow(1, 300.0, max_wait=60.0, sleep=fake.sleep, clock=fake.monotonic)
    short.acquire()
    with pytest.raises(Throttled) as refused:
        short.acquire()
    assert (
        refused.value.retry_after == 301
        and "rate window is full (1 requests in 300 s)" in refused.value.message
    )
    assert fake.sleeps == [6.5]  # refused at once, not after waiting
