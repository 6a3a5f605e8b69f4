"""Every error the relay defines, under one root, so a caller can tell ours from anyone else's.

For the target the split that matters for money is whether the payment may exist: a refusal or an
unavailable target means it certainly was not created; an ambiguous outcome means it may have been.
"""

from __future__ import annotations


class RelayError(Exception):
    """Root of every error type the relay defines."""


# -- input and configuration ---------------------------------------------------------------------


class SettingsError(RelayError, ValueError):
    """A missing or malformed setting, with a message naming the environment variable."""


class JsonSyntaxError(RelayError, ValueError):
    """The text is not JSON this relay accepts; the message says where and why."""


class NotUtf8Error(JsonSyntaxError):
    """The bytes are not UTF-8 (JSON exchanged between systems must be, RFC 8259)."""


class InputError(RelayError, ValueError):
    """A payment file as a whole cannot be read (encoding, syntax of a single JSON document, CSV header)."""


# -- callers -------------------------------------------------------------------------------------


class CallerRefused(RelayError):
    """A webhook call whose credential does not let it in: nothing was read or posted. `status` is 401
    (no credential we accept), 403 (a known caller without the role) or 503 (it cannot be checked now).

    `detail` is what the caller reads: what failed and what to send, never the relay's tenant, audience
    or settings. `reason` is the operator's version for the log (it may name them). `error` is the
    RFC 6750 error code for WWW-Authenticate: `invalid_token` for a credential that does not verify,
    `insufficient_scope` for a verified caller without the right, None when no credential was sent."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        reason: str = "",
        error: str | None = "invalid_token",
    ):
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.reason = reason or detail
        self.error = error


# -- our own storage -----------------------------------------------------------------------------


class LedgerUnavailable(RelayError):
    """The ledger could not be read or written: nothing may be posted without it."""


class PartlyPosted(RelayError):
    """A file stopped while its payments were being posted: some may be posted, the rest not. Dropping
    it again is safe (the ledger skips what was posted) and posts the rest."""


class FileBusy(RelayError):
    """Another worker holds this file; the host should deliver it again later."""


# -- the target ----------------------------------------------------------------------------------


class TargetError(RelayError):
    """A request to the target API did not create the payment, or we cannot tell whether it did."""

    may_exist = False  # True only when the payment may have been created (never send it again blindly)

    def __init__(self, message: str, *, status: int | None = None, client_request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.client_request_id = client_request_id


class TargetRefusal(TargetError):
    """The target answered with a definite refusal and its own error code: nothing was created."""

    def __init__(self, message: str, *, status: int, code: str, client_request_id: str | None = None):
        super().__init__(message, status=status, client_request_id=client_request_id)
        self.code = code


class PermanentRejection(TargetRefusal):
    """The target refused the payment (a 4xx); sending it again unchanged will not help."""


class NotAuthorized(TargetRefusal):
    """The target refused the relay's own identity (401 after a token refresh, or 403): an admin must act."""


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

    may_exist = True
