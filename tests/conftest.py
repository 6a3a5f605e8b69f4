"""Shared fixtures: a real sandbox on loopback, and the environment the Functions host would give."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from payments import runtime
from payments.sandbox import SANDBOX_TOKEN_HEADER, Sandbox

FAST_RETRIES = {
    "PAYMENTS_BACKOFF_BASE_SECONDS": "0.01",
    "PAYMENTS_BACKOFF_MAX_SECONDS": "0.05",
    "PAYMENTS_READ_TIMEOUT_SECONDS": "2",
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
    _sandbox_server.concurrency_limit = None
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

ROOT = Path(__file__).resolve().parent.parent
# Azurite's fixed development account: public, documented by Microsoft, accepted only on loopback.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{AZURITE_ACCOUNT};"
        )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    exe = ROOT / "node_modules" / ".bin" / "azurite"
    if not exe.exists():
        pytest.fail("Azurite is not installed: run `npm ci` in the repository (./dev test does it)")
    ports = Azurite(_free_port(), _free_port(), _free_port())
    proc = subprocess.Popen(
        [
            str(exe),
            "--silent",
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(ports.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(ports.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(ports.table_port),
        ],
        cwd=tmp_path_factory.mktemp("azurite"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    pending = {ports.blob_port, ports.queue_port, ports.table_port}
    while pending:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("Azurite did not start listening within 60 s")
        for port in list(pending):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        if pending:
            try:  # wait a moment for the ports, and notice at once if Azurite died instead
                proc.wait(0.1)
                pytest.fail(f"Azurite exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            except subprocess.TimeoutExpired:
                pass
    yield ports
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
