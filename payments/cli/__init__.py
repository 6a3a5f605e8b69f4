"""`python -m payments`: validate a payment file offline, or post it (to the sandbox with --sandbox).

Exit codes: 0 every record succeeded, 1 some record failed (invalid, rejected, unavailable or
ambiguous), 2 the command itself could not run (bad arguments, settings, unreadable file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import InputError
from .common import printable
from .files import cmd_post, cmd_sandbox, cmd_validate
from .operate import cmd_inbox, cmd_journal, cmd_ledger, cmd_queue

__all__ = ["main", "parser"]


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
    from ..telemetry import ENTRY_POINT

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
