"""Start Azurite, the real storage emulator (npm package, pinned in package-lock.json), on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Azurite's fixed development account: public, documented by Microsoft, accepted only on loopback.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite is not installed or did not start."""


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
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )


@contextlib.contextmanager
def running_azurite(timeout: float = 60.0) -> Iterator[Azurite]:
    """Azurite in memory on three free loopback ports, stopped on exit."""
    exe = ROOT / "node_modules" / ".bin" / "azurite"
    if not exe.exists():
        raise AzuriteError("Azurite is not installed: run `npm ci` in the repository (./dev test does it)")
    ports = Azurite(_free_port(), _free_port(), _free_port())
    args = [str(exe), "--silent", "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry"]
    for service, port in (
        ("blob", ports.blob_port),
        ("queue", ports.queue_port),
        ("table", ports.table_port),
    ):
        args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(proc, ports, timeout)
            yield ports
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_listening(proc: subprocess.Popen[bytes], ports: Azurite, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {ports.blob_port, ports.queue_port, ports.table_port}
    while pending:
        for port in list(pending):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AzuriteError(f"Azurite did not start listening within {timeout:.0f} s")
        try:  # wait a moment for the ports, and notice at once if Azurite died instead
            proc.wait(0.1)
        except subprocess.TimeoutExpired:
            continue
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise AzuriteError(f"Azurite exited: {stderr[-2000:]}")
