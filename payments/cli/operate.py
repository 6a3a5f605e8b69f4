"""What an operator runs against a deployed relay: the ledger, the inbox, the work queue, a journal."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..ledger import Ledger, Scope
from ..runtime import make_ledger
from .common import printable, settings_or_exit


def _ledger_or_exit() -> Ledger:
    ledger = make_ledger(settings_or_exit())
    if ledger is None:
        raise SystemExit(
            "error: the ledger lives in the function's storage account: set "
            "AzureWebJobsStorage__tableServiceUri (with an identity that may read it) "
            "or, locally, AzureWebJobsStorage"
        )
    return ledger


def cmd_journal(args: argparse.Namespace, out: TextIO) -> int:
    """Post one journal now (page 30016's post action), only if it holds nothing but the relay's lines."""
    from ..credentials import target_credential
    from ..outbound import TargetClient
    from ..posting.journal import post_journal

    settings = settings_or_exit()
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
    from ..filedrop.redrive import redrive, stranded
    from ..runtime import file_drop

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

    from ..runtime import pipeline, redrive_work
    from ..work import QueuedPipeline

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
