"""The identities the relay calls the target as, each with its own budget.

Business Central's limits are per user or service principal (5 requests processed at once, 6,000 per 5
minutes); Microsoft's way past them is to spread requests round-robin over several. Each identity (a
user-assigned managed identity, `PAYMENTS_TARGET_CLIENT_IDS`) is a `Principal` here: its token, its
throttle gate (a 429 pauses that identity only), its in-flight bound, its rate window and, with shared
limits, its own slots and rate blob in the flow container. Every request goes to the identity with the
most room; one whose grant Business Central refuses (401 after a fresh token, 403) is set aside for a
while, so the others carry on. A journal's one insert at a time is the client's, for every identity.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from azure.core.credentials import TokenCredential

from .auth import TokenSource
from .flow import InFlightLimit, RateWindow, ThrottleGate
from .shared import SharedRate

DEFAULT = "default"  # the one identity of a relay configured with a single one (AZURE_CLIENT_ID or none)
REFUSED_SECONDS = 300.0  # how long an identity the target refused sits out while others are there


@dataclass(eq=False)
class Principal:
    """One identity the relay calls the target as, and its budget."""

    name: str  # its client id, or DEFAULT
    tokens: TokenSource
    gate: ThrottleGate
    in_flight: InFlightLimit
    rate: RateWindow | SharedRate
    refused_until: float = 0.0  # monotonic: the target refused its grant; others go first until then
    sent: int = field(default=0)  # requests sent (for the benchmarks' and tests' figures)

    def shared_name(self) -> str | None:
        """The name its slots and rate window carry in the flow container (None: the single identity's
        names, as they were before several identities)."""
        return None if self.name == DEFAULT else self.name


class Principals:
    """The identities, and which one a request goes to."""

    def __init__(self, principals: Sequence[Principal], clock: Callable[[], float] = time.monotonic):
        if not principals:
            raise ValueError("at least one identity")
        self.all = list(principals)
        self._clock = clock
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def pick(self, avoid: Principal | None = None) -> Principal:
        """The identity with the most room now: not refused, its gate open, the fewest requests in flight
        for its bound; ties go round-robin so the load spreads evenly. `avoid`: one that just failed."""
        return self.ranked(avoid)[0]

    def ranked(self, avoid: Principal | None = None) -> list[Principal]:
        """The identities, the one with the most room first; those refused (or `avoid`) are left out,
        unless that leaves none: then the one that may be tried first alone."""
        now = self._clock()
        with self._lock:
            start = next(self._turn) % len(self.all)
        ordered = self.all[start:] + self.all[:start]

        def score(p: Principal) -> tuple[int, float, float]:
            refused = p.refused_until > now or p is avoid
            closed = max(0.0, p.gate.opens_at() - now)
            busy = p.in_flight.busy / max(1, p.in_flight.limit)
            return (1 if refused else 0, closed, busy)

        ranked = sorted(ordered, key=score)
        usable = [p for p in ranked if score(p)[0] == 0]
        return usable or ranked[:1]

    def refused(self, principal: Principal) -> bool:
        """The target refused this identity's grant: set it aside for a while. True when another
        identity may be tried (it is not the only one, nor are all refused)."""
        now = self._clock()
        principal.refused_until = now + REFUSED_SECONDS
        return any(p.refused_until <= now for p in self.all if p is not principal)

    def __len__(self) -> int:
        return len(self.all)


def principals_of(
    credentials: Sequence[tuple[str, TokenCredential]],
    scope: str,
    *,
    max_concurrency: int,
    rate: Callable[[str | None], RateWindow | SharedRate],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Principals:
    """A Principal per (name, credential), each with a budget of its own."""
    out = []
    for name, credential in credentials:
        principal = Principal(
            name,
            TokenSource(credential, scope),
            ThrottleGate(sleep, clock),
            InFlightLimit(max_concurrency),
            rate(None if name == DEFAULT else name),
        )
        out.append(principal)
    return Principals(out, clock)
