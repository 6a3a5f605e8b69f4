"""Per-process state of the function app: settings, credential, HTTP session and pipeline, built once.

Nothing here runs at import: the first invocation builds it, later ones reuse it, so a worker
pays for one credential, one connection pool and one token however many payments it relays.
"""

from __future__ import annotations

import logging
import threading

from .client import TargetClient
from .identity import make_credential
from .pipeline import Pipeline
from .settings import SettingsError, load_settings

log = logging.getLogger("payments.runtime")

_lock = threading.Lock()
_pipeline: Pipeline | None = None


def pipeline() -> Pipeline:
    """The process's pipeline; raises SettingsError (a clear message) when a setting is wrong."""
    global _pipeline
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                settings = load_settings()
                _pipeline = Pipeline(TargetClient(settings, make_credential(settings)))
    return _pipeline


def check_settings() -> bool:
    """Validate the settings at worker start-up, so a wrong value shows in the host's log at once
    (each call then answers `relay-misconfigured` rather than the app failing to load)."""
    try:
        load_settings()
    except SettingsError as exc:
        log.error("payments relay: %s", exc)
        return False
    return True


def reset() -> None:
    """Forget the process state (tests change settings between cases)."""
    global _pipeline
    with _lock:
        if _pipeline is not None:
            _pipeline.client.close()
        _pipeline = None
