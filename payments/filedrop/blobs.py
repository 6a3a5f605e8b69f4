"""The blobs a file drop works with: a lease that keeps a file ours while we work on it, a stream
over a download's chunks, and writing reports and archive copies."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from typing import IO, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, ContentSettings

log = logging.getLogger("payments.filedrop")


class Lease:
    """A blob lease renewed in the background until released, so a long file stays ours."""

    def __init__(self, blob: BlobClient, seconds: int):
        self.client = BlobLeaseClient(blob)
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        self.client.acquire(lease_duration=self.seconds)
        self._thread = threading.Thread(target=self._renew, name="payments-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.client.renew()
            except HttpResponseError as exc:  # the blob was deleted, or the lease lost
                log.warning("lease renewal failed: %s", exc.error_code)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _ChunkReader(io.RawIOBase):
    """A readable stream over the downloader's chunks, so the readers can stream a blob. Each chunk is
    handed out through a view (slicing the rest off a 4 MiB chunk for every small read would copy it
    over and over)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def read_stream(blob: BlobClient, buffer_size: int) -> io.BufferedReader:
    """The blob's content as a stream, downloaded chunk by chunk as it is read."""
    return io.BufferedReader(_ChunkReader(blob.download_blob().chunks()), buffer_size=buffer_size)


class Containers:
    """Writes to the function's own containers (reports, archive), creating them on first use."""

    def __init__(self, service: BlobServiceClient, names: tuple[str, ...]):
        self.service = service
        self._names = names
        self._ready = False

    def put(self, container: str, name: str, data: bytes | IO[bytes], content_type: str) -> str:
        client = self.service.get_blob_client(container, name)
        client.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_type=content_type))
        return f"{container}/{name}"

    def ensure(self) -> None:
        """The deployment creates the containers; a fresh local emulator may not have them yet."""
        if self._ready:
            return
        for name in self._names:
            try:
                self.service.create_container(name)
            except ResourceExistsError:
                pass
        self._ready = True

    def archive(self, inbox: BlobClient, lease: Lease, container: str, target: str) -> str:
        """Copy the leased inbox blob to `container/target`, then remove it from the inbox."""
        where = self.put(container, target, read_stream(inbox, 1 << 20), "application/octet-stream")
        lease.stop()
        inbox.delete_blob(lease=lease.client)
        return where
