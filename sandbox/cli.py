"""`python -m sandbox`: run the sandbox in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading

from .identity import SANDBOX_TOKEN_HEADER
from .limits import Limits
from .service import WARNING_TEXT, Sandbox
from .store import (
    SANDBOX_COMPANY_ID,
    SANDBOX_CUSTOMERS,
    SANDBOX_JOURNAL_ID,
    SANDBOX_JOURNAL_NAME,
    extra_journals,
)

log = logging.getLogger(__name__)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def post_journal(argv: list[str]) -> int:
    """`python -m sandbox post-journal`: post a journal of a running sandbox, as an accountant would."""
    import urllib.error
    import urllib.request

    parser = argparse.ArgumentParser(prog="python -m sandbox post-journal", description=post_journal.__doc__)
    parser.add_argument("--port", type=int, default=8400, help="the running sandbox's port on 127.0.0.1")
    parser.add_argument("--company", default=SANDBOX_COMPANY_ID)
    parser.add_argument("--journal", default=SANDBOX_JOURNAL_ID)
    args = parser.parse_args(argv)
    url = (
        f"http://127.0.0.1:{args.port}/v2.0/sandbox-tenant/sandbox/api/v2.0/companies({args.company})"
        f"/journals({args.journal})/Microsoft.NAV.post"
    )
    request = urllib.request.Request(url, method="POST", headers={"Authorization": "Bearer operator"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback only
            print(f"journal {args.journal} posted ({answer.status})")
            return 0
    except urllib.error.HTTPError as exc:
        print(f"not posted: {exc.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"no sandbox at 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground until Ctrl-C (development and tests only); `post-journal`
    posts a journal of one that is running."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["post-journal"]:
        return post_journal(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Loopback emulator of the customerPayments API. For development and tests only.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: chosen by the OS)")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds each payments request takes to answer, the sandbox's own work included",
    )
    defaults = Limits()
    parser.add_argument(
        "--concurrent",
        type=int,
        default=defaults.concurrent,
        help="requests processed at once per identity; more wait in the queue",
    )
    parser.add_argument(
        "--queue", type=int, default=defaults.queue, help="requests that may wait per identity (then 429)"
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=defaults.rate,
        help=f"requests per identity per sliding window of {defaults.window:g} s (then 429)",
    )
    parser.add_argument(
        "--journals",
        type=int,
        default=1,
        help="customer payment journals in the seed company (the first is the usual one; the others "
        "are CASH2, CASH3, ... with the ids listed at start)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    # A real service has no interpreter lock: let a thread whose request just arrived run within
    # 0.5 ms rather than the default 5 ms, so that benchmarks measure the client, not this process.
    sys.setswitchinterval(0.0005)
    # Payments and recorded requests live as long as the sandbox: once a full collection has found
    # them alive, keep them out of the next ones, which would otherwise pause every request thread
    # for longer and longer as they pile up.
    gc.freeze()
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2 and gc.freeze())
    sandbox = Sandbox(port=args.port, latency=args.latency, verbose=args.verbose)
    sandbox.limits = Limits(concurrent=args.concurrent, queue=args.queue, rate=args.rate)
    extra = [(sandbox.add_journal(jid, name=f"CASH{n}"), n) for n, jid in extra_journals(args.journals)]
    sandbox.start()
    log.warning(WARNING_TEXT)
    lines = [
        "=" * 78,
        WARNING_TEXT,
        "=" * 78,
        f"Graph base URL:          {sandbox.graph_base_url}",
        f"Business Central base:   {sandbox.bc_base_url}",
        f"Identity endpoint:       {sandbox.identity_endpoint}",
        f"IDENTITY_HEADER:         {SANDBOX_TOKEN_HEADER}",
        f"Company id:              {SANDBOX_COMPANY_ID}",
        f"Journal id:              {SANDBOX_JOURNAL_ID} ({SANDBOX_JOURNAL_NAME})",
        *(f"Journal id:              {journal_id} (CASH{n})" for journal_id, n in extra),
        *(f"Customer {num}:          {cid}" for num, cid in SANDBOX_CUSTOMERS.items()),
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on SIGTERM too, like Ctrl-C
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    print("sandbox stopped", flush=True)
    return 0
