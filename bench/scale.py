"""Scale-out benchmark: many worker processes posting from one work queue, against a sandbox with
Business Central's per-identity limits, with webhook callers feeding the queue at the same time.

Each worker process plays one Functions instance: it imports `function_app` and runs the host's queue
listener (devtools.queue_host, host.json's batchSize of 5 messages at once) invoking the registered
`post_work` function exactly as the Python worker would. Nothing is shared between them but what
Azure would share: Azurite (the work queue, the ledger table, the blob leases that carry the limits
every instance keeps together) and the target. The webhook callers are threads calling the registered
`customer_payments` function with batches (`Prefer: respond-async`) and single payments (answered
synchronously once posted) into three journals.

The sandbox runs in this process, so its instruments are read directly: 429s, requests queued past
their timeout or cut off, the most requests it processed at once for the identity, and the most
writing requests it processed at once for one journal. Its timeouts are shortened to 30 s, or 1.5 times
a whole `$batch` when that is longer (Business Central: 8 minutes queued, 10 running), and the relay's
settle time set to match, so that a worker killed mid-request is recovered within the run rather than
ten minutes later.

Capacity: one insert at a time per journal (Microsoft's advice, and what the relay keeps), five requests
at once per identity, each operation taking `--latency`: `min(journals, 5 x identities) / latency`
payments per second. With `--identities 1,2,3` each count gets its runs, with five journals, `--payments`
and `--workers` per identity: the identities are the limit, every journal has as deep a backlog, and each
journal as many instances' message slots (5 per instance) waiting for its turn (a poster holding a message
for a busy journal waits for its turn; Flex Consumption adds instances as the queue grows). Single payments go on the priority queue, taken by instances of
their own (`--priority-workers`); the table says how many were answered 201 within the answer window.

Run: `.venv/bin/python -m bench.scale` (`--payments`, `--workers`, `--latency`, `--identities`, `--runs`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devtools.invocation import context

ROOT = Path(__file__).resolve().parent.parent
TIMEOUTS = 30.0  # the shortest sandbox timeouts here (queue, operation, request) and relay settle time


_functions: dict = {}


def registered(name: str):
    """A function as the app registered it (the registry can be listed once per process)."""
    if not _functions:
        import function_app

        _functions.update({f.get_function_name(): f for f in function_app.app.get_functions()})
    return _functions[name]


def worker(concurrency: int, function: str = "post_work", queue_setting: str = "PAYMENTS_WORK_QUEUE") -> int:
    """One instance: the queue listener invoking a registered queue function until killed."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    import function_app
    from devtools.queue_host import QueueHost

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before the threads: they inherit it
    host = QueueHost(
        os.environ["AzureWebJobsStorage"],
        os.environ[queue_setting],
        functions[function].get_user_function(),
        concurrency=concurrency,
        visibility=30,
        retry_visibility=30,
        max_poll=1.0,
    )
    host.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})
    host.stop()
    return 0


def run(args: argparse.Namespace, azurite, kill: bool, identities: int = 1) -> dict[str, object]:
    import uuid

    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_TOKEN_HEADER, Limits, Sandbox
    from sandbox.store import extra_journals

    # --same-rate: each identity's operations take proportionally longer, so every count of identities asks
    # this machine for the same payments per second; what changes is how many requests are at the target
    # at once (5 per identity), which is what more identities buy.
    latency = args.latency * identities if args.same_rate else args.latency
    timeouts = max(TIMEOUTS, 1.5 * args.batch * latency)  # a $batch's operations run one after another
    box = Sandbox(latency=latency)
    box.limits = Limits(queue_timeout=timeouts, operation_timeout=timeouts, request_timeout=timeouts)
    from sandbox import SANDBOX_JOURNAL_ID

    # Enough journals that the identities' five requests at once each, not the journals, are the limit.
    journal_count = args.journals or 5 * identities
    extra = [box.add_journal(jid, name=f"CASH{n}") for n, jid in extra_journals(journal_count)]
    journals = [SANDBOX_JOURNAL_ID, *extra]
    box.start()
    tag = f"{int(time.time())}{'k' if kill else 'n'}"
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "IDENTITY_ENDPOINT": box.identity_endpoint,
        "IDENTITY_HEADER": SANDBOX_TOKEN_HEADER,
        "PAYMENTS_TARGET": "businesscentral",
        "PAYMENTS_API_BASE_URL": box.bc_base_url,
        "PAYMENTS_INBOUND_AUTH": "none",  # callers on loopback; tests/storage/test_callers.py covers auth
        "PAYMENTS_WORK_QUEUE": f"scale-{tag}",
        "PAYMENTS_BATCHES_CONTAINER": f"scale-batches-{tag}",
        "PAYMENTS_LEDGER_TABLE": f"scale{tag}",
        "PAYMENTS_FLOW_CONTAINER": f"scale-flow-{tag}",
        "PAYMENTS_SHARED_CONCURRENCY": "5",
        "PAYMENTS_BATCH_SIZE": str(args.batch),
        "PAYMENTS_MAX_BODY_BYTES": "4194304",
        "PAYMENTS_READ_TIMEOUT_SECONDS": str(timeouts + 5),
        "PAYMENTS_TARGET_SETTLE_SECONDS": str(timeouts),
        # Messages wait for their journal's turn within their claim: a few turns of a whole $batch.
        "PAYMENTS_LEDGER_LEASE_SECONDS": str(max(120, int(4 * args.batch * latency))),
        "PAYMENTS_PRIORITY_QUEUE": f"scale-prio-{tag}",
        "PAYMENTS_TARGET_CLIENT_IDS": (
            ",".join(str(uuid.uuid5(uuid.NAMESPACE_OID, f"identity-{i}")) for i in range(identities))
            if identities > 1
            else ""
        ),
    }
    os.environ.update(env)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.scale", "--worker", "--concurrency", str(args.concurrency)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.workers * identities)
    ]
    # The priority queue's function scales on its own (Flex Consumption): instances of its own.
    workers += [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.scale",
                "--worker",
                "--concurrency",
                str(args.concurrency),
                "--function",
                "post_priority",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.priority_workers)
    ]
    for w in workers:
        assert w.stdout is not None
        if w.stdout.readline().strip() != "ready":
            raise SystemExit("a worker did not start")

    from payments import runtime

    runtime.reset()
    call = registered("customer_payments")
    import azure.functions as func

    singles = args.singles
    # As many batches for every journal (the payments asked for, rounded to that), so that no journal
    # has work left while the others are idle: the capacity counts every journal busy until the end.
    per_journal = max(1, round((args.payments * identities - singles) / (100 * len(journals))))
    work: list[tuple[str, list[dict], bool]] = []
    n = 0
    for b in range(per_journal * len(journals)):
        journal = journals[b % len(journals)]
        items = [
            {
                "customerNumber": "10000",
                "amount": f"-{(n + i) % 997 + 1}.{(n + i) % 100:02d}",
                "documentNumber": f"SC-{n + i}",
            }
            for i in range(100)
        ]
        n += 100
        work.append((journal, items, True))
    for s in range(singles):
        journal = journals[s % len(journals)]
        work.append(
            (
                journal,
                [{"customerNumber": "20000", "amount": "-1.00", "documentNumber": f"SC-{n}"}],
                False,
            )
        )
        n += 1
    # The batches first, answered 202 at once: the backlog; then the single payments, answered as they
    # are posted (or 202 after the answer window), while the backlog drains.
    order = sorted(range(len(work)), key=lambda k: (not work[k][2], (k * 7919) % len(work)))
    statuses: Counter[int] = Counter()
    singles_answered: Counter[int] = Counter()  # what a caller of one payment got
    lock = threading.Lock()
    answered_202: list[float] = []

    def send(k: int) -> None:
        journal, items, many = work[k]
        body = json.dumps(items if many else items[0]).encode()
        headers = {"Content-Type": "application/json"}
        if many:
            headers["Prefer"] = "respond-async"
        req = func.HttpRequest(
            method="POST",
            url="http://127.0.0.1/api/x",
            headers=headers,
            body=body,
            route_params={"companyId": C, "journalId": journal},
        )
        t = time.perf_counter()
        resp = call.get_user_function()(req, context=context())
        with lock:
            statuses[resp.status_code] += 1
            if not many:
                singles_answered[resp.status_code] += 1
            if resp.status_code == 202:
                answered_202.append(time.perf_counter() - t)

    expected = n
    killed = ""
    started = time.perf_counter()
    with ThreadPoolExecutor(args.callers) as pool:
        futures = [pool.submit(send, k) for k in order]
        last = -1
        while True:
            landed = sum(len(box.payments(C, j)) for j in journals)
            if kill and not killed and landed >= expected * 0.4:
                victim = workers[0]
                victim.send_signal(signal.SIGKILL)
                killed = f"worker pid {victim.pid} SIGKILLed at {landed} of {expected} payments"
            if landed >= expected and all(f.done() for f in futures):
                break
            if time.perf_counter() - started > args.timeout:
                break
            if landed != last:
                last = landed
            time.sleep(0.5)
        for f in futures:
            f.result()
    elapsed = time.perf_counter() - started
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
    stored = [p for j in journals for p in box.payments(C, j)]
    numbers = Counter(p["documentNumber"] for p in stored)
    # One operation at a time per journal, five at once per identity; without $batch also the rate
    # window (6,000 per 5 minutes per identity).
    capacity = min(len(journals), 5 * identities) / latency
    if args.batch <= 1 and expected > 6000 * identities:  # the first 6,000 each go at once; then 20/s
        capacity = min(capacity, identities * 6000 / 300)
    box.stop()
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(azurite.connection_string, env["PAYMENTS_LEDGER_TABLE"])
    # The ledger's entries (its own rows, the open index and its marks, start with "~").
    states = Counter(e["State"] for e in table.query_entities("PartitionKey lt '~'", select=["State"]))
    by_identity = dict(box.requests_by_identity)
    result = {
        "run": f"{identities} identit{'y' if identities == 1 else 'ies'}, "
        + ("one worker SIGKILLed midway" if kill else "all workers"),
        "identities": identities,
        "seconds per operation": latency,
        "journals": len(journals),
        "workers": f"{args.workers * identities} + {args.priority_workers} priority",
        "$batch": args.batch or "none",
        "payments": expected,
        "seconds": round(elapsed, 1),
        "payments/s": round(len(stored) / elapsed, 1),
        "capacity/s": round(capacity, 1),
        "share": f"{100 * len(stored) / elapsed / capacity:.1f}%",
        "429s": box.throttled_count,
        "queued past timeout": box.queue_timeouts + box.timeouts,
        "lost": sum(1 for k in range(expected) if numbers.get(f"SC-{k}", 0) == 0),
        "doubled": sum(c - 1 for c in numbers.values() if c > 1),
        "most in flight (every identity together)": box.peak_in_flight,
        "most writers (one journal)": box.peak_journal_writers,
        "line collisions": box.line_collisions,
        "webhook answers": dict(statuses),
        "single payments answered 201 (within the answer window)": (
            f"{singles_answered.get(201, 0)} of {singles} "
            f"({100 * singles_answered.get(201, 0) / max(singles, 1):.0f}%)"
        ),
        "requests per identity": "/".join(str(v) for _, v in sorted(by_identity.items())) or "-",
        "202 answer p50 / max (s)": (
            f"{sorted(answered_202)[len(answered_202) // 2]:.3f} / {max(answered_202):.3f}"
            if answered_202
            else "-"
        ),
        "ledger states": dict(states),
        "killed": killed or "-",
    }
    return result


def big_batch_answer(azurite) -> float:
    """Seconds to answer a 5,000-payment batch (202 Accepted): validation, 50 ledger writes, the queue."""
    from payments import runtime
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J

    os.environ["PAYMENTS_WORK_QUEUE"] = f"big-{int(time.time())}"
    runtime.reset()
    import azure.functions as func

    call = registered("customer_payments")
    items = [
        {"customerNumber": "10000", "amount": f"-{i + 1}.25", "documentNumber": f"BIG-{i}"}
        for i in range(5000)
    ]
    body = json.dumps(items).encode()
    times = []
    for _ in range(3):
        for item in items:
            item["documentNumber"] += "x"
        body = json.dumps(items).encode()
        req = func.HttpRequest(
            method="POST",
            url="http://127.0.0.1/api/x",
            headers={"Content-Type": "application/json"},
            body=body,
            route_params={"companyId": C, "journalId": J},
        )
        t = time.perf_counter()
        resp = call.get_user_function()(req, context=context())
        times.append(time.perf_counter() - t)
        assert resp.status_code == 202, resp.get_body()[:300]
    return min(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--payments",
        type=int,
        default=20_000,
        help="per identity: each identity's journals get as deep a backlog (rounded to whole batches per journal)",
    )
    parser.add_argument("--singles", type=int, default=200, help="of them sent one per call (synchronous)")
    parser.add_argument(
        "--workers",
        type=int,
        default=6,
        help="per identity, as Flex Consumption adds instances with the queue",
    )
    parser.add_argument(
        "--concurrency", type=int, default=5, help="messages at once per worker (host.json batchSize)"
    )
    parser.add_argument("--callers", type=int, default=6, help="webhook calls at once")
    parser.add_argument("--journals", type=int, default=0, help="0: five per identity")
    parser.add_argument("--identities", default="1", help="comma-separated counts of identities, a run each")
    parser.add_argument("--priority-workers", type=int, default=2, help="instances of the priority queue's")
    parser.add_argument("--function", default="post_work", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per operation at the sandbox")
    parser.add_argument(
        "--same-rate",
        action="store_true",
        help="latency x identities: every run asks this machine for the same payments/s (2 cores saturate)",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--batch", type=int, default=100, help="PAYMENTS_BATCH_SIZE (0: one request per payment)"
    )
    parser.add_argument("--runs", choices=["both", "plain", "kill"], default="both")
    args = parser.parse_args()
    if args.worker:
        if args.function == "post_priority":
            return worker(args.concurrency, "post_priority", "PAYMENTS_PRIORITY_QUEUE")
        return worker(args.concurrency)
    from devtools.azurite import running_azurite

    results = []
    with running_azurite() as azurite:
        for identities in (int(n) for n in args.identities.split(",")):
            for kill in {"both": (False, True), "plain": (False,), "kill": (True,)}[args.runs]:
                results.append(run(args, azurite, kill, identities))
                print(json.dumps(results[-1], default=str), flush=True)
        fastest, slowest = big_batch_answer(azurite)
    print()
    print("| figure | " + " | ".join(str(r["run"]) for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in results[0]:
        if key == "run":
            continue
        print(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
    print(f"\n5,000-payment batch answered 202 in {fastest:.3f}s to {slowest:.3f}s (3 calls)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
