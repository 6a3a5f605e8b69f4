"""What a request to the target is, as far as retrying and flow control go."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    """What a request is, as far as retrying and flow control go."""

    idempotent: bool = False  # a read: safe to send again whatever happened to it
    auto_numbered: bool = False  # an insert whose line number the target assigns
    journal: tuple[str, str] | None = None  # an insert into this (company, journal): one at a time
    prefer: str | None = None  # the Prefer header
    send_by: float | None = None  # monotonic: no attempt leaves after this (its ledger claim ends)
    company: str | None = None  # the company a read is about (for its span)


READ = Request(idempotent=True)
