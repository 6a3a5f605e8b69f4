"""The wire: one pooled HTTP session to the target, and an exchange that holds a slot of the
in-flight limit only while its request and answer are on the wire."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .. import __version__
from ..settings import Settings
from .flow import InFlightLimit

USER_AGENT = f"payments-relay/{__version__} (+azure-functions; python-requests)"


def sent_nothing(exc: requests.RequestException) -> bool:
    """True when the connection failed before any byte of the request reached the target."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)


def _read_body(response: requests.Response) -> None:
    """Read the whole answer in one call. requests reads it in 10 KiB pieces, each a system call that
    gives up the interpreter lock and, while other workers run Python code, may wait up to the switch
    interval (5 ms) to get it back: a 60 KiB `$batch` answer could take tens of milliseconds."""
    try:
        response._content = response.raw.read(decode_content=True)  # what `response.content` returns
        response._content_consumed = True  # so close() keeps the connection for the next request
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc, request=response.request) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(exc, request=response.request) from None
    finally:
        response.close()  # the connection goes back to the pool (or is closed if not fully read)


class Transport:
    """Sends prepared requests over one pooled session, within the in-flight limit."""

    def __init__(self, settings: Settings, session: requests.Session | None = None, identities: int = 1):
        self._timeout = (settings.connect_timeout_seconds, settings.read_timeout_seconds)
        self._session = session or self._new_session(settings.max_concurrency * identities)
        self._options: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _new_session(max_concurrency: int) -> requests.Session:
        session = requests.Session()
        size = max(8, max_concurrency * 2)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size, pool_block=False, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        return session

    def close(self) -> None:
        self._session.close()

    def _transport_options(self, url: str) -> dict[str, Any]:
        """Proxy and CA settings from the environment, as requests would merge them on every call
        (scanning the whole environment each time); the target's host does not change, so once."""
        host = urlsplit(url).netloc
        options = self._options.get(host)
        if options is None:
            options = self._session.merge_environment_settings(url, {}, None, None, None)
            options["stream"] = True  # the body is read by _read_body, in one call
            self._options[host] = options
        return options  # read-only: the caller unpacks it into keyword arguments

    def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        in_flight: InFlightLimit,
        hold: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> requests.Response:
        """One request and its whole answer; raises requests' own errors for the caller to judge.
        `in_flight` is the identity's bound; `hold` is held with its slot (the slot shared with other
        instances, if any)."""
        # Everything but the exchange itself happens before taking a slot: the target's
        # concurrency limit counts requests, and a slot held while preparing is a slot wasted.
        session = self._session
        prepared = session.prepare_request(requests.Request(method, url, data=body, headers=headers))
        options = self._transport_options(prepared.url or url)
        with in_flight, hold():
            response = session.send(prepared, timeout=self._timeout, allow_redirects=False, **options)
            _read_body(response)
        return response
