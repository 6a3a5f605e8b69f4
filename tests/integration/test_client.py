"""The target client against the sandbox, with the real azure-identity ManagedIdentityCredential
speaking the App Service managed identity protocol to the sandbox's loopback token endpoint."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.identity import ManagedIdentityCredential

from payments.credentials import target_credential
from payments.errors import (
    AmbiguousOutcome,
    IdentityUnavailable,
    PermanentRejection,
    TargetUnavailable,
    Throttled,
)
from payments.posting import Pipeline
from payments.settings import load_settings
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from sandbox import SANDBOX_TOKEN_HEADER
from tests.support.relay import make_client

# Token audiences as the managed identity endpoint (the loopback sandbox) receives them; never contacted.
EXPECTED_BC_RESOURCE = "https://api.businesscentral.dynamics.com"
EXPECTED_GRAPH_RESOURCE = "https://graph.microsoft.com"


def test_fifty_payments_cost_one_token_request_and_the_token_reaches_the_target(azure_env, sandbox):
    azure_env("businesscentral", AZURE_CLIENT_ID="6f2b1c0e-2f7a-4c4e-9d0a-0b8f2a3c4d5e")
    c = make_client()
    for i in range(50):
        c.create_payment(C, J, {"customerNumber": "10000", "amount": i + 1})
    assert len(sandbox.token_requests) == 1
    [token_request] = sandbox.token_requests
    query = parse_qs(urlsplit(token_request.path).query)
    assert query == {
        "api-version": ["2019-08-01"],
        "resource": [EXPECTED_BC_RESOURCE],
        "client_id": ["6f2b1c0e-2f7a-4c4e-9d0a-0b8f2a3c4d5e"],
    }
    assert token_request.headers["X-IDENTITY-HEADER"] == SANDBOX_TOKEN_HEADER
    tokens = {r.headers.get("Authorization") for r in sandbox.requests}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer sandbox-token-")
    assert len(sandbox.payments()) == 50


def test_graph_scope_by_default(azure_env, sandbox):
    make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert parse_qs(urlsplit(sandbox.token_requests[0].path).query)["resource"] == [EXPECTED_GRAPH_RESOURCE]


def test_the_credential_is_azure_identity_managed_identity(azure_env):
    assert isinstance(target_credential(load_settings()), ManagedIdentityCredential)


def test_401_refreshes_the_token_once_then_succeeds(azure_env, sandbox):
    sandbox.inject("401")
    created = make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert created.body["id"]
    assert len(sandbox.token_requests) == 2
    first, second = (r.headers["Authorization"] for r in sandbox.requests)
    assert first != second and second.startswith("Bearer sandbox-token-")


def test_identity_endpoint_unreachable_is_unavailable_and_sends_nothing(azure_env, sandbox, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(IdentityUnavailable):
        make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert sandbox.requests == []


def test_retry_after_seconds_is_honoured(azure_env, sandbox):
    sleeps: list[float] = []
    sandbox.inject("429", times=2, retry_after="3")
    make_client(sleeps).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps)
    assert len(sandbox.payments()) == 1


def test_retries_are_bounded_by_attempts(azure_env, sandbox):
    azure_env(PAYMENTS_MAX_ATTEMPTS="4")
    sleeps: list[float] = []
    sandbox.inject("429", times=10, retry_after="1")
    with pytest.raises(Throttled) as info:
        make_client(sleeps).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert info.value.retry_after == 1
    assert len(sandbox.requests) == 4 and len(sleeps) == 3
    assert sandbox.payments() == []


def test_retries_are_bounded_by_total_time(azure_env, sandbox):
    azure_env(PAYMENTS_RETRY_MAX_SECONDS="5")
    sleeps: list[float] = []
    sandbox.inject("429", times=10, retry_after="60")
    with pytest.raises(Throttled) as info:
        make_client(sleeps).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert sleeps == []  # waiting 60 s would break the 5 s budget: give up and pass Retry-After on
    assert info.value.retry_after == 60


def test_backoff_grows_exponentially_without_retry_after(azure_env, sandbox):
    azure_env(PAYMENTS_BACKOFF_BASE_SECONDS="1", PAYMENTS_BACKOFF_MAX_SECONDS="30", PAYMENTS_MAX_ATTEMPTS="5")
    sleeps: list[float] = []
    sandbox.inject("503", times=4)
    make_client(sleeps).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert len(sleeps) == 4
    for n, slept in enumerate(sleeps):
        assert 2**n <= slept <= 2**n + 1  # base * 2^n plus up to one base of jitter


@pytest.mark.parametrize("status", ["502", "504"])
def test_gateway_errors_without_retry_after_are_ambiguous_for_a_post(azure_env, sandbox, status):
    sandbox.inject(status)
    with pytest.raises(AmbiguousOutcome):
        make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert len(sandbox.requests) == 1


@pytest.mark.parametrize("status", ["502", "504"])
def test_gateway_errors_with_retry_after_are_retried(azure_env, sandbox, status):
    sandbox.inject(status, retry_after="0")
    make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert len(sandbox.requests) == 2 and len(sandbox.payments()) == 1


def test_connection_refused_before_sending_is_retried_then_unavailable(azure_env, sandbox):
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    azure_env(PAYMENTS_API_BASE_URL=f"http://127.0.0.1:{port}/beta", PAYMENTS_MAX_ATTEMPTS="3")
    sleeps: list[float] = []
    with pytest.raises(TargetUnavailable) as info:
        make_client(sleeps).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert "could not reach the target" in info.value.message
    assert len(sleeps) == 2


def test_connection_dropped_before_the_target_acted_is_retried(azure_env, sandbox):
    # The sandbox reads the request and hangs up without creating anything: from the client's side
    # that is indistinguishable from a drop after commit, so it must be reported, never re-posted.
    sandbox.inject("drop-before")
    with pytest.raises(AmbiguousOutcome):
        make_client().create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    assert len(sandbox.requests) == 1 and sandbox.payments() == []


def test_permanent_rejection_carries_odata_code_and_message(azure_env, sandbox):
    with pytest.raises(PermanentRejection) as info:
        make_client().create_payment(
            C, J, {"customerNumber": "10000", "amount": 1, "documentNumber": "D" * 21}
        )
    assert info.value.status == 400
    assert info.value.code == "Application_StringExceededLength"
    assert "20" in info.value.message


def test_find_payments_filters_by_natural_key(azure_env, sandbox):
    c = make_client()
    c.create_payment(C, J, {"customerNumber": "10000", "amount": 1, "documentNumber": "A-1"})
    c.create_payment(C, J, {"customerNumber": "10000", "amount": 2, "externalDocumentNumber": "O'Brien"})
    assert [p["amount"] for p in c.find_payments(C, J, "documentNumber eq 'A-1'")] == [1]
    assert [str(p["amount"]) for p in c.find_payments(C, J, "externalDocumentNumber eq 'O''Brien'")] == ["2"]


def test_pipeline_does_not_hammer_an_unavailable_target(azure_env, sandbox):
    azure_env(PAYMENTS_MAX_ATTEMPTS="2", PAYMENTS_MAX_CONCURRENCY="1")
    sandbox.inject("503", times=2, retry_after="0")
    from payments.model import check

    payments = [check({"customerNumber": "10000", "amount": -n}).payment for n in (1, 2, 3)]
    outcomes = Pipeline(make_client()).post_all(C, J, payments)
    assert [(o.kind, o.attempted) for o in outcomes] == [
        ("unavailable", True),
        ("unavailable", False),
        ("unavailable", False),
    ]
    assert len(sandbox.requests) == 2


class ScriptedTarget:
    """A loopback HTTP server that answers each request with the next scripted bytes, then closes the
    connection if the script says so: for answers the sandbox cannot give (cut off mid-body)."""

    def __init__(self, answers: list[tuple[bytes, bool]]):
        import socket
        import threading

        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v2.0/t/e/api/v2.0"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while self.answers:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" not in data:
                        break
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = next(
                        (
                            int(line.split(b":")[1])
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length:")
                        ),
                        0,
                    )
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + rest[:length])
                    data = rest[length:]
                    answer, close = self.answers.pop(0)
                    conn.sendall(answer)
                    if close:
                        break

    def close(self) -> None:
        self.sock.close()


def _answer(status: str, body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        + body
    )


def test_an_answer_cut_off_mid_body_is_ambiguous_and_not_posted_again(azure_env, sandbox):
    target = ScriptedTarget([(_answer("201 Created", b'{"id": "abc", "amo', length=200), True)])
    azure_env("businesscentral", PAYMENTS_API_BASE_URL=target.url)
    try:
        with pytest.raises(AmbiguousOutcome, match="connection dropped"):
            make_client([]).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    finally:
        target.close()
    assert len(target.requests) == 1  # the payment may exist: never re-posted on a guess


def test_a_search_cut_off_mid_body_is_read_again(azure_env, sandbox):
    found = b'{"value": [{"id": "p-1", "amount": 12.50}]}'
    target = ScriptedTarget(
        [(_answer("200 OK", found[:10], length=len(found)), True), (_answer("200 OK", found), False)]
    )
    azure_env("businesscentral", PAYMENTS_API_BASE_URL=target.url)
    try:
        result = make_client([]).find_payments(C, J, "documentNumber eq 'X'")
    finally:
        target.close()
    assert result == [{"id": "p-1", "amount": Decimal("12.50")}]
    assert len(target.requests) == 2


def test_a_batch_item_with_an_unreadable_status_is_ambiguous_not_a_crash(azure_env, sandbox):
    answer = b'{"responses": [{"id": "0", "status": "created?", "body": {}}, {"id": "1", "status": 201, "body": {"id": "p-2"}}]}'
    target = ScriptedTarget([(_answer("200 OK", answer), False)])
    azure_env("businesscentral", PAYMENTS_API_BASE_URL=target.url, PAYMENTS_BATCH_SIZE="2")
    try:
        first, second = make_client([]).create_payments_batch(
            C, J, [{"customerNumber": "10000", "amount": 1}, {"customerNumber": "10000", "amount": 2}]
        )
    finally:
        target.close()
    assert isinstance(first, AmbiguousOutcome)
    assert second.body == {"id": "p-2"}


def test_a_gzipped_chunked_answer_is_read_whole(azure_env, sandbox):
    # Business Central compresses its answers; the relay reads each in one call and must still
    # decode it, whatever the framing.
    import gzip

    body = gzip.compress(b'{"id": "p-9", "amount": 1234567.89}')
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    target = ScriptedTarget([(head + chunked, False)])
    azure_env("businesscentral", PAYMENTS_API_BASE_URL=target.url)
    try:
        created = make_client([]).create_payment(C, J, {"customerNumber": "10000", "amount": 1})
    finally:
        target.close()
    assert created.body == {"id": "p-9", "amount": Decimal("1234567.89")}
