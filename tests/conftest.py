"""Shared fixtures: a real sandbox on loopback, and the environment the Functions host would give."""

from __future__ import annotations

import pytest

from devtools.azurite import AzuriteError, running_azurite
from payments import runtime
from sandbox import MAX_PAGE_SIZE, SANDBOX_TOKEN_HEADER, Limits, Sandbox

FAST_RETRIES = {
    "PAYMENTS_BACKOFF_BASE_SECONDS": "0.01",
    "PAYMENTS_BACKOFF_MAX_SECONDS": "0.05",
    "PAYMENTS_READ_TIMEOUT_SECONDS": "2",
    # Business Central may run a request up to 10 minutes after it left; the sandbox answers or drops at
    # once, so tests settle at once unless they say otherwise.
    "PAYMENTS_TARGET_SETTLE_SECONDS": "0",
    # Callers are admitted without checks unless a test sets Entra ID up (tests/integration/test_callers.py).
    "PAYMENTS_INBOUND_AUTH": "none",
}


@pytest.fixture(scope="session")
def _sandbox_server():
    with Sandbox() as box:
        yield box


@pytest.fixture
def sandbox(_sandbox_server):
    """A running sandbox, emptied before each test (its seed stays)."""
    _sandbox_server.reset()
    _sandbox_server.latency = 0.0
    _sandbox_server.limits = Limits()
    _sandbox_server.insert_gap = 0.0
    _sandbox_server.page_size = MAX_PAGE_SIZE
    yield _sandbox_server
    _sandbox_server.reset()


@pytest.fixture
def azure_env(monkeypatch, sandbox):
    """Point the real ManagedIdentityCredential and the relay at the sandbox, as App Service would."""
    for key in list(__import__("os").environ):
        if key.startswith("PAYMENTS_") or key in ("AZURE_CLIENT_ID", "MSI_ENDPOINT", "MSI_SECRET"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", sandbox.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", SANDBOX_TOKEN_HEADER)
    for key, value in FAST_RETRIES.items():
        monkeypatch.setenv(key, value)

    def configure(target: str = "graph", **settings: str) -> None:
        base = sandbox.graph_base_url if target == "graph" else sandbox.bc_base_url
        monkeypatch.setenv("PAYMENTS_TARGET", target)
        monkeypatch.setenv("PAYMENTS_API_BASE_URL", base)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        runtime.reset()

    configure()
    yield configure
    runtime.reset()


# -- Azurite: the real storage emulator, installed by `npm ci` (./dev test does it) -----------------


@pytest.fixture(scope="session")
def azurite():
    try:
        with running_azurite() as ports:
            yield ports
    except AzuriteError as exc:
        pytest.fail(str(exc))


_contract: dict[str, object] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """The contract test: every answer the suite received from an HTTP function must be one the OpenAPI
    document the relay serves describes (status, headers, body). A violation fails the run."""
    from payments.settings import Settings
    from payments.webhook.openapi import document
    from tests.support.contract import RECORDED, violations

    if not RECORDED:
        return
    found = violations(document(Settings(inbound_auth="none")), RECORDED)
    _contract.update(checked=len(RECORDED), violations=found)
    if found and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    """Print the contract check, and the exactly-once scenario table when those tests ran (see
    storage/test_exactly_once.py)."""
    import sys

    if _contract:
        found = _contract["violations"]
        terminalreporter.section("OpenAPI contract")
        terminalreporter.write_line(
            f"{_contract['checked']} answers from the HTTP functions validated against the OpenAPI document: "
            f"{len(found)} violations"  # type: ignore[arg-type]
        )
        for line in found:  # type: ignore[attr-defined]
            terminalreporter.write_line(f"  {line}", red=True)
    callers = sys.modules.get("tests.storage.test_callers")
    matrix = getattr(callers, "MATRIX", None)
    if matrix:
        terminalreporter.section("who may post (tests/storage/test_callers.py)")
        width = max(len(str(r["credential"])) for r in matrix)
        terminalreporter.write_line(f"{'credential':<{width}}  status  {'problem type':<24}  posted")
        for r in matrix:
            terminalreporter.write_line(
                f"{r['credential']!s:<{width}}  {r['status']!s:>6}  {r['problem']!s:<24}  {r['posted']!s:>6}"
            )

    module = sys.modules.get("tests.storage.test_exactly_once")
    rows = getattr(module, "SCENARIOS", None)
    if not rows:
        return
    columns = list(rows[0])
    width = max(len(str(r["scenario"])) for r in rows)
    terminalreporter.section("exactly-once scenarios")
    terminalreporter.write_line(f"{'scenario':<{width}}  " + "  ".join(f"{c:>9}" for c in columns[1:]))
    for r in rows:
        terminalreporter.write_line(
            f"{r['scenario']:<{width}}  " + "  ".join(f"{r[c]!s:>9}" for c in columns[1:])
        )
