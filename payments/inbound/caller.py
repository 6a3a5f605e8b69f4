"""The caller a webhook call was admitted as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["entra", "webhook", "local"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An admitted caller. `id` is what the ledger, the batch records and the logs keep: `app:<client
    id>` for an Entra ID application, `webhook:<sender>` for a signed sender, `local` without checks."""

    kind: Kind
    id: str
    tenant: str | None = None
    object_id: str | None = None  # the calling identity's object id (a managed identity's principal)
    delivery: str | None = None  # a signed webhook's webhook-id

    def owns(self, owner: str | None) -> bool:
        """Whether a batch recorded for `owner` is this caller's to see. Batches accepted before callers
        were recorded (owner None) are visible only without checks (local)."""
        return self.kind == "local" or owner == self.id


LOCAL = Caller("local", "local")
