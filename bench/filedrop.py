"""File-drop benchmark: a CSV of N records dropped into Azurite, processed end to end (validated,
posted to the sandbox, reported, archived), with the worker's peak memory printed next to the file size.

Run: `.venv/bin/python -m bench.filedrop` (default sizes 10,000 and 100,000 records; `--sizes` to change).
Each size runs in a fresh worker process, so its peak RSS is its own. The sandbox runs in another
process (its stored payments are not counted), Azurite in a third. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_csv(records: int, invalid_every: int) -> bytes:
    rng = random.Random(records)
    lines = ["customerNumber,postingDate,documentNumber,externalDocumentNumber,amount,description"]
    for i in range(records):
        amount = (
            f"-{rng.randint(1, 9_999_999)}.{rng.randint(0, 99):02d}"  # a credit, as Business Central posts it
        )
        if invalid_every and i % invalid_every == invalid_every - 1:
            amount = amount.replace(".", ",")  # a decimal comma: reported, not posted
        number = ("10000", "20000", "30000", "40000")[i % 4]
        lines.append(f"{number},2026-11-20,D-{i},BANK-{i:08d},{amount},Payment {i} for invoice {i + 100000}")
    return ("\r\n".join(lines) + "\r\n").encode()


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(drop, name: str) -> dict:
    """Process one inbox file in this process, measuring its peak RSS (VmHWM, reset first) and time."""
    baseline = rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    started = time.perf_counter()
    result = drop.process(name)
    elapsed = time.perf_counter() - started
    return {
        "baseline_kib": baseline,
        "peak_kib": rss_kib("VmHWM"),
        "seconds": elapsed,
        "totals": result.totals,
    }


def worker(args: argparse.Namespace) -> None:
    """One measured run, in its own process: upload, process, print a JSON line of figures."""
    from azure.storage.blob import BlobServiceClient

    from payments import runtime

    os.environ.update(
        {
            "AzureWebJobsStorage": args.connection,
            "PAYMENTS_TARGET": "businesscentral",
            "PAYMENTS_API_BASE_URL": args.base_url,
            "IDENTITY_ENDPOINT": args.identity,
            "IDENTITY_HEADER": args.identity_header,
        }
    )
    data = make_csv(args.records, args.invalid_every)
    service = BlobServiceClient.from_connection_string(args.connection)
    inbox = os.environ.get("PAYMENTS_INBOX_CONTAINER", "payments-inbox")
    try:
        service.create_container(inbox)
    except Exception:
        pass
    from sandbox import SANDBOX_COMPANY_ID, SANDBOX_JOURNAL_ID

    name = f"{SANDBOX_COMPANY_ID}/{SANDBOX_JOURNAL_ID}/bench-{args.records}.csv"
    service.get_blob_client(inbox, name).upload_blob(data, overwrite=True)
    drop = runtime.file_drop()
    del data
    print(json.dumps({"records": args.records, **measured(drop, name)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    parser.add_argument(
        "--invalid-every", type=int, default=100, help="every n-th record is invalid (0: none)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connection", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--identity", help=argparse.SUPPRESS)
    parser.add_argument("--identity-header", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    from devtools.azurite import running_azurite
    from sandbox import SANDBOX_TOKEN_HEADER

    sizes = [int(s) for s in args.sizes.split(",")]
    # This benchmark measures the relay's memory and its own cost per record with a sandbox that answers
    # at once, which would meet Business Central's rate window (6,000 requests per 5 minutes) within
    # seconds: the window is opened up here, on both sides (bench.throughput measures against it).
    os.environ["PAYMENTS_TARGET_RATE_REQUESTS"] = "100000000"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--rate", "100000000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = ""
        assert sandbox.stdout is not None
        for line in sandbox.stdout:
            if "http://127.0.0.1:" in line:
                url = "http://127.0.0.1:" + line.split("http://127.0.0.1:", 1)[1].split()[0].split("/")[0]
                break
        if not url:
            raise SystemExit("the sandbox did not start")
        print(f"sandbox at {url}; starting Azurite ...", file=sys.stderr)
        rows = []
        with running_azurite() as azurite:
            for records in sizes:
                size = len(make_csv(records, args.invalid_every))
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.filedrop",
                        "--worker",
                        "--records",
                        str(records),
                        "--invalid-every",
                        str(args.invalid_every),
                        "--connection",
                        azurite.connection_string,
                        "--base-url",
                        url + "/v2.0/sandbox-tenant/sandbox/api/v2.0",
                        "--identity",
                        url + "/msi/token",
                        "--identity-header",
                        SANDBOX_TOKEN_HEADER,
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                figures["file_bytes"] = size
                rows.append(figures)
                print(f"  {records} records done in {figures['seconds']:.1f} s", file=sys.stderr)
    finally:
        sandbox.terminate()
        sandbox.wait(10)

    concurrency = os.environ.get("PAYMENTS_MAX_CONCURRENCY", "5")
    batch = os.environ.get("PAYMENTS_BATCH_SIZE", "0")
    print(
        f"\nfile-drop benchmark (CSV, Azurite + sandbox on loopback, ledger in Azurite Table storage; "
        f"PAYMENTS_MAX_CONCURRENCY={concurrency}, PAYMENTS_BATCH_SIZE={batch})"
    )
    print(
        f"{'records':>9} {'file MiB':>9} {'baseline MiB':>13} {'peak MiB':>9} {'peak-base':>10} {'seconds':>8} {'rec/s':>7}  totals"
    )
    for r in rows:
        mib = 1 / 1024
        print(
            f"{r['records']:>9} {r['file_bytes'] / 2**20:>9.1f} {r['baseline_kib'] * mib:>13.1f} "
            f"{r['peak_kib'] * mib:>9.1f} {(r['peak_kib'] - r['baseline_kib']) * mib:>10.1f} "
            f"{r['seconds']:>8.1f} {r['records'] / r['seconds']:>7.0f}  {r['totals']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
