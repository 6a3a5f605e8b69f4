"""An explicit idempotency key (an `Idempotency-Key` header, a signed delivery's `webhook-id`) is its
caller's own.

Its ledger key hashes the caller (`app:<client id>`, `webhook:<sender>`) with the key, so one caller
sending another's key text neither reads that caller's stored answer nor blocks its payment: it is a
new key of its own. Keys derived from a payment sent without one stay shared by every caller, so the
same payment is posted once whoever sends it.

Entries written before keys were the caller's keep answering their caller. Their key was shared
(`keys.former_key`); while any may still be kept (`Ledger.former_keys_until`: the retention period
after the first worker used caller keys on the ledger), a key is also looked up under its former form,
and an entry found there is used in its place when it records this caller, or no caller at all (it
predates callers being recorded, when anyone's call could have written it). A ledger that held no entry
when caller keys began never looks.
"""

from __future__ import annotations

from .entry import Scope
from .keys import caller_key, former_key
from .protocol import Ledger


def keys_of(
    ledger: Ledger | None, scope: Scope, caller: str, idempotency_key: str, count: int | None = None
) -> list[str]:
    """The ledger keys of a caller's key: one (`count` None) or one per item of a batch of `count`.
    Raises LedgerUnavailable when the former keys cannot be looked up."""
    indices: list[int | None] = [None] if count is None else list(range(count))
    keys = [caller_key(scope, caller, idempotency_key, i) for i in indices]
    if ledger is None or ledger.clock() >= ledger.former_keys_until():
        return keys
    for n, index in enumerate(indices):
        former = ledger.store.get(scope, former_key(scope, idempotency_key, index))
        if former is not None and former.caller in (None, caller):
            keys[n] = former.key
    return keys
