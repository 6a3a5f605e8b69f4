"""Bank statement benchmark: cash application on a labelled set, posted-once across re-reads, and
memory for a large camt.053, each through the real file drop (Azurite on loopback, the sandbox as
Business Central with the generated customers and invoices).

Run: `.venv/bin/python -m bench.bank` (after `./dev setup`). Options: `--credits` (labelled set size),
`--sizes` (camt.053 transactions for the memory runs), `--seed`.

1. **Cash application**: `tests.support.bankgen` writes a world (customers, open invoices, the payer
   IBAN map) and credits written the ways payers write them, each labelled with the invoices it was
   meant to pay and whether a careful matcher may apply it on its own. The relay processes the
   statement; the table compares what it posted with the labels.
2. **Posted once**: an intraday camt.054 of part of the day's credits, then the day's camt.053, then the
   camt.053 again: the payments at the target after each.
3. **Memory**: a streamed camt.053 of each size in a fresh worker process; its peak RSS next to the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "DE89370400440532013000"


def _environment(connection: str, base_url: str, identity: str, header: str, config: str) -> None:
    os.environ.update(
        {
            "AzureWebJobsStorage": connection,
            "PAYMENTS_TARGET": "businesscentral",
            "PAYMENTS_API_BASE_URL": base_url,
            "IDENTITY_ENDPOINT": identity,
            "IDENTITY_HEADER": header,
            "PAYMENTS_CONFIG_CONTAINER": config,
            "PAYMENTS_BATCH_SIZE": "100",
            "PAYMENTS_INBOUND_AUTH": "none",
        }
    )


def _drop(service, name: str, data: bytes) -> dict:
    """Upload into the inbox, process as the blob function would, return the report."""
    from payments import runtime

    settings = runtime.pipeline().client.settings
    service.get_blob_client(settings.inbox_container, name).upload_blob(data, overwrite=True)
    result = runtime.file_drop().process(name)
    container, _, blob = (result.report or "").partition("/")
    return json.loads(service.get_blob_client(container, blob).download_blob().readall())


def _by_credit(report: dict, key_of_ref: dict[str, str]) -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = defaultdict(list)
    for r in report["records"]:
        key = r.get("key", "").split(".", 1)[0]
        if key in key_of_ref:
            records[key_of_ref[key]].append(r)
    return records


def labelled(sandbox, service, args) -> list[str]:
    """Cash application against the labels: what was applied, correctly or not, and what was reviewed."""
    import io

    from payments import runtime
    from payments.bank import reader_for
    from sandbox import SANDBOX_COMPANY_ID as C
    from tests.support import bankgen

    world = bankgen.world(args.seed, customers=300, invoices=1500)
    bankgen.seed_sandbox(sandbox, world, C)
    service.get_blob_client(os.environ["PAYMENTS_CONFIG_CONTAINER"], "payers.csv").upload_blob(
        bankgen.payers_csv(world), overwrite=True
    )
    journal = sandbox.add_journal(name="BANK")
    credits = bankgen.credits(world, args.credits, args.seed)
    data = bankgen.camt053(credits, account_iban=ACCOUNT, statement_id="LABELLED", debits=25, pending=0)
    # The statement lists the credits in their order (debits among them): the n-th credit read is the
    # n-th labelled credit, which its amount confirms.
    read = [t for t in reader_for("camt", io.BytesIO(data), "x").transactions() if t.direction == "credit"]
    assert [t.amount for t in read] == [c.amount for c in credits], (
        "the statement does not list the credits in order"
    )
    by_ref = {str(n): c for n, c in enumerate(credits)}
    key_of_ref = {t.key: str(n) for n, t in enumerate(read)}
    runtime.reset()
    started = time.perf_counter()
    report = _drop(service, f"{C}/{journal}/labelled.xml", data)
    seconds = time.perf_counter() - started
    per_credit = _by_credit(report, key_of_ref)
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    wrong: list[str] = []
    missed: Counter[str] = Counter()
    taken: set[str] = set()  # invoices the relay applied earlier in the file (in the statement's order)
    for ref, credit in by_ref.items():
        records = per_credit.get(ref, [])
        may = credit.auto_ok and not taken & set(credit.intended)
        if credit.auto_ok and not may:
            rows[credit.case]["taken earlier"] += 1
        outcome = "missing"
        created = [r for r in records if r["outcome"] == "created"]
        if created and len(created) == len(records):
            applied = tuple(sorted(r["invoice"] for r in created if r.get("invoice")))
            taken.update(applied)
            if not applied:
                outcome = "on account"
            elif applied == tuple(sorted(credit.intended)):
                outcome = "applied, correct"
                rows[credit.case]["may, applied"] += may
            else:
                outcome = "applied, WRONG"
                wrong.append(f"{credit.case}: applied {applied}, meant {credit.intended}")
        elif records and all(r["outcome"] == "review" for r in records):
            outcome = "review"
            if may:
                missed[f"{credit.case}: {records[0].get('reason', '')[:90]}"] += 1
        elif records:
            outcome = "/".join(sorted({r["outcome"] for r in records}))
        rows[credit.case][outcome] += 1
        rows[credit.case]["credits"] += 1
        rows[credit.case]["auto_ok"] += may
    total: Counter[str] = Counter()
    for counts in rows.values():
        total.update(counts)
    applied = total["applied, correct"] + total["applied, WRONG"]
    n = total["credits"]
    lines = [
        f"cash application: {n} labelled credits ({len(world.customers)} customers, "
        f"{len(world.invoices)} invoices, payer map of {len(world.ibans)} IBANs), processed in {seconds:.1f} s",
        "",
        "| case | credits | may auto-apply | its invoice taken earlier in the file | auto-applied | correct | wrong "
        "| on account | review |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in sorted(rows, key=lambda c: -rows[c]["credits"]):
        r = rows[case]
        lines.append(
            f"| {case} | {r['credits']} | {r['auto_ok']} | {r['taken earlier']} | "
            f"{r['applied, correct'] + r['applied, WRONG']} | "
            f"{r['applied, correct']} | {r['applied, WRONG']} | {r['on account']} | {r['review']} |"
        )
    lines += [
        f"| **all** | {n} | {total['auto_ok']} | {total['taken earlier']} | {applied} | {total['applied, correct']} | "
        f"{total['applied, WRONG']} | {total['on account']} | {total['review']} |",
        "",
        f"- auto-applied: {applied / n:.1%} of credits; of the {total['auto_ok']} a careful matcher may apply, "
        f"{total['may, applied']} ({total['may, applied'] / max(total['auto_ok'], 1):.1%})",
        f"- correct among auto-applied: {total['applied, correct'] / max(applied, 1):.2%}",
        f"- sent to review: {total['review'] / n:.1%}",
        f"- anything else: {dict((k, v) for k, v in total.items() if k not in _KNOWN)}",
    ]
    lines += [f"  - WRONG: {w}" for w in wrong[:20]]
    if missed:
        lines.append("- reviewed though a careful matcher may apply them, by reason:")
        lines += [f"  - {count} × {reason}" for reason, count in missed.most_common(8)]
    return lines


_KNOWN = {
    "credits",
    "auto_ok",
    "taken earlier",
    "may, applied",
    "applied, correct",
    "applied, WRONG",
    "on account",
    "review",
}


def posted_once(sandbox, service, args) -> list[str]:
    """An intraday camt.054 of some credits, the day's camt.053 of all, the camt.053 again."""
    from payments import runtime
    from sandbox import SANDBOX_COMPANY_ID as C
    from tests.support import bankgen

    world = bankgen.world(args.seed + 1, customers=300, invoices=1500)
    bankgen.seed_sandbox(sandbox, world, C)
    journal = sandbox.add_journal(name="ONCE")
    credits = bankgen.credits(world, args.credits, args.seed + 1)
    part = credits[: len(credits) // 3]
    steps = [
        (
            "camt.054 (intraday, a third of the credits)",
            bankgen.camt054(part, account_iban=ACCOUNT, notification_id="N1"),
        ),
        (
            "camt.053 (the day, every credit)",
            bankgen.camt053(credits, account_iban=ACCOUNT, statement_id="S1"),
        ),
        ("the same camt.053 again", bankgen.camt053(credits, account_iban=ACCOUNT, statement_id="S1")),
    ]
    lines = [
        "posted once: each step's file dropped into the inbox and processed",
        "",
        "| step | created | posted before | review | payments at the target | payment lines per bank reference (most) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for n, (label, data) in enumerate(steps):
        runtime.reset()
        report = _drop(service, f"{C}/{journal}/step-{n}.xml", data)
        summary = report["statements"][0]
        lines_at_target = sandbox.payments(journal_id=journal)
        per_credit = Counter(p["externalDocumentNumber"] for p in lines_at_target)
        # A credit paying several invoices is several lines of one reference: count credits, not lines.
        parts = Counter((p["externalDocumentNumber"], p["appliesToInvoiceNumber"]) for p in lines_at_target)
        lines.append(
            f"| {label} | {summary['applied']['count'] + summary['onAccount']['count']} | "
            f"{summary['postedBefore']['count']} | {summary['review']['count']} | {len(lines_at_target)} | "
            f"{max(per_credit.values(), default=0)} (same invoice twice: {sum(1 for v in parts.values() if v > 1)}) |"
        )
    return [*lines, "", *register_cost()]


def register_cost() -> list[str]:
    """What the register of bank credits holds after the runs above: rows and bytes per credit (each
    entity's properties as JSON: about what Table storage bills)."""
    from azure.data.tables import TableClient

    from payments import runtime

    settings = runtime.pipeline().client.settings
    table = TableClient.from_connection_string(settings.storage_connection_string or "", settings.bank_table)
    rows = list(table.list_entities())
    credits = sum(1 for r in rows if r["RowKey"].startswith("c|"))
    size = sum(len(json.dumps({k: str(v) for k, v in r.items()}).encode()) for r in rows)
    return [
        f"register (PAYMENTS_BANK_TABLE): {credits} credits in {len(rows)} rows, {size / 1024:.0f} KiB; "
        f"{len(rows) / max(credits, 1):.1f} rows and {size / max(credits, 1):.0f} bytes per credit"
    ]


def worker(args: argparse.Namespace) -> None:
    """One memory run in its own process: write the file (streamed), upload, process, print figures."""
    from azure.storage.blob import BlobServiceClient

    from bench.filedrop import measured
    from payments import runtime
    from sandbox import SANDBOX_COMPANY_ID as C
    from tests.support import bankgen

    _environment(args.connection, args.base_url, args.identity, args.identity_header, args.config)
    service = BlobServiceClient.from_connection_string(args.connection)
    settings = runtime.pipeline().client.settings
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.xml"
        size = bankgen.write_camt053(path, args.records, seed=args.seed, account_iban=ACCOUNT)
        name = f"{C}/{args.journal}/big-{args.records}.xml"
        with path.open("rb") as stream:
            service.get_blob_client(settings.inbox_container, name).upload_blob(stream, overwrite=True)
    print(json.dumps({"records": args.records, "file_bytes": size, **measured(runtime.file_drop(), name)}))


def memory(sandbox, args, connection: str) -> list[str]:
    from sandbox import SANDBOX_COMPANY_ID as C
    from sandbox import SANDBOX_TOKEN_HEADER
    from tests.support import bankgen

    bankgen.seed_sandbox(sandbox, bankgen.world(args.seed), C)  # the world write_camt053 draws from
    rows = []
    for records in [int(s) for s in args.sizes.split(",")]:
        journal = sandbox.add_journal(name=f"M{records}"[:10])
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.bank",
                "--worker",
                "--records",
                str(records),
                "--seed",
                str(args.seed),
                "--connection",
                connection,
                "--base-url",
                sandbox.bc_base_url,
                "--identity",
                sandbox.identity_endpoint,
                "--identity-header",
                SANDBOX_TOKEN_HEADER,
                "--config",
                os.environ["PAYMENTS_CONFIG_CONTAINER"],
                "--journal",
                journal,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"the worker failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {records} transactions done in {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    lines = [
        "memory: a streamed camt.053 processed by a fresh worker (payer map, books of 300 customers and 1,500 "
        "invoices, $batch of 100, ledger in Azurite)",
        "",
        "| transactions | file MiB | baseline MiB | peak MiB | peak - baseline | seconds | totals |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        mib = 1 / 1024
        lines.append(
            f"| {r['records']} | {r['file_bytes'] / 2**20:.1f} | {r['baseline_kib'] * mib:.1f} | "
            f"{r['peak_kib'] * mib:.1f} | {(r['peak_kib'] - r['baseline_kib']) * mib:.1f} | {r['seconds']:.1f} | "
            f"{r['totals']} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credits", type=int, default=1500, help="labelled credits (cash application)")
    parser.add_argument("--sizes", default="5000,50000", help="camt.053 transactions for the memory runs")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: labelled,once,memory")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, help=argparse.SUPPRESS)
    for hidden in ("--connection", "--base-url", "--identity", "--identity-header", "--config", "--journal"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    from azure.storage.blob import BlobServiceClient

    from devtools.azurite import running_azurite
    from sandbox import SANDBOX_TOKEN_HEADER, Sandbox

    skip = set(args.skip.split(","))
    out: list[str] = []
    with Sandbox() as sandbox, running_azurite() as azurite:
        _environment(
            azurite.connection_string,
            sandbox.bc_base_url,
            sandbox.identity_endpoint,
            SANDBOX_TOKEN_HEADER,
            "payments-config",
        )
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        for container in ("payments-inbox", "payments-config"):
            service.create_container(container)
        if "labelled" not in skip:
            out += [*labelled(sandbox, service, args), ""]
        if "once" not in skip:
            out += [*posted_once(sandbox, service, args), ""]
        if "memory" not in skip:
            out += memory(sandbox, args, azurite.connection_string)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
