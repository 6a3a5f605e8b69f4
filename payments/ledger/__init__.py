"""The idempotency ledger: the exactly-once protocol, its records, keys and stores."""

from ..errors import LedgerUnavailable
from .callers import keys_of
from .entry import CALLER, Entry, Scope, State, evolve
from .keys import Digest, caller_key, canonical, derived_key, digest, fingerprint, former_key, natural_key
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
    "caller_key",
    "canonical",
    "derived_key",
    "digest",
    "evolve",
    "fingerprint",
    "former_key",
    "keys_of",
    "natural_key",
]
