"""What goes on the work queue: a few payments of one journal, as the ledger accepted them.

A message carries each payment's ledger key, the etag its acceptance left (so a poster can claim all
of them in one conditional write) and its payload (so the poster needs no read first). Sending a
message twice is harmless: the ledger lets only one poster claim a payment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .. import codec

# A Storage queue message holds 64 KiB; base64 (what the Functions host reads by default) takes a
# third more, so the JSON stays under 48 KiB, with room for the envelope.
MAX_MESSAGE_BYTES = 46_000
MAX_ITEMS = 100  # a JSON $batch takes at most 100 operations: a message never needs more
VERSION = 1


class BadMessage(ValueError):
    """A queue message this relay did not write (or a newer one): it cannot be posted."""


@dataclass(slots=True)
class Item:
    key: str
    payload: dict[str, Any]
    fingerprint: str
    etag: str | None = None  # None: the poster claims it by the full protocol (it may exist already)


@dataclass(slots=True)
class Work:
    """Payments for one company and journal, from one batch (webhook call or file)."""

    company: str
    journal: str
    batch: str
    items: list[Item] = field(default_factory=list)
    attempt: int = 0  # how many times the target was too busy for these payments (for the backoff)
    caller: str | None = None  # who sent them (the ledger entries keep it when a poster claims them)
    source: str | None = None  # the file they came from, for the outcome log lines (telemetry)

    def encode(self) -> str:
        return codec.dumps(
            {
                "v": VERSION,
                "c": self.company,
                "j": self.journal,
                "b": self.batch,
                "n": self.attempt,
                **({"u": self.caller} if self.caller is not None else {}),
                **({"s": self.source} if self.source is not None else {}),
                "i": [[i.key, i.etag, i.fingerprint, i.payload] for i in self.items],
            }
        )

    def split(self) -> Iterator[Work]:
        """Messages of at most MAX_ITEMS payments and MAX_MESSAGE_BYTES each."""
        chunk: list[Item] = []
        size = 200
        for item in self.items:
            cost = len(codec.dumpb(item.payload)) + len(item.key) + 120
            if chunk and (len(chunk) == MAX_ITEMS or size + cost > MAX_MESSAGE_BYTES):
                yield replace(self, items=chunk)
                chunk, size = [], 200
            chunk.append(item)
            size += cost
        if chunk:
            yield replace(self, items=chunk)


def intake_message(batch: str) -> str:
    return codec.dumps({"v": VERSION, "intake": batch})


def intake_of(text: str | bytes) -> str | None:
    """The batch an intake message names (a deferred batch to take into the ledger), else None."""
    head = text[:200] if isinstance(text, str) else text[:200].decode("utf-8", "replace")
    if '"intake"' not in head:
        return None
    try:
        batch = codec.loads(text).get("intake")
    except (ValueError, AttributeError):
        return None
    return batch if isinstance(batch, str) else None


def decode(text: str | bytes) -> Work:
    try:
        data = codec.loads(text)
        if data.get("v") != VERSION:
            raise BadMessage(f"message version {data.get('v')!r}; this relay reads {VERSION}")
        items = [Item(key, payload, fp, etag) for key, etag, fp, payload in data["i"]]
        caller, source = data.get("u"), data.get("s")
        work = Work(
            str(data["c"]),
            str(data["j"]),
            str(data["b"]),
            items,
            int(data.get("n", 0)),
            str(caller) if caller is not None else None,
            str(source) if source is not None else None,
        )
    except BadMessage:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadMessage(f"not a work message: {type(exc).__name__}") from None
    if not all(isinstance(i.key, str) and isinstance(i.payload, dict) for i in work.items):
        raise BadMessage("not a work message: an item has no key or payload")
    return work
