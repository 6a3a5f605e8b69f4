"""Throughput benchmark: 5,000 payments against a sandbox that enforces a latency and a concurrency
cap (excess requests get 429), for a plain sequential `requests` loop, the relay without `$batch`
and the relay with `$batch`; plus import time and validation throughput.

Run: `.venv/bin/python -m bench.throughput` (`--payments`, `--latency`, `--cap`, `--batch` to vary).
The sandbox runs in its own process on 127.0.0.1; the relay uses its real client, the real
ManagedIdentityCredential (against the sandbox's token endpoint) and the exactly-once ledger
(in-memory store: the protocol is the same as in production, the storage round-trips are not).
The sandbox and the relay are pinned to different CPUs (`--no-pin` to leave them be); the short
`$batch` case runs `--repeats` times and its median is shown with every run's figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_sandbox(latency: float, cap: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--concurrency-limit",
            str(cap),
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


def sequential_baseline(url: str, items: list[dict]) -> tuple[float, int]:
    """What a user would write: one POST after another with requests (429s counted, not retried)."""
    import requests

    from payments import codec
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J

    endpoint = f"{url}/v2.0/sandbox-tenant/sandbox/api/v2.0/companies({C})/customerPaymentJournals({J})/customerPayments"
    throttled = 0
    started = time.perf_counter()
    with requests.Session() as session:
        for item in items:
            r = session.post(
                endpoint,
                data=codec.dumpb(item),
                headers={"Authorization": "Bearer baseline", "Content-Type": "application/json"},
                timeout=30,
            )
            throttled += r.status_code == 429
    return time.perf_counter() - started, throttled


def sandbox_service_time(url: str, batch: int, rounds: int = 10) -> float:
    """Median seconds one $batch of `batch` payments takes a sandbox started with no latency (its work
    plus the loopback exchange), prebuilt bodies sent one at a time: what has to fit in the latency."""
    import requests

    from payments import codec
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J

    item_url = f"companies({C})/customerPaymentJournals({J})/customerPayments"
    bodies = [
        codec.dumpb(
            {
                "requests": [
                    {
                        "id": str(i),
                        "method": "POST",
                        "url": item_url,
                        "headers": {"Content-Type": "application/json"},
                        "body": item,
                    }
                    for i, item in enumerate(records(batch, f"SVC{r}"))
                ]
            }
        )
        for r in range(rounds)
    ]
    headers = {"Authorization": "Bearer service-time", "Content-Type": "application/json"}
    with requests.Session() as session:
        t = time.perf_counter()
        session.post(
            f"{url}/v2.0/sandbox-tenant/sandbox/api/v2.0/$batch", data=bodies[0], headers=headers, timeout=30
        )
        times = []
        for body in bodies[1:]:
            t = time.perf_counter()
            session.post(
                f"{url}/v2.0/sandbox-tenant/sandbox/api/v2.0/$batch", data=body, headers=headers, timeout=30
            )
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def relay_run(
    url: str, items: list[dict], batch: int, concurrency: int
) -> tuple[float, float, int, dict[str, int]]:
    """Validate, then post, as every entry point does; returns (validation seconds, posting seconds,
    429s, outcome kinds). A fresh client each run: its first request fetches the token."""
    from collections import Counter

    from payments.credentials import target_credential
    from payments.ledger import Ledger, MemoryLedgerStore
    from payments.model import check
    from payments.posting import Pipeline
    from payments.settings import Settings
    from payments.target import TargetClient
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_JOURNAL_ID as J
    from sandbox import SANDBOX_TOKEN_HEADER

    os.environ["IDENTITY_ENDPOINT"] = url + "/msi/token"
    os.environ["IDENTITY_HEADER"] = SANDBOX_TOKEN_HEADER
    settings = Settings(
        target="businesscentral",
        api_base_url=url + "/v2.0/sandbox-tenant/sandbox/api/v2.0",
        max_concurrency=concurrency,
        batch_size=batch,
    )
    client = TargetClient(settings, target_credential(settings))
    pipeline = Pipeline(client, Ledger(MemoryLedgerStore()))
    started = time.perf_counter()
    payments = [check(item).payment for item in items]
    validated = time.perf_counter()
    outcomes = pipeline.post_all(C, J, payments)
    posted = time.perf_counter()
    client.close()
    return (
        validated - started,
        posted - validated,
        client.gate.throttled,
        dict(Counter(o.kind for o in outcomes)),
    )


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
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds each request to the sandbox takes (its own work included)",
    )
    parser.add_argument(
        "--cap", type=int, default=5, help="requests the sandbox serves at once (more get 429)"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="payments per $batch (Business Central: up to 100)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of the (short) $batch case; the median is shown"
    )
    parser.add_argument("--no-pin", action="store_true", help="leave the sandbox and the relay unpinned")
    parser.add_argument("--validation-records", type=int, default=100_000)
    args = parser.parse_args()
    n, latency, cap = args.payments, args.latency, args.cap

    # As function_app does at worker start: what is loaded now stays out of later collections.
    import azure.identity  # noqa: F401  (the credential's modules, as a warm worker has them)

    import payments.posting  # noqa: F401
    from payments import runtime

    runtime.freeze_startup_objects()

    rows = []
    proc, url = start_sandbox(latency, cap)
    try:
        pinning = "not pinned" if args.no_pin else pin_processes(proc.pid)
        print(
            f"sandbox {url}: latency {latency * 1000:.0f} ms, {cap} requests at once; {pinning}",
            file=sys.stderr,
        )
        seconds, throttled = sequential_baseline(url, records(n, "SEQ"))
        rows.append(("sequential requests loop", n / seconds, None, 1 / latency, throttled, None, ""))
        print(f"  baseline done in {seconds:.1f} s", file=sys.stderr)
        checking, posting, throttled, kinds = relay_run(url, records(n, "REL"), 0, cap)
        rows.append(
            ("relay, no $batch", n / posting, n / (checking + posting), cap / latency, throttled, kinds, "")
        )
        print(f"  relay without $batch done in {posting:.1f} s", file=sys.stderr)
        runs = []
        for r in range(args.repeats):
            runs.append(relay_run(url, records(n, f"BAT{r}"), args.batch, cap))
        runs.sort(key=lambda run: run[1])
        checking, posting, throttled, kinds = runs[len(runs) // 2]  # the median posting time
        spread = ", ".join(f"{n / run[1]:,.0f}" for run in runs)
        rows.append(
            (
                f"relay, $batch of {args.batch}",
                n / posting,
                n / (checking + posting),
                cap * args.batch / latency,
                sum(run[2] for run in runs),
                kinds,
                f"median of {len(runs)} runs: {spread}",
            )
        )
        print(f"  relay with $batch done ({args.repeats} runs)", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
    proc, url = start_sandbox(0.0, 1000)
    try:
        service = sandbox_service_time(url, args.batch)
    finally:
        proc.terminate()
        proc.wait(10)

    app_import, deps_import, third_party = import_times()
    ours, floor = validation(args.validation_records)

    baseline = rows[0][1]
    print(
        f"\nthroughput: {n} payments, sandbox latency {latency * 1000:.0f} ms, cap {cap} concurrent "
        f"(excess -> 429); {pinning}"
    )
    print(
        f"{'run':<24} {'payments/s':>10} {'theoretical max':>15} {'share':>6} {'x baseline':>10} {'429s':>5} "
        f"{'with validation':>16}  outcomes"
    )
    for name, rate, with_checks, maximum, throttled, kinds, note in rows:
        checked = f"{with_checks:,.0f} ({with_checks / maximum:.1%})" if with_checks else "-"
        print(
            f"{name:<24} {rate:>10,.1f} {maximum:>15,.1f} {rate / maximum:>6.1%} {rate / baseline:>10.1f} "
            f"{throttled:>5} {checked:>16}  {kinds or ''} {note}"
        )
    print(
        "(payments/s: posting only, from the first request to the last answer, with a fresh client that "
        "fetches its token; 'with validation' adds validating the same records first, as every entry "
        "point does. theoretical max = cap x payments per request / latency. With no latency, a $batch "
        f"of {args.batch} takes the sandbox {service * 1000:.1f} ms (its work and the loopback exchange): "
        "that happens inside its latency.)"
    )
    print(
        f"\nimport: function_app {app_import * 1000:.0f} ms; its third-party packages alone "
        f"{deps_import * 1000:.0f} ms (ratio {app_import / deps_import:.2f}; {', '.join(third_party)})"
    )
    print(
        f"validation: {ours:,.0f} records/s through payments.model.check; {floor:,.0f} records/s through a plain "
        f"pydantic TypeAdapter of the same shape; the relay takes {floor / ours:.2f}x the floor's time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
