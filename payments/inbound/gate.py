"""Admit a call, or refuse it before anything is read or posted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from ..errors import CallerRefused, LedgerUnavailable, SettingsError
from ..settings import Settings
from . import signature
from .caller import LOCAL, Caller
from .deliveries import Deliveries
from .entra import EntraVerifier

log = logging.getLogger("payments.inbound")


class Gate:
    """Which credential a route takes: a signed webhook on a sender's routes, else Entra ID (or nothing,
    for local development, with PAYMENTS_INBOUND_AUTH=none)."""

    def __init__(self, settings: Settings, deliveries: Deliveries, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.deliveries = deliveries
        self.clock = clock
        self._entra: EntraVerifier | None = None

    def admit(
        self, headers: Mapping[str, str], body: bytes, *, sender: str | None = None, once: bool = True
    ) -> Caller:
        """The caller (headers with lower-case names), or CallerRefused. `once`: a signed delivery may be
        admitted only once (a GET, which changes nothing, may be signed afresh or not)."""
        if sender is not None:
            return self._signed(headers, body, sender, once)
        if self.settings.inbound_auth == "none":
            return LOCAL
        problem = self.settings.entra_problem()
        if problem:
            raise SettingsError(problem)
        if self._entra is None:
            self._entra = EntraVerifier(self.settings)
        return self._entra.admit(headers)

    def _signed(self, headers: Mapping[str, str], body: bytes, sender: str, once: bool) -> Caller:
        secrets = self.settings.sender_secrets(sender)
        if secrets is None:
            raise CallerRefused(
                401,
                "unknown-sender",
                "Unknown webhook sender",
                "this relay has no webhook sender of the name in the URL; check the URL",
                reason=f"sender {sender!r} is not in PAYMENTS_WEBHOOK_SENDERS",
            )
        delivery = signature.verify(
            secrets, headers, body, tolerance=self.settings.webhook_tolerance_seconds, now=self.clock()
        )
        if once:
            try:
                first = self.deliveries.first(sender, delivery)
            except LedgerUnavailable as exc:
                log.error("signed delivery from %s not checked for replay: %s", sender, exc)
                raise CallerRefused(
                    503,
                    "relay-storage-unavailable",
                    "The relay cannot accept payments right now",
                    "its storage is unavailable; nothing was accepted; deliver the webhook again later",
                    error=None,
                ) from None
            if not first:
                raise CallerRefused(
                    401,
                    "signature-replayed",
                    "This signed delivery was received before",
                    f"webhook-id {delivery.id!r} with this webhook-timestamp was already received: a retry "
                    "must be signed afresh with a new timestamp (its outcome is then answered again)",
                    reason=f"sender {sender!r} replayed webhook-id {delivery.id!r}",
                )
        return Caller("webhook", f"webhook:{sender}", delivery=delivery.id)

    def purge(self) -> int:
        """Forget signed deliveries past the tolerance (they would be refused as too old anyway)."""
        return self.deliveries.purge(self.clock() - 2 * self.settings.webhook_tolerance_seconds)
