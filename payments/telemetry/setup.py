"""Switching telemetry on: the Azure Monitor OpenTelemetry distro, configured once per worker with the
relay's managed identity (Entra-authenticated ingestion; the connection string only names the
component, it holds no secret), when the standard settings ask for it.

The distro is imported only then: it costs about a second at start-up, which a worker without
telemetry (a developer's machine, the tests) does not pay. Its automatic instrumentations are off: the
relay records its own spans for target requests and ledger operations, with attributes chosen not to
carry tokens, IBANs or payloads, and an automatic span per HTTP call would double each one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..settings import Settings

log = logging.getLogger("payments.telemetry")

_lock = threading.Lock()
_configured = False
# Every instrumentation the distro would switch on by itself (requests, urllib, the Azure SDK...).
INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)


def enabled(settings: Settings) -> bool:
    """On when the component is named (APPLICATIONINSIGHTS_CONNECTION_STRING) and the Functions
    setting PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is true."""
    return bool(settings.appinsights_connection_string) and settings.appinsights_enable_telemetry


def configure(settings: Settings, **overrides: Any) -> bool:
    """Configure the distro for this worker, once; True when telemetry is on. `overrides` go to
    `configure_azure_monitor` (the benchmark points ingestion at loopback with them)."""
    global _configured
    if not enabled(settings):
        return False
    with _lock:
        if _configured:
            return True
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        if isinstance(trace.get_tracer_provider(), TracerProvider):
            # The Functions Python worker configured the distro itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_
            # TELEMETRY), with the identity from APPLICATIONINSIGHTS_AUTHENTICATION_STRING, the logger
            # from PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME and without the instrumentations in
            # OTEL_PYTHON_DISABLEDINSTRUMENTATIONS (the template sets all three): a second
            # configuration would only be refused, after starting exporters of its own.
            _configured = True
            log.info("telemetry on, configured by the Functions worker")
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor

        from ..credentials import make_credential  # azure-identity: only when telemetry is on

        options: dict[str, Any] = {
            "connection_string": settings.appinsights_connection_string,
            "credential": make_credential("managed", settings.azure_client_id),
            "logger_name": "payments",
            "enable_live_metrics": False,
            "instrumentation_options": {name: {"enabled": False} for name in INSTRUMENTATIONS},
        }
        configure_azure_monitor(**{**options, **overrides})
        _configured = True
        log.info(
            "telemetry on: traces, metrics and logs go to Application Insights with the managed identity"
        )
        return True
