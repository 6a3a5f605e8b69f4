"""Re-drive cost: what one run of the work_redrive timer reads, with the ledger at 10,000, 100,000 and
1,000,000 entries (in Azurite), before (a query on State across the whole table) and after (the index of
open entries, then a point read per open entry).

Azurite filters its tables in memory, so its times flatter a whole-table query: Azure Table storage
answers a filter on anything but PartitionKey and RowKey by scanning every partition, at most 1,000
entities per page, each page a request (and a billed transaction), a page cut short after 5 seconds of
scanning (Table service: query timeouts and pagination). So beside Azurite's time the table prints what
the service must examine and the fewest requests that takes, which is what grows on Azure.

Run: `.venv/bin/python -m bench.redrive` (`--sizes`, `--open`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTITIONS = 20  # company_journal partitions the entries are spread over
PAGE = 1000  # entities per page, at most, in an Azure Table query answer


def _settled(n: int, start: int, now: datetime):
    """Posted entries as the ledger keeps them (payload and the target's answer included)."""
    from payments.ledger import Entry, Scope

    for i in range(start, start + n):
        scope = Scope(f"{i % PARTITIONS:08d}-0000-4000-8000-000000000000", "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02")
        yield Entry(
            scope=scope,
            key=f"p-{i:064d}",
            state="posted",
            fingerprint="f" * 64,
            claimed_until=now,
            created_at=now,
            updated_at=now,
            target_id="00000000-0000-4000-8000-000000000001",
            response_status=201,
            response_body='{"id":"00000000-0000-4000-8000-000000000001","amount":-12.5,"customerNumber":"10000"}',
            natural={"documentNumber": f"D-{i}", "amount": "-12.5"},
            payload=f'{{"customerNumber":"10000","amount":-12.5,"documentNumber":"D-{i}"}}',
            batch="b" * 32,
        )


def fill(store, target: int, have: int) -> int:
    """Add settled entries until the table holds `target` (100 per transaction, one partition each)."""
    now = datetime.now(UTC) - timedelta(days=1)
    by_partition: dict[str, list] = {}
    for entry in _settled(target - have, have, now):
        group = by_partition.setdefault(entry.scope.partition, [])
        group.append(entry)
        if len(group) == 100:
            assert store.insert_many(group) is not None
            group.clear()
    for group in by_partition.values():
        if group:
            assert store.insert_many(group) is not None
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--open", type=int, default=20, help="open (stranded) entries among them")
    args = parser.parse_args()

    from azure.data.tables import TableClient

    from devtools.azurite import running_azurite
    from payments.ledger import Ledger, Scope, TableLedgerStore
    from payments.ledger.queued import OPEN_INDEXED
    from payments.model import check

    rows = []
    with running_azurite() as azurite:
        table = TableClient.from_connection_string(azurite.connection_string, "redrivebench")
        store = TableLedgerStore(table)
        ledger = Ledger(store)
        scope = Scope("5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01", "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02")
        payments = [
            (f"open-{i}", check({"customerNumber": "10000", "amount": "-1", "documentNumber": f"O-{i}"}).payment, "f")
            for i in range(args.open)
        ]
        assert ledger.accept_many(scope, payments, "lost-batch") is not None  # their messages were lost
        store.mark_once(OPEN_INDEXED, datetime.now(UTC))
        later = Ledger(store, clock=lambda: datetime.now(UTC) + timedelta(hours=1))  # an hour on
        have = 0
        for size in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            have = fill(store, size, have)
            filled = time.perf_counter() - started
            now = later.clock()
            scans, indexed = [], []
            for _ in range(3):
                t = time.perf_counter()
                found = list(later._stranded_by_scan(timedelta(minutes=15), now))
                scans.append(time.perf_counter() - t)
                assert len(found) == args.open
                t = time.perf_counter()
                found = list(later.stranded(timedelta(minutes=15)))
                indexed.append(time.perf_counter() - t)
                assert len(found) == args.open
            entries = size + args.open
            rows.append(
                (
                    entries,
                    min(scans),
                    entries,
                    math.ceil(entries / PAGE),
                    min(indexed),
                    args.open,
                    1 + args.open,
                    filled,
                )
            )
            print(f"  {entries} entries: filled in {filled:.0f} s", file=sys.stderr, flush=True)
    print("\none work_redrive run: the stranded entries found among the ledger's entries (Azurite)\n")
    print(
        "| ledger entries | before: ms (Azurite) | before: entities the service examines | before: requests "
        "(at least) | after: ms (Azurite) | after: index rows read | after: requests |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for entries, scan, examined, pages, index, read, requests, _ in rows:
        print(
            f"| {entries:,} | {scan * 1000:.0f} | {examined:,} | {pages:,} | {index * 1000:.0f} | {read} | {requests} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
