"""An in-process ledger store: for command-line runs against the sandbox, where no storage account exists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .entry import Entry, OpenRow, Scope, entry_values


class MemoryLedgerStore:
    """An in-process store: for command-line runs against the sandbox, where no storage account exists.
    Rows are kept as tuples of an entry's fields (a snapshot nobody can change); callers get new
    entries built from them, as from a real store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._version = 0
        self._marks: dict[str, datetime] = {}
        self._open: set[OpenRow] = set()  # the index of open entries

    def _stamp(self, entry: Entry) -> Entry:
        self._version += 1
        row = (*entry_values(entry)[:-1], str(self._version))  # etag is the last field
        self._rows[(entry.scope.partition, entry.key)] = row
        return Entry(*row)

    def _etag(self, entry: Entry) -> str | None:
        row = self._rows.get((entry.scope.partition, entry.key))
        return None if row is None else row[-1]

    def insert(self, entry: Entry) -> Entry | None:
        with self._lock:
            if (entry.scope.partition, entry.key) in self._rows:
                return None
            return self._stamp(entry)

    def get(self, scope: Scope, key: str) -> Entry | None:
        with self._lock:
            row = self._rows.get((scope.partition, key))
            return Entry(*row) if row else None

    def replace(self, entry: Entry) -> Entry | None:
        with self._lock:
            if entry.etag is None or self._etag(entry) != entry.etag:
                return None
            return self._stamp(entry)

    def delete(self, entry: Entry) -> bool:
        with self._lock:
            if entry.etag is None or self._etag(entry) != entry.etag:
                return False
            del self._rows[(entry.scope.partition, entry.key)]
            return True

    def scan(self, states: set[str] | None = None) -> Iterator[Entry]:
        with self._lock:
            entries = [Entry(*row) for row in self._rows.values()]
        yield from (e for e in entries if states is None or e.state in states)

    def in_scope(self, scope: Scope, states: set[str]) -> Iterator[Entry]:
        with self._lock:
            entries = [Entry(*row) for row in self._rows.values()]
        yield from (e for e in entries if e.scope == scope and e.state in states)

    def in_batch(self, scope: Scope, batch: str) -> Iterator[Entry]:
        with self._lock:
            entries = [Entry(*row) for row in self._rows.values()]
        yield from (e for e in entries if e.scope == scope and e.batch == batch)

    def insert_many(self, entries: list[Entry]) -> list[Entry] | None:
        with self._lock:
            if any((e.scope.partition, e.key) in self._rows for e in entries):
                return None
            return [self._stamp(e) for e in entries]

    def replace_many(self, entries: list[Entry]) -> list[Entry] | None:
        with self._lock:
            if any(e.etag is None or self._etag(e) != e.etag for e in entries):
                return None
            return [self._stamp(e) for e in entries]

    def has_entries(self) -> bool:
        with self._lock:
            return bool(self._rows)

    def mark_once(self, name: str, value: datetime) -> datetime:
        with self._lock:
            return self._marks.setdefault(name, value)

    def index_open(self, rows: list[OpenRow]) -> None:
        with self._lock:
            self._open.update(rows)

    def unindex(self, rows: list[OpenRow]) -> None:
        with self._lock:
            self._open.difference_update(rows)

    def indexed(self) -> Iterator[OpenRow]:
        with self._lock:
            found = list(self._open)
        yield from found

    def marked(self, name: str) -> datetime | None:
        with self._lock:
            return self._marks.get(name)
