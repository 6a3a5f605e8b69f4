"""Throughput benchmark against a sandbox that behaves like Business Central online: each operation
takes `--latency`, a `$batch` runs its operations one after another, one identity gets five requests
processed at once and 95 queued (429 beyond that or beyond 6,000 requests in five minutes), a queued
request times out after eight minutes (503), and an insert overlapping another in the same journal
collides on the line number. Runs: a plain sequential `requests` loop, then the relay without and with
`$batch`, into one, three and six journals; plus import time and validation throughput.

Each run is reported against the target's real capacity for it: into one journal, one operation at a
time (the relay sends one insert at a time per journal, as Microsoft advises), so `1 / latency`
operations per second whether they come alone or in a `$batch`; across journals, one operation per
journal at a time, at most five per identity. Not against `cap x batch size / latency`, which the
target cannot do.

Run: `.venv/bin/python -m bench.throughput` (`--payments`, `--latency`, `--batch`, `--journals`).
The sandbox runs in its own process on 127.0.0.1; the relay uses its real client, the real
ManagedIdentityCredential (against the sandbox's token endpoint) and the exactly-once ledger
(in-memory store: the protocol is the same as in production, the storage round-trips are not).
The sandbox and the relay are pinned to different CPUs (`--no-pin` to leave them be).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def start_sandbox(latency: float, journals: int) -> tuple[subprocess.Popen[str], str]:
    """A sandbox with Business Central's limits (its defaults) and `journals` journals."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--journals",
            str(journals),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "http://127.0.0.1:" in line:
            url = "http://127.0.0.1:" + line.split("http://127.0.0.1:", 1)[1].split()[0].split("/")[0]
            return proc, url
    raise SystemExit("the sandbox did not start")


def journal_ids(count: int) -> list[str]:
    from sandbox import SANDBOX_JOURNAL_ID
    from sandbox.store import extra_journals

    return [SANDBOX_JOURNAL_ID] + [jid for _, jid in extra_journals(count)]


class Answers(logging.Handler):
    """Counts the target's non-2xx answers by status, from the relay's own log line for each."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_status: Counter[int] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("target answered") and record.args:
            self.by_status[int(record.args[0])] += 1  # type: ignore[index, call-overload]


def records(n: int, tag: str) -> list[dict]:
    return [
        {
            "customerNumber": ("10000", "20000", "30000", "40000")[i % 4],
            "postingDate": "2026-11-20",
            "documentNumber": f"{tag}-{i:06d}",
            "externalDocumentNumber": f"BANK-{tag}-{i:06d}",
            "amount": Decimal(f"-{i % 9000 + 1}.{i % 100:02d}"),  # a customer payment is a credit
            "description": f"Payment {i} for invoice {100000 + i}",
        }
        for i in range(n)
    ]


def sequential_baseline(url: str, items: list[dict]) -> tuple[float, Counter[int]]:
    """What a user would write: one POST after another with requests (failures counted, not retried)."""
    import requests

    from payments import codec
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J

    endpoint = f"{url}/v2.0/sandbox-tenant/sandbox/api/v2.0/companies({C})/customerPaymentJournals({J})/customerPayments"
    failed: Counter[int] = Counter()
    started = time.perf_counter()
    with requests.Session() as session:
        for item in items:
            r = session.post(
                endpoint,
                data=codec.dumpb(item),
                headers={"Authorization": "Bearer baseline", "Content-Type": "application/json"},
                timeout=600,
            )
            if r.status_code != 201:
                failed[r.status_code] += 1
    return time.perf_counter() - started, failed


_tables = iter(range(1_000_000))


def ledger_for(storage: str | None) -> tuple[Any, list[int]]:
    """The ledger the run uses: Azure Table storage in Azurite (what production uses) when `storage` is
    its connection string, else in memory; and a counter of its storage round trips."""
    from payments.ledger import Ledger, MemoryLedgerStore, TableLedgerStore

    trips = [0]
    if storage is None:
        return Ledger(MemoryLedgerStore()), trips
    from azure.data.tables import TableClient

    def count(_request: Any) -> None:
        trips[0] += 1

    table = TableClient.from_connection_string(storage, f"benchledger{next(_tables)}", raw_request_hook=count)
    table.create_table()
    trips[0] = 0
    return Ledger(TableLedgerStore(table)), trips


def relay_run(
    url: str,
    items: list[dict],
    batch: int,
    journals: list[str],
    storage: str | None = None,
    shared: bool = False,
) -> tuple[float, float, Counter[int], dict[str, int], int]:
    """Validate, then post, as every entry point does: the payments split evenly over `journals`, each
    journal's share posted by its own invocation, all through one worker's client (a fresh one: its
    first request fetches the token). Returns (validation seconds, posting seconds, the target's
    non-2xx answers by status, outcome kinds, the ledger's storage round trips)."""
    from payments.credentials import target_credential
    from payments.model import check
    from payments.outbound import TargetClient
    from payments.posting import Pipeline
    from payments.settings import Settings
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_TOKEN_HEADER

    os.environ["IDENTITY_ENDPOINT"] = url + "/msi/token"
    os.environ["IDENTITY_HEADER"] = SANDBOX_TOKEN_HEADER
    settings = Settings(
        target="businesscentral",
        api_base_url=url + "/v2.0/sandbox-tenant/sandbox/api/v2.0",
        batch_size=batch,
        read_timeout_seconds=600,
    )
    flow = None
    if shared:  # the limits every instance keeps together, through blob leases in Azurite
        from azure.storage.blob import ContainerClient

        from payments.outbound.shared import SharedFlow

        assert storage is not None, "--shared needs --ledger table (Azurite)"
        flow = SharedFlow(ContainerClient.from_connection_string(storage, f"benchflow{next(_tables)}"), 5)
    client = TargetClient(settings, target_credential(settings), shared=flow)
    ledger, trips = ledger_for(storage)
    pipeline = Pipeline(client, ledger)
    answers = Answers()
    log = logging.getLogger("payments.target")
    log.addHandler(answers)
    started = time.perf_counter()
    payments = [check(item).payment for item in items]
    validated = time.perf_counter()
    shares = [payments[k :: len(journals)] for k in range(len(journals))]
    outcomes: list = []

    def post(journal: str, share: list) -> None:
        outcomes.extend(pipeline.post_all(C, journal, share))

    threads = [threading.Thread(target=post, args=pair) for pair in zip(journals, shares, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posted = time.perf_counter()
    log.removeHandler(answers)
    client.close()
    kinds = dict(Counter(o.kind for o in outcomes))
    return validated - started, posted - validated, answers.by_status, kinds, trips[0]


def import_times(repeats: int = 5) -> tuple[float, float, list[str]]:
    """Median wall time to import function_app, and to import only the third-party packages it loads."""
    probe = (
        "import sys, time; t = time.perf_counter(); import function_app; d = time.perf_counter() - t; "
        "import sysconfig; site = sysconfig.get_paths()['purelib']; "
        "mods = sorted({n.split('.')[0] for n, m in list(sys.modules.items()) "
        "if getattr(m, '__file__', None) and m.__file__.startswith(site)}); print(d); print(','.join(mods))"
    )
    app, deps = [], []
    third_party: list[str] = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        )
        seconds, names = out.stdout.strip().splitlines()[-2:]
        app.append(float(seconds))
        third_party = [n for n in names.split(",") if n and n not in ("_distutils_hack",)]
    only_deps = (
        "import time, importlib; t = time.perf_counter(); "
        f"[importlib.import_module(n) for n in {third_party!r}]; print(time.perf_counter() - t)"
    )
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", only_deps], cwd=ROOT, capture_output=True, text=True, check=True
        )
        deps.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(app), statistics.median(deps), third_party


def validation(n: int) -> tuple[float, float]:
    """Records per second through the relay's `check` and through a plain pydantic TypeAdapter of
    the same shape built from pydantic's own types (the floor: no custom validators, no messages)."""
    import uuid
    from datetime import date
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

    from payments.model import check

    class Floor(BaseModel):
        model_config = ConfigDict(extra="forbid")
        journalDisplayName: Annotated[str, Field(max_length=10)] | None = None
        lineNumber: int | None = None
        customerId: uuid.UUID | None = None
        customerNumber: Annotated[str, Field(max_length=20)] | None = None
        contactId: Annotated[str, Field(max_length=250)] | None = None
        postingDate: date | None = None
        documentNumber: Annotated[str, Field(max_length=20)] | None = None
        externalDocumentNumber: Annotated[str, Field(max_length=35)] | None = None
        amount: Decimal
        appliesToInvoiceId: uuid.UUID | None = None
        appliesToInvoiceNumber: Annotated[str, Field(max_length=20)] | None = None
        description: Annotated[str, Field(max_length=100)] | None = None
        comment: Annotated[str, Field(max_length=250)] | None = None

    items = records(n, "V")
    for item in items[::2]:
        item["customerId"] = "c0000001-0000-4000-8000-000000010000"
    adapter = TypeAdapter(Floor)
    best_floor = best_ours = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for item in items:
            adapter.validate_python(item)
        best_floor = min(best_floor, time.perf_counter() - t)
        t = time.perf_counter()
        for item in items:
            assert check(item).ok
        best_ours = min(best_ours, time.perf_counter() - t)
    return n / best_ours, n / best_floor


def pin_processes(sandbox_pid: int) -> str:
    """Put the sandbox on its own CPU and this process (the relay) on the others, as a load test keeps
    the system under test apart from the server it drives; otherwise the sandbox's Python work and
    the relay's compete for the same cores and the figures measure that contention."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(sandbox_pid, {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))
    return f"sandbox pinned to CPU {cpus[-1]}, relay to CPU {','.join(map(str, cpus[:-1]))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1200)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds each operation takes at the sandbox (its work included)",
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="payments per $batch (Business Central: up to 100)"
    )
    parser.add_argument(
        "--journals",
        type=int,
        nargs="+",
        default=[1, 3, 6],
        help="journal counts to run the relay with (each run splits the payments evenly)",
    )
    parser.add_argument(
        "--ledger",
        choices=["table", "memory"],
        default="table",
        help="the ledger's store: Azure Table storage in Azurite (what production uses) or in memory",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="keep the limits shared by every instance (PAYMENTS_SHARED_CONCURRENCY=5) in Azurite",
    )
    parser.add_argument("--no-pin", action="store_true", help="leave the sandbox and the relay unpinned")
    parser.add_argument("--validation-records", type=int, default=100_000)
    args = parser.parse_args()
    n, latency = args.payments, args.latency
    concurrent = 5  # Business Central: requests processed at once per identity (the sandbox's default)

    # As function_app does at worker start: what is loaded now stays out of later collections.
    import azure.identity  # noqa: F401  (the credential's modules, as a warm worker has them)

    import payments.posting  # noqa: F401
    from payments import runtime

    runtime.freeze_startup_objects()

    def capacity(journals: int) -> float:
        """Operations per second the target can do for one identity writing into `journals` journals."""
        return min(journals, concurrent) / latency

    rows = []
    stack = contextlib.ExitStack()
    storage = None
    if args.ledger == "table":
        from devtools.azurite import running_azurite

        storage = stack.enter_context(running_azurite()).connection_string
    proc, url = start_sandbox(latency, max(args.journals))
    try:
        pinning = "not pinned" if args.no_pin else pin_processes(proc.pid)
        print(f"sandbox {url}: {latency * 1000:.0f} ms per operation; {pinning}", file=sys.stderr)
        seconds, failed = sequential_baseline(url, records(n, "SEQ"))
        rows.append(("sequential requests loop", 1, n / seconds, None, capacity(1), failed, None, None))
        print(f"  baseline done in {seconds:.1f} s", file=sys.stderr)
        for count in args.journals:
            for size in (0, args.batch):
                checking, posting, failed, kinds, trips = relay_run(
                    url, records(n, f"R{count}B{size}"), size, journal_ids(count), storage, args.shared
                )
                name = f"relay, $batch of {size}" if size else "relay, no $batch"
                rate, checked = n / posting, n / (checking + posting)
                rows.append((name, count, rate, checked, capacity(count), failed, kinds, trips / n))
                print(f"  {name}, {count} journal(s) done in {posting:.1f} s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
        stack.close()

    app_import, deps_import, third_party = import_times()
    ours, floor = validation(args.validation_records)

    baseline = rows[0][2]
    print(
        f"\nthroughput: {n} payments; the sandbox behaves like Business Central online: "
        f"{latency * 1000:.0f} ms per operation, $batch operations one after another, {concurrent} requests "
        f"processed at once per identity and 95 queued; ledger: "
        f"{'Azure Table storage (Azurite)' if storage else 'in memory'}; limits "
        f"{'shared through blob leases in Azurite' if args.shared else 'per worker'}; {pinning}"
    )
    print(
        f"{'run':<24} {'journals':>8} {'payments/s':>10} {'capacity':>9} {'share':>6} {'x baseline':>10} "
        f"{'429s':>5} {'503/408/504':>11} {'with validation':>16} {'ledger trips':>12}  outcomes"
    )
    for name, journals, rate, with_checks, maximum, failed, kinds, trips in rows:
        checked = f"{with_checks:,.1f} ({with_checks / maximum:.1%})" if with_checks else "-"
        timeouts = failed[503] + failed[408] + failed[504]
        per_payment = "-" if trips is None else f"{trips:.2f}"
        print(
            f"{name:<24} {journals:>8} {rate:>10,.1f} {maximum:>9,.1f} {rate / maximum:>6.1%} "
            f"{rate / baseline:>10.2f} {failed[429]:>5} {timeouts:>11} {checked:>16} {per_payment:>12}  "
            f"{kinds or ''}"
        )
    print(
        "(payments/s: posting only, from the first request to the last answer, with a fresh client that "
        "fetches its token; 'with validation' adds validating the same records first, as every entry point "
        f"does. capacity = what the target can do: min(journals, {concurrent}) operations at a time, each "
        f"taking {latency * 1000:.0f} ms, a $batch operation like any other. The rate window (6,000 "
        "requests per 5 minutes per identity) is not reached by these runs; without $batch it would cap a "
        "sustained load at 20 payments/s. ledger trips = the ledger's storage round trips per payment.)"
    )
    print(
        f"\nimport: function_app {app_import * 1000:.0f} ms; its third-party packages alone "
        f"{deps_import * 1000:.0f} ms (ratio {app_import / deps_import:.2f}; {', '.join(third_party)})"
    )
    print(
        f"validation: {ours:,.0f} records/s through payments.model.check; {floor:,.0f} records/s through a "
        f"plain pydantic TypeAdapter of the same shape; the relay takes {floor / ours:.2f}x the floor's time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
