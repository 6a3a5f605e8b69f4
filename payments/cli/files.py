"""`validate` and `post`: a payment file (or a bank statement, offline) checked record by record, and
posted; `sandbox`: the development sandbox in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from types import ModuleType
from typing import TextIO

from ..bank import HEAD_BYTES
from ..bank import kind_of as bank_kind
from ..errors import InputError
from ..ledger import Ledger, MemoryLedgerStore
from ..model import Checked, CustomerPayment, FieldError, Rules
from ..readers import NO_RECORDS, Record, check_record, read_file
from ..runtime import make_ledger
from ..settings import Settings
from .common import printable, settings_or_exit

PROGRESS_THRESHOLD = 300  # records; smaller files finish before a person would wonder


DETAIL_LIMIT = 50  # list every record's outcome up to this many; only failures beyond


@dataclasses.dataclass(slots=True)
class Row:
    """One record's line in the report the command prints."""

    location: str
    outcome: str
    detail: str


def _checked(records: Iterator[Record], rules: Rules) -> Iterator[tuple[Record, Checked]]:
    text_rules = dataclasses.replace(rules, from_text=True)
    for record in records:
        yield record, check_record(record, rules, text_rules)


def _explain(errors: Sequence[FieldError]) -> str:
    return "; ".join(f"{e.pointer or '(record)'}: {e.detail}" for e in errors)


def _print_table(rows: list[Row], out: TextIO) -> None:
    failures = [r for r in rows if r.outcome not in ("created", "skipped", "valid")]
    shown = rows if len(rows) <= DETAIL_LIMIT else failures
    if shown:
        width = max(len(r.location) for r in shown)
        for r in shown:
            print(f"  {r.location:<{width}}  {r.outcome:<11}  {printable(r.detail)}", file=out)
        if shown is failures and len(rows) > len(failures):
            print(f"  ({len(rows) - len(failures)} successful records not listed)", file=out)
    counts = Counter(r.outcome for r in rows)
    print("\n  outcome      records", file=out)
    for outcome in (
        "valid",
        "created",
        "skipped",
        "invalid",
        "rejected",
        "denied",
        "unavailable",
        "ambiguous",
        "in-flight",
        "conflict",
    ):
        if counts.get(outcome):
            print(f"  {outcome:<11}  {counts[outcome]:>7}", file=out)
    print(f"  {'total':<11}  {len(rows):>7}", file=out)


def _rules(args: argparse.Namespace, settings: Settings) -> Rules:
    return Rules(
        amount_decimals=args.decimals if args.decimals is not None else settings.amount_decimals,
        target=args.target or settings.target,
        amount_sign=settings.amount_sign,
    )


def _validate_statement(path: str, kind: str, out: TextIO) -> int:
    """A bank statement read offline: per statement what the relay would see, tied to the file's own
    totals, and every transaction it could not trust. No books are read: matching needs the target."""
    from ..bank import reader_for
    from ..bank.matching import money
    from ..bank.statement import mask

    credits: dict[int, list[Decimal]] = {}
    skipped: dict[int, Counter[str]] = {}
    doubts = []
    with open(path, "rb") as stream:
        reader = reader_for(kind, stream, os.path.basename(path))
        for tx in reader.transactions():
            reason = tx.skip_reason
            if reason is not None:
                skipped.setdefault(tx.statement, Counter())[reason] += 1
            else:
                credits.setdefault(tx.statement, []).append(tx.amount or Decimal(0))
                if tx.problem:
                    doubts.append(Row(tx.location, "review", tx.problem))
    print(f"{printable(path)}: {reader.format}, {len(reader.statements)} statement(s)", file=out)
    ok = not doubts
    for n, st in enumerate(reader.statements):
        amounts = credits.get(n, [])
        print(
            f"  statement {n + 1} {printable(st.id)} account {mask(st.account)} {st.currency}: "
            f"{st.entries} entries, {len(amounts)} credits summing to {money(sum(amounts, Decimal(0)))}",
            file=out,
        )
        for reason, count in sorted(skipped.get(n, Counter()).items()):
            print(f"    skipped ({reason}): {count}", file=out)
        for check in st.checks.values():
            print(f"    {printable(check)}", file=out)
            ok = ok and "DIFFERS" not in check
    if doubts:
        _print_table(doubts, out)
    return 0 if ok else 1


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    settings = settings_or_exit()
    with open(args.file, "rb") as stream:
        kind = bank_kind(stream.read(HEAD_BYTES))
    if kind is not None:
        return _validate_statement(args.file, kind, out)
    rows = []
    for record, checked in _checked(read_file(args.file), _rules(args, settings)):
        rows.append(Row(record.location, "valid" if checked.ok else "invalid", _explain(checked.errors)))
    if not rows:
        raise InputError(NO_RECORDS)
    print(f"{printable(args.file)}: {len(rows)} records", file=out)
    _print_table(rows, out)
    return 0 if all(r.outcome == "valid" for r in rows) else 1


def development_sandbox() -> ModuleType:
    """The sandbox of the target API: the `sandbox` package beside `payments` in a source checkout.
    Imported only when asked for; a deployment leaves it out, and then this says so."""
    try:
        import sandbox
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox":
            raise
        raise SystemExit(
            "error: the development sandbox is not here: it is the `sandbox` package of a source checkout "
            "(run this from the repository root), and it is never deployed"
        ) from None
    return sandbox


@contextlib.contextmanager
def _sandbox_environment(target: str) -> Iterator[tuple[Settings, str, str]]:
    """Start a sandbox and point the real managed identity credential at its token endpoint."""
    sb = development_sandbox()

    with sb.Sandbox() as box:
        saved = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
        os.environ["IDENTITY_ENDPOINT"] = box.identity_endpoint
        os.environ["IDENTITY_HEADER"] = sb.SANDBOX_TOKEN_HEADER
        try:
            base = box.graph_base_url if target == "graph" else box.bc_base_url
            settings = settings_or_exit(target=target, api_base_url=base, credential="managed")
            print(f"sandbox (development only) listening at {box.url}", file=sys.stderr)
            yield settings, sb.SANDBOX_COMPANY_ID, sb.SANDBOX_JOURNAL_ID
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _post(
    args: argparse.Namespace,
    settings: Settings,
    company: str,
    journal: str,
    out: TextIO,
    ledger: Ledger | None,
) -> int:
    from ..credentials import target_credential
    from ..outbound import TargetClient
    from ..posting import Pipeline

    rules = _rules(args, settings)
    rows: list[Row] = []
    valid: list[tuple[int, CustomerPayment]] = []
    for record, checked in _checked(read_file(args.file), rules):
        rows.append(Row(record.location, "invalid", _explain(checked.errors)))
        if checked.payment is not None:
            valid.append((len(rows) - 1, checked.payment))
    if not rows:
        raise InputError(NO_RECORDS)
    pipeline = Pipeline(TargetClient(settings, target_credential(settings)), ledger)
    total = len(valid)
    show_progress = total > PROGRESS_THRESHOLD
    started = last = time.monotonic()

    done = 0

    def progress(_index: int, _outcome: object) -> None:
        # Called once per payment as it completes (in any order, from the posting workers).
        nonlocal last, done
        done += 1
        now = time.monotonic()
        if show_progress and (now - last >= 1.0 or done == total):
            last = now
            rate = done / max(now - started, 1e-9)
            print(f"\rposted {done}/{total} ({rate:.0f}/s)", end="", file=sys.stderr, flush=True)

    try:
        outcomes = pipeline.post_all(company, journal, [p for _, p in valid], progress=progress)
    finally:
        pipeline.client.close()
    if show_progress:
        print(file=sys.stderr)
    for (row_index, _), outcome in zip(valid, outcomes, strict=True):
        row = rows[row_index]
        row.outcome = outcome.kind
        if outcome.ok and outcome.created is not None:
            created = outcome.created
            row.detail = (
                f"id {created.get('id')} line {created.get('lineNumber')} amount {created.get('amount')}"
            )
            if outcome.kind == "skipped":
                row.detail = f"{outcome.note}: {row.detail}"
        elif outcome.kind in ("in-flight", "conflict"):
            row.detail = outcome.note or ""
        elif outcome.error is not None:
            code = getattr(outcome.error, "code", None)
            row.detail = f"{code + ': ' if code else ''}{outcome.error.message}"
    print(
        f"{printable(args.file)}: {len(rows)} records to company {printable(company)}, "
        f"journal {printable(journal)}",
        file=out,
    )
    if rules.amount_sign == "positive":
        print("  amounts written as money received were sent negated (PAYMENTS_AMOUNT_SIGN)", file=out)
    _print_table(rows, out)
    return 0 if all(r.outcome in ("created", "skipped") for r in rows) else 1


def cmd_post(args: argparse.Namespace, out: TextIO) -> int:
    if args.sandbox:
        target = args.target or os.environ.get("PAYMENTS_TARGET", "graph")
        with _sandbox_environment(target) as (settings, company, journal):
            # The sandbox lives only as long as this command: so does its ledger.
            ledger = Ledger(MemoryLedgerStore())
            return _post(args, settings, args.company or company, args.journal or journal, out, ledger)
    if not (args.company and args.journal):
        raise SystemExit("error: --company and --journal are required (or use --sandbox)")
    settings = settings_or_exit()
    ledger = make_ledger(settings)
    if ledger is None:
        if not args.allow_duplicates:
            raise SystemExit(
                "error: no ledger is configured, so nothing would stop this file's payments from being "
                "created again if it is posted twice (or resent after a failure). Configure the ledger "
                "(AzureWebJobsStorage__tableServiceUri with an identity that may write it, or locally "
                "AzureWebJobsStorage), or pass --allow-duplicates if duplicates are acceptable"
            )
        print(
            "warning: --allow-duplicates: no ledger; posting this file again creates every payment again",
            file=sys.stderr,
        )
    return _post(args, settings, args.company, args.journal, out, ledger)


def cmd_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    argv = ["--port", str(args.port), "--latency", str(args.latency)]
    return int(development_sandbox().main(argv))
