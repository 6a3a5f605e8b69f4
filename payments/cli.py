"""`python -m payments`: validate a payment file offline, or post it (to the sandbox with --sandbox).

Exit codes: 0 every record succeeded, 1 some record failed (invalid, rejected, unavailable or
ambiguous), 2 the command itself could not run (bad arguments, settings, unreadable file).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from types import ModuleType
from typing import TextIO

from .bank import HEAD_BYTES
from .bank import kind_of as bank_kind
from .errors import InputError, SettingsError
from .ledger import Ledger, MemoryLedgerStore, Scope
from .model import Checked, CustomerPayment, FieldError, Rules
from .readers import NO_RECORDS, Record, check_record, read_file
from .runtime import make_ledger
from .settings import Settings, load_settings

PROGRESS_THRESHOLD = 300  # records; smaller files finish before a person would wonder
# Control characters (C0, DEL, C1) and bidirectional overrides in anything echoed (file names, CSV
# header cells, the target's messages) are shown escaped: printed raw they would drive the terminal.
_ESCAPES = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(text: object) -> str:
    """`text` with every control character written as its escape."""
    return str(text).translate(_ESCAPES)


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


def _settings_or_exit(**overrides: object) -> Settings:
    try:
        if overrides:
            return Settings(**overrides)  # type: ignore[arg-type]
        return load_settings()
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    except ValueError as exc:  # pydantic's report for explicit overrides
        raise SystemExit(f"error: invalid settings: {exc}") from None


def _rules(args: argparse.Namespace, settings: Settings) -> Rules:
    return Rules(
        amount_decimals=args.decimals if args.decimals is not None else settings.amount_decimals,
        target=args.target or settings.target,
        amount_sign=settings.amount_sign,
    )


def _validate_statement(path: str, kind: str, out: TextIO) -> int:
    """A bank statement read offline: per statement what the relay would see, tied to the file's own
    totals, and every transaction it could not trust. No books are read: matching needs the target."""
    from .bank import reader_for
    from .bank.matching import money
    from .bank.statement import mask

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
    settings = _settings_or_exit()
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


def _development_sandbox() -> ModuleType:
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
    sb = _development_sandbox()

    with sb.Sandbox() as box:
        saved = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
        os.environ["IDENTITY_ENDPOINT"] = box.identity_endpoint
        os.environ["IDENTITY_HEADER"] = sb.SANDBOX_TOKEN_HEADER
        try:
            base = box.graph_base_url if target == "graph" else box.bc_base_url
            settings = _settings_or_exit(target=target, api_base_url=base, credential="managed")
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
    from .credentials import target_credential
    from .outbound import TargetClient
    from .posting import Pipeline

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
    settings = _settings_or_exit()
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


def _ledger_or_exit() -> Ledger:
    ledger = make_ledger(_settings_or_exit())
    if ledger is None:
        raise SystemExit(
            "error: the ledger lives in the function's storage account: set "
            "AzureWebJobsStorage__tableServiceUri (with an identity that may read it) "
            "or, locally, AzureWebJobsStorage"
        )
    return ledger


def cmd_journal(args: argparse.Namespace, out: TextIO) -> int:
    """Post one journal now (page 30016's post action), only if it holds nothing but the relay's lines."""
    from .credentials import target_credential
    from .outbound import TargetClient
    from .posting.journal import post_journal

    settings = _settings_or_exit()
    ledger = _ledger_or_exit()
    client = TargetClient(settings, target_credential(settings))
    try:
        result = post_journal(client, ledger, args.company, args.journal)
    finally:
        client.close()
    if not result.ok:
        print(f"journal {args.journal} not posted: {result.refused}", file=sys.stderr)
        return 1
    adopted = f" ({result.adopted} recognised as the relay's payments first)" if result.adopted else ""
    print(f"journal {args.journal} posted: {result.posted} lines{adopted}", file=out)
    return 0


def cmd_ledger(args: argparse.Namespace, out: TextIO) -> int:
    ledger = _ledger_or_exit()
    if args.action == "list":
        entries = list(ledger.store.scan() if args.all else ledger.attention())
        now = ledger.clock()
        for e in entries:
            state = "stale claim" if e.is_stale(now) else e.state
            natural = " ".join(f"{k}={v}" for k, v in e.natural.items())
            print(
                f"{e.scope.company_id} {e.scope.journal_id} {e.key} {state:<11} "
                f"updated {e.updated_at:%Y-%m-%d %H:%M:%S} attempts {e.attempts} "
                f"{natural}{' target ' + e.target_id if e.target_id else ''}"
                f"{' from ' + e.caller if e.caller else ''}"
                f"{' — ' + e.error_message if e.error_message else ''}",
                file=out,
            )
        print(f"{len(entries)} entries{'' if args.all else ' need attention'}", file=out)
        return 0
    if args.action == "resolve":
        if not (args.company and args.journal and args.key) or (args.posted is None) == (not args.not_posted):
            raise SystemExit(
                "error: resolve needs --company, --journal, KEY and one of --posted ID / --not-posted"
            )
        try:
            ledger.resolve(Scope(args.company, args.journal), args.key, target_id=args.posted)
        except KeyError:
            raise SystemExit(f"error: no ledger entry {args.key} in that company and journal") from None
        verdict = (
            f"posted as {args.posted}" if args.posted else "not posted: it will be posted when sent again"
        )
        print(f"{args.key}: recorded {verdict}", file=out)
        return 0
    print(f"purged {ledger.purge()} entries older than the retention period", file=out)
    return 0


def cmd_inbox(args: argparse.Namespace, out: TextIO) -> int:
    """Stranded inbox files (older than PAYMENTS_REDRIVE_AFTER_SECONDS, or dead-lettered): list them, or
    process them as their events would have."""
    from .filedrop.redrive import redrive, stranded
    from .runtime import file_drop

    drop = file_drop()
    if args.action == "list":
        items = stranded(drop.service, drop.settings)
        for item in items:
            letters = f" (dead letters: {', '.join(item.dead_letters)})" if item.dead_letters else ""
            print(f"{printable(item.name)}  {item.why}{printable(letters)}", file=out)
        print(f"{len(items)} stranded files", file=out)
        return 0
    results = redrive(drop)
    for item, result in results:
        outcome = result.status if result else "busy: another worker holds it; left for it"
        print(f"{printable(item.name)}  {item.why}: {outcome}", file=out)
    print(f"{len(results)} stranded files re-driven", file=out)
    return 0 if all(r is not None and r.status != "failed" for _, r in results) else 1


def cmd_queue(args: argparse.Namespace, out: TextIO) -> int:
    """The work queue: its depth, its poison queue's, and the payments no poster has (stranded); or queue
    the stranded ones again, as the work_redrive timer does."""
    from datetime import timedelta

    from .runtime import pipeline, redrive_work
    from .work import QueuedPipeline

    queued = pipeline()
    if not isinstance(queued, QueuedPipeline):
        print("the work queue is off (PAYMENTS_WORK_QUEUE is not set): entry points post directly", file=out)
        return 2
    if args.action == "redrive":
        print(f"{redrive_work()} stranded payments queued again", file=out)
        return 0
    work, poison = queued.queue.depth()
    after = timedelta(seconds=queued.client.settings.redrive_after_seconds)
    stranded = list(queued.required_ledger.stranded(after))
    print(f"work queue {queued.queue.queue.queue_name}: {work} messages", file=out)
    print(f"poison queue {queued.queue.poison.queue_name}: {poison} messages", file=out)
    for entry in stranded:
        why = "accepted, no message seen" if entry.state == "queued" else "claim ran out (its poster died)"
        print(f"{printable(entry.key)}  {entry.scope.partition}  batch {entry.batch}: {why}", file=out)
    print(f"{len(stranded)} stranded payments", file=out)
    return 1 if poison or stranded else 0


def cmd_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    argv = ["--port", str(args.port), "--latency", str(args.latency)]
    return int(_development_sandbox().main(argv))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m payments", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log each request's outcome to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "file",
            help="JSON object, JSON array, {'value': [...]}, NDJSON or CSV; validate also reads bank "
            "statements (camt.052/053/054, MT940, BAI2)",
        )
        sp.add_argument("--target", choices=["graph", "businesscentral"], help="default: PAYMENTS_TARGET")
        sp.add_argument("--decimals", type=int, help="max decimal places; default PAYMENTS_AMOUNT_DECIMALS")

    v = sub.add_parser("validate", help="check every record offline and report each invalid one")
    common(v)
    v.set_defaults(run=cmd_validate)
    po = sub.add_parser("post", help="validate and post every valid record")
    common(po)
    po.add_argument("--company", help="company id (GUID)")
    po.add_argument("--journal", help="customer payment journal id (GUID)")
    po.add_argument("--sandbox", action="store_true", help="post to a local sandbox this command starts")
    po.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="post without a ledger (none configured): the same file posted twice creates duplicates",
    )
    po.set_defaults(run=cmd_post)
    lg = sub.add_parser(
        "ledger", help="list entries needing attention, resolve one by hand, or purge old ones"
    )
    lg.add_argument("action", choices=["list", "resolve", "purge"])
    lg.add_argument("key", nargs="?", help="the entry's key (resolve)")
    lg.add_argument("--all", action="store_true", help="list every entry, not only ambiguous and stale ones")
    lg.add_argument("--company", help="company id of the entry (resolve)")
    lg.add_argument("--journal", help="journal id of the entry (resolve)")
    lg.add_argument("--posted", metavar="ID", help="the payment exists at the target with this id")
    lg.add_argument("--not-posted", action="store_true", help="the payment does not exist at the target")
    lg.set_defaults(run=cmd_ledger)
    ib = sub.add_parser(
        "inbox", help="list inbox files no worker took (old or dead-lettered), or process them now"
    )
    ib.add_argument("action", choices=["list", "redrive"])
    ib.set_defaults(run=cmd_inbox)
    qu = sub.add_parser(
        "queue",
        help="the work queue: status (depth, poison depth, stranded payments) or redrive (queue them again)",
    )
    qu.add_argument("action", choices=["status", "redrive"])
    qu.set_defaults(run=cmd_queue)
    jo = sub.add_parser(
        "journal",
        help="post a journal in Business Central now, when it holds only lines the relay created",
    )
    jo.add_argument("action", choices=["post"])
    jo.add_argument("--company", required=True, help="company id (GUID)")
    jo.add_argument("--journal", required=True, help="customer payment journal id (GUID)")
    jo.set_defaults(run=cmd_journal)
    sb = sub.add_parser("sandbox", help="run the development sandbox of the target API in the foreground")
    sb.add_argument("--port", type=int, default=8400)
    sb.add_argument("--latency", type=float, default=0.0, help="seconds of delay per request")
    sb.set_defaults(run=cmd_sandbox)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    from .telemetry import ENTRY_POINT

    entered = ENTRY_POINT.set("cli")
    try:
        return _main(argv, out)
    finally:
        ENTRY_POINT.reset(entered)


def _main(argv: Sequence[str] | None, out: TextIO | None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.run(args, out or sys.stdout))
    except InputError as exc:
        print(f"error: {printable(args.file)}: {printable(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(printable(exc.code), file=sys.stderr)
            return 2
        raise
    except Exception as exc:  # a message, never a traceback (the traceback is logged with --verbose)
        logging.getLogger("payments.cli").info("unexpected failure", exc_info=True)
        print(f"error: unexpected failure: {type(exc).__name__}: {printable(exc)}", file=sys.stderr)
        return 2
