"""The idempotency ledger: the exactly-once protocol, its records, keys and stores."""

from ..errors import LedgerUnavailable
from .entry import CALLER, Entry, Scope, State, evolve
from .keys import Digest, canonical, derived_key, digest, explicit_key, fingerprint, natural_key
from .memory import MemoryLedgerStore
from .protocol import Decision, Ledger
from .store import LedgerStore
from .table import TableLedgerStore

__all__ = [
    "CALLER",
    "Decision",
    "Digest",
    "Entry",
    "Ledger",
    "LedgerStore",
    "LedgerUnavailable",
    "MemoryLedgerStore",
    "Scope",
    "State",
    "TableLedgerStore",
    "canonical",
    "derived_key",
    "digest",
    "evolve",
    "explicit_key",
    "fingerprint",
    "natural_key",
]
