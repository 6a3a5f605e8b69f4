"""What can go wrong at the target, as types the HTTP and file paths map to their own answers.

The split that matters for money is whether the payment may exist: a permanent rejection or an
unavailable target means it certainly was not created; an ambiguous outcome means it may have been.
"""

from __future__ import annotations


class TargetError(Exception):
    """A request to the target API did not create the payment, or we cannot tell whether it did."""

    def __init__(self, message: str, *, status: int | None = None, client_request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.client_request_id = client_request_id


class PermanentRejection(TargetError):
    """The target refused the payment (a 4xx); sending it again unchanged will not help."""

    def __init__(self, message: str, *, status: int, code: str, client_request_id: str | None = None):
        super().__init__(message, status=status, client_request_id=client_request_id)
        self.code = code


class NotAuthorized(TargetError):
    """The target refused the relay's own identity (401 after a token refresh, or 403): an admin must act."""

    def __init__(self, message: str, *, status: int, code: str, client_request_id: str | None = None):
        super().__init__(message, status=status, client_request_id=client_request_id)
        self.code = code


class TargetUnavailable(TargetError):
    """Nothing was created and the target could not be reached or kept refusing for now; retry later."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 30,
        status: int | None = None,
        client_request_id: str | None = None,
    ):
        super().__init__(message, status=status, client_request_id=client_request_id)
        self.retry_after = retry_after


class Throttled(TargetUnavailable):
    """The target kept answering 429 within our retry budget."""


class Transient(TargetUnavailable):
    """The target kept failing in ways that prove the request was not processed (503, refused connection)."""


class IdentityUnavailable(TargetUnavailable):
    """No token could be obtained from the managed identity (or developer sign-in); nothing was sent."""


class AmbiguousOutcome(TargetError):
    """The request was sent and no definite answer came back: the payment may exist at the target."""
