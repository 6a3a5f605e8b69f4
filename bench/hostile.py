"""Hostile-input benchmark: every case of the hostile suite (`tests/support/hostile.py`) run once more,
each timed and its memory growth measured, through the webhook function, the blob function (Azurite)
and the command line; prints the table the issue asks for. The tests assert each case's answer; this
measures what each costs.

Run: `.venv/bin/python -m bench.hostile` (after `./dev setup`). Memory is the peak of Python's traced
allocations during the case (tracemalloc), which is where an input that is expanded (a number spelled
out, a line read whole) would show.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from contextlib import redirect_stderr
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measured(run: Callable[[], Any]) -> tuple[Any, float, float]:
    """The call's result, its seconds, and the peak of memory it allocated (MB)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = run()
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, seconds, peak / 1e6


def main() -> int:
    from devtools.azurite import running_azurite
    from payments import runtime
    from sandbox import SANDBOX_TOKEN_HEADER, Sandbox
    from tests.support.filedrop import blobs, configure_storage, deliver, report_of, upload
    from tests.support.hostile import FILE_CASES, LARGE_FILE_CASES, MANY_ITEM_CASES, WEBHOOK_CASES
    from tests.support.webhook import call

    rows: dict[tuple[str, str], list[tuple[str, str, bool, float, float]]] = defaultdict(list)

    def env(**settings: str) -> None:
        for key, value in settings.items():
            os.environ[key] = value
        runtime.reset()

    with Sandbox() as sandbox, running_azurite() as azurite:
        os.environ.update(
            IDENTITY_ENDPOINT=sandbox.identity_endpoint,
            IDENTITY_HEADER=SANDBOX_TOKEN_HEADER,
            PAYMENTS_TARGET="businesscentral",
            PAYMENTS_API_BASE_URL=sandbox.bc_base_url,
            PAYMENTS_TARGET_SETTLE_SECONDS="0",
            PAYMENTS_INBOUND_AUTH="none",  # the callers are not what is measured (without it: 500s)
        )
        runtime.reset()
        for case in WEBHOOK_CASES:
            sandbox.reset()
            (resp, _), seconds, mb = measured(
                lambda case=case: call(
                    case.body,
                    content_type=case.content_type,
                    company=case.company,
                    journal=case.journal,
                    headers=case.headers,
                )
            )
            text = resp.get_body().decode()
            ok = resp.status_code == case.status and resp.status_code < 500 and "Traceback" not in text
            rows[("webhook", case.category)].append((case.name, str(resp.status_code), ok, seconds, mb))
        many: list[tuple[str, int, int, int, float, float]] = []
        for case in MANY_ITEM_CASES:
            sandbox.reset()
            (resp, _), seconds, mb = measured(lambda case=case: call(case.body))
            many.append((case.name, len(case.body), resp.status_code, len(resp.get_body()), seconds, mb))

        def set_env(_target: str = "businesscentral", **settings: str) -> None:
            env(PAYMENTS_TARGET="businesscentral", PAYMENTS_API_BASE_URL=sandbox.bc_base_url, **settings)

        from sandbox import SANDBOX_COMPANY_ID as C
        from sandbox import SANDBOX_JOURNAL_ID as J

        for case in FILE_CASES + LARGE_FILE_CASES:
            sandbox.reset()
            drop = configure_storage(set_env, azurite)
            name = upload(drop, f"{C}/{J}/{case.file}", case.content)
            _, seconds, mb = measured(lambda name=name, drop=drop: deliver(drop, name))
            report = report_of(drop, name)
            archived = blobs(drop, drop.inbox) == [] and any(b.startswith("failed/") for b in blobs(drop, drop.archive))
            answer = "file error" if report.get("error") else json.dumps(report["totals"], sort_keys=True)
            ok = report["status"] == "failed" and archived and (
                (case.error is not None and case.error in report.get("error", "")) or case.error is None
            )
            rows[("blob function", case.category)].append((case.name, answer, ok, seconds, mb))

        from payments.cli import main as cli

        with TemporaryDirectory() as tmp:
            for case in FILE_CASES + LARGE_FILE_CASES:
                path = Path(tmp) / case.file
                path.write_bytes(case.content)
                err = io.StringIO()
                with redirect_stderr(err):
                    code, seconds, mb = measured(lambda path=path: cli(["validate", str(path)], io.StringIO()))
                ok = code == (2 if case.error else 1) and "Traceback" not in err.getvalue()
                rows[("command line", case.category)].append((case.name, f"exit {code}", ok, seconds, mb))

    print("\nhostile input: each case once; time and peak traced memory per case")
    print(
        f"{'entry point':<14} {'category':<8} {'cases':>5} {'as expected':>11}  {'slowest case':<44} "
        f"{'s':>6}  {'largest memory case':<40} {'MB':>6}"
    )
    worst_s = worst_mb = 0.0
    total = expected = 0
    for (entry, category), cases in rows.items():
        slow = max(cases, key=lambda c: c[3])
        big = max(cases, key=lambda c: c[4])
        good = sum(1 for c in cases if c[2])
        total += len(cases)
        expected += good
        worst_s, worst_mb = max(worst_s, slow[3]), max(worst_mb, big[4])
        print(
            f"{entry:<14} {category:<8} {len(cases):>5} {good:>11}  {slow[0][:44]:<44} {slow[3]:>6.3f}  "
            f"{big[0][:40]:<40} {big[4]:>6.1f}"
        )
        for name, answer, ok, _, _ in cases:
            if not ok:
                print(f"    NOT AS EXPECTED: {name}: {answer}")
    print("\nwebhook bodies of 100,000 invalid items: the answer, its size, time and peak traced memory")
    print(f"{'body':<42} {'bytes':>9} {'status':>6} {'answer bytes':>12} {'s':>7} {'MB':>7}")
    for name, size, status, answer_size, seconds, mb in many:
        print(f"{name:<42} {size:>9,} {status:>6} {answer_size:>12,} {seconds:>7.3f} {mb:>7.1f}")
    print(
        f"\n{expected} of {total} cases as expected; slowest case {worst_s:.3f} s (goal < 1 s); "
        f"largest memory {worst_mb:.1f} MB (goal < 50 MB)"
    )
    return 0 if expected == total else 1


if __name__ == "__main__":
    sys.exit(main())
