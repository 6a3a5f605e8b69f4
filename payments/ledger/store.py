"""The persistence the ledger protocol needs: every write conditional, so the protocol stays atomic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from .entry import Entry, OpenRow, Scope


class LedgerStore(Protocol):
    """Persistence for ledger entries (Azure Table in production, memory for offline runs)."""

    def insert(self, entry: Entry) -> Entry | None:
        """Create the entry if its key is absent; the stored entry (with etag), or None if it exists."""

    def get(self, scope: Scope, key: str) -> Entry | None: ...

    def replace(self, entry: Entry) -> Entry | None:
        """Overwrite if `entry.etag` still matches; the stored entry, or None if someone changed it."""

    def delete(self, entry: Entry) -> bool:
        """Remove if `entry.etag` still matches."""

    def in_scope(self, scope: Scope, states: set[str]) -> Iterator[Entry]:
        """One journal's entries in these states."""

    def in_batch(self, scope: Scope, batch: str) -> Iterator[Entry]:
        """The entries one batch accepted into this scope (Entry.batch)."""

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]: ...

    def insert_many(self, entries: list[Entry]) -> list[Entry] | None:
        """Create all of one partition's entries at once, or none (None): then the caller goes one by one."""

    def replace_many(self, entries: list[Entry]) -> list[Entry] | None:
        """Overwrite all (each etag must match) or none (None): then the caller goes one by one."""

    def has_entries(self) -> bool:
        """Whether any payment was ever recorded here (and not yet purged)."""

    def index_open(self, rows: list[OpenRow]) -> None:
        """Record entries accepted for the work queue in the index of open entries; again is harmless."""

    def unindex(self, rows: list[OpenRow]) -> None:
        """Take entries out of the index of open entries (settled, or gone); missing ones are harmless."""

    def indexed(self) -> Iterator[OpenRow]:
        """Every entry in the index of open entries."""

    def marked(self, name: str) -> datetime | None:
        """The time recorded under `name` (`mark_once`), or None."""

    def mark_once(self, name: str, value: datetime) -> datetime:
        """The time recorded under `name` about the ledger itself, recording `value` first when none is:
        the first writer wins, every later caller reads its value. Never seen by `scan`."""
