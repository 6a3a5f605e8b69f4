"""The Functions host's queue listener, played on Azurite: receive, invoke the registered queue function,
delete on success; on failure the message comes back after `retry_visibility`, and after `max_dequeue`
failed deliveries it moves to `<queue>-poison`. Used by the tests and the scale benchmark, which call the
function exactly as the Python worker would (a `func.QueueMessage`), from as many threads as host.json's
batchSize lets one instance run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import azure.functions as func
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

from devtools.invocation import context

log = logging.getLogger("devtools.queue_host")


class QueueHost:
    def __init__(
        self,
        connection_string: str,
        queue: str,
        function: Callable[[func.QueueMessage], None],
        *,
        concurrency: int = 4,
        visibility: float = 60.0,
        retry_visibility: float = 0.0,
        max_dequeue: int = 5,
        max_poll: float = 0.5,
    ):
        policies = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": BinaryBase64DecodePolicy(),
        }
        self.queue = QueueClient.from_connection_string(connection_string, queue, **policies)
        self.poison = QueueClient.from_connection_string(connection_string, f"{queue}-poison", **policies)
        for q in (self.queue, self.poison):
            try:
                q.create_queue()
            except ResourceExistsError:
                pass
        self.function = function
        self.concurrency = concurrency
        self.visibility = visibility
        self.retry_visibility = retry_visibility
        self.max_dequeue = max_dequeue
        self.max_poll = max_poll
        self.invocations = 0
        self.failures = 0
        self.busy = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def step(self) -> bool:
        """Take one message and invoke the function with it; False when none was visible."""
        messages = list(self.queue.receive_messages(max_messages=1, visibility_timeout=int(self.visibility)))
        if not messages:
            return False
        message = messages[0]
        with self._lock:
            self.busy += 1
        # As the host does, keep the message invisible while the function runs (renewed at half time).
        done = threading.Event()
        renewer = threading.Thread(target=self._keep_invisible, args=(message, done), daemon=True)
        renewer.start()
        body = message.content if isinstance(message.content, bytes) else message.content.encode()
        failed = False
        try:
            self.function(
                func.QueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt),
                context=context("post_work"),
            )
        except Exception:
            failed = True
            log.exception("queue function failed (delivery %d)", message.dequeue_count)
        finally:
            done.set()
            renewer.join()
        try:
            if not failed:
                self._delete(message)
            elif message.dequeue_count >= self.max_dequeue:
                self.poison.send_message(body.decode())
                self._delete(message)
            else:
                try:
                    self.queue.update_message(
                        message.id,  # not the message: its content is bytes, which this client would encode
                        pop_receipt=message.pop_receipt,
                        visibility_timeout=int(self.retry_visibility),
                    )
                except ResourceNotFoundError:
                    pass
        finally:
            with self._lock:
                self.invocations += 1
                self.failures += failed
                self.busy -= 1
        return True

    def _keep_invisible(self, message, done: threading.Event) -> None:
        while not done.wait(self.visibility / 2):
            try:
                updated = self.queue.update_message(
                    message.id, pop_receipt=message.pop_receipt, visibility_timeout=int(self.visibility)
                )
                message.pop_receipt = updated.pop_receipt
            except Exception:  # gone or taken over: the ledger keeps a second delivery harmless
                return

    def _delete(self, message) -> None:
        try:
            self.queue.delete_message(message)
        except (ResourceNotFoundError, HttpResponseError):
            pass  # its visibility ran out and another delivery took it: the ledger makes that harmless

    def _loop(self) -> None:
        pause = 0.02
        while not self._stop.is_set():
            try:
                took = self.step()
            except Exception:  # the listener outlives a storage error, as the host's does
                log.exception("queue listener: receiving failed")
                took = False
            if took:
                pause = 0.02
            else:
                self._stop.wait(pause)
                pause = min(pause * 2, self.max_poll)

    def start(self) -> QueueHost:
        for n in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"queue-host-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()

    def __enter__(self) -> QueueHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def depth(self) -> tuple[int, int]:
        return (
            self.queue.get_queue_properties().approximate_message_count,
            self.poison.get_queue_properties().approximate_message_count,
        )

    def drain(self, timeout: float = 30.0) -> None:
        """Run until the queue is empty and nothing is in hand (messages delayed count as waiting)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.depth()[0] == 0 and self.busy == 0:
                return
            if not self._threads:
                self.step()
            else:
                time.sleep(0.05)
        raise TimeoutError(f"the work queue did not drain in {timeout}s: {self.depth()}")
