"""Who may post: Microsoft Entra ID applications (a token verified against the tenant's published keys,
the app role, the tenant, the audience) and Standard Webhooks senders (signature, timestamp, replay,
rotation). Through the registered functions, with the real ledger in Azurite and the sandbox as the
target: each case asserts the status and problem type the caller gets, and what reached the target.
The matrix is printed at the end of the run (tests/conftest.py) for the issue note."""

from __future__ import annotations

import base64
import time

import pytest

from payments.ledger import TableLedgerStore
from tests.support.entra import (
    CALLER_APP,
    OTHER_APP,
    OTHER_TENANT,
    RELAY_APP,
    principal,
)
from tests.support.webhook import (
    ACME_NEW_SECRET,
    ACME_SECRET,
    call,
    call_signed,
    get_openapi,
    get_status,
    pay,
    posts,
    signed_headers,
)
from tests.support.work import queue_host, queue_settings

PROBLEM = "urn:payments-relay:problem:"
SECRET, NEW_SECRET = ACME_SECRET, ACME_NEW_SECRET
OLD_SECRET = "whsec_" + base64.b64encode(b"acme-retired-secret-abcdefghijkl").decode()

MATRIX: list[dict[str, object]] = []  # printed by tests/conftest.py


def _record(credential: str, resp, body, sandbox, before: int) -> int:
    posted = len(posts(sandbox)) - before
    kind = (body or {}).get("type", "").removeprefix(PROBLEM) if resp.status_code >= 400 else "-"
    MATRIX.append({"credential": credential, "status": resp.status_code, "problem": kind, "posted": posted})
    return posted


def _entries(env):
    return list(TableLedgerStore(env.table).scan())


# -- Entra ID ---------------------------------------------------------------------------------------

ENTRA_CASES = [
    # credential, headers from the stand-in, status, problem type
    ("no credential", lambda e: {}, 401, "unauthenticated"),
    ("function key only", lambda e: {"x-functions-key": "a-function-key-value"}, 401, "unauthenticated"),
    ("token for another audience", lambda e: e.bearer(audience="api://someone-else"), 401, "unauthenticated"),
    ("expired token", lambda e: e.bearer(expires_in=-3600), 401, "unauthenticated"),
    ("token without the role", lambda e: e.bearer(roles=()), 403, "forbidden"),
    ("token from another tenant", lambda e: e.bearer(tenant=OTHER_TENANT), 401, "unauthenticated"),
    (
        "token signed with a key the tenant does not publish",
        lambda e: e.bearer(signed_by=e.stranger),
        401,
        "unauthenticated",
    ),
    (
        "principal header only (forged: no token)",
        lambda e: {"X-MS-CLIENT-PRINCIPAL": principal()},
        401,
        "unauthenticated",
    ),
]


@pytest.mark.parametrize(
    ("credential", "headers", "status", "kind"), ENTRA_CASES, ids=[c[0] for c in ENTRA_CASES]
)
def test_a_call_without_a_valid_entra_token_is_refused_and_nothing_is_posted(
    relay, sandbox, credential, headers, status, kind
):
    before = len(posts(sandbox))
    resp, body = call(pay(documentNumber="AUTH-1"), headers=headers(relay.entra))
    assert (resp.status_code, body["type"]) == (status, PROBLEM + kind), body
    assert body["detail"]  # says what to send
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert _record(credential, resp, body, sandbox, before) == 0
    assert _entries(relay) == []  # nothing accepted either


@pytest.mark.parametrize("version", ["2.0", "1.0"])
def test_a_valid_token_posts_once_and_the_ledger_records_the_calling_application(relay, sandbox, version):
    before = len(posts(sandbox))
    resp, body = call(pay(documentNumber=f"AUTH-OK-{version}"), headers=relay.entra.bearer(version=version))
    assert resp.status_code == 201, body
    assert _record(f"valid token (v{version})", resp, body, sandbox, before) == 1
    [entry] = _entries(relay)
    assert (entry.state, entry.caller) == ("posted", f"app:{CALLER_APP}")


def test_an_application_outside_the_allowed_list_is_forbidden(relay, sandbox, azure_env):
    azure_env("businesscentral", PAYMENTS_AUTH_CLIENT_APPLICATIONS=OTHER_APP)
    before = len(posts(sandbox))
    resp, body = call(pay(), headers=relay.entra.bearer())
    assert (resp.status_code, body["type"]) == (403, PROBLEM + "forbidden")
    assert CALLER_APP in body["detail"]  # its own id; the setting's name stays in the log
    assert "PAYMENTS_AUTH_CLIENT_APPLICATIONS" not in resp.get_body().decode()
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="payments-relay", error="insufficient_scope"')
    assert _record("token of an application not allowed", resp, body, sandbox, before) == 0


def test_without_the_tenants_keys_the_call_is_answered_503_not_401(relay, sandbox):
    relay.entra.down = True
    azure_env_token = relay.entra.bearer()
    try:
        from payments import runtime

        runtime.reset()  # a fresh worker: no keys cached
        before = len(posts(sandbox))
        resp, body = call(pay(), headers=azure_env_token)
    finally:
        relay.entra.down = False
    assert (resp.status_code, body["type"]) == (503, PROBLEM + "auth-unavailable")
    assert resp.headers["Retry-After"] == "30"
    assert _record("valid token, tenant keys unreachable", resp, body, sandbox, before) == 0


def test_clock_skew_of_up_to_60_seconds_is_allowed_on_expiry(relay, sandbox):
    resp, _ = call(pay(documentNumber="SKEW-1"), headers=relay.entra.bearer(expires_in=-30))
    assert resp.status_code == 201
    resp, body = call(pay(documentNumber="SKEW-2"), headers=relay.entra.bearer(expires_in=-90))
    assert (resp.status_code, body["title"]) == (401, "Token expired")
    assert len(posts(sandbox)) == 1


def test_a_token_signed_with_a_key_entra_id_rolled_in_since_is_admitted(relay, sandbox):
    from payments import runtime

    resp, _ = call(pay(documentNumber="ROLL-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201  # the keys are cached now
    fetches = relay.entra.fetches
    relay.entra.roll()
    runtime.gate()._entra.keys.cooldown_duration = 0  # the 30 s between refetches, for the test's sake
    resp, body = call(pay(documentNumber="ROLL-2"), headers=relay.entra.bearer())
    assert resp.status_code == 201, body
    assert relay.entra.fetches == fetches + 1  # fetched once more, for the unknown key id
    assert len(posts(sandbox)) == 2


def test_the_platform_principal_is_used_when_token_verification_is_off(relay, sandbox, azure_env):
    azure_env("businesscentral", PAYMENTS_AUTH_VERIFY_TOKEN="false")
    before = len(posts(sandbox))
    resp, body = call(pay(documentNumber="P-1"), headers={"X-MS-CLIENT-PRINCIPAL": principal(roles=())})
    assert (resp.status_code, body["type"]) == (403, PROBLEM + "forbidden")
    resp, body = call(pay(documentNumber="P-1"), headers={"X-MS-CLIENT-PRINCIPAL": principal()})
    assert resp.status_code == 201
    assert len(posts(sandbox)) - before == 1


def test_a_principal_that_disagrees_with_the_token_is_refused(relay, sandbox):
    headers = {**relay.entra.bearer(), "X-MS-CLIENT-PRINCIPAL": principal(app=OTHER_APP)}
    resp, body = call(pay(), headers=headers)
    assert resp.status_code == 401 and "differ" in body["detail"]
    assert posts(sandbox) == []


def test_entra_without_its_settings_answers_misconfigured_not_open(azure_env, sandbox):
    azure_env("graph", PAYMENTS_INBOUND_AUTH="entra")
    resp, body = call(pay())
    assert (resp.status_code, body["type"]) == (500, PROBLEM + "relay-misconfigured")
    assert "PAYMENTS_AUTH_TENANT_ID" in body["detail"] and "PAYMENTS_AUTH_AUDIENCES" in body["detail"]
    assert posts(sandbox) == []


def test_no_caller_check_is_refused_on_azure(azure_env, sandbox):
    azure_env("graph", PAYMENTS_INBOUND_AUTH="none", WEBSITE_SITE_NAME="pay-prod-app")
    resp, body = call(pay())
    assert (resp.status_code, body["type"]) == (500, PROBLEM + "relay-misconfigured")
    assert "PAYMENTS_INBOUND_AUTH=none" in body["detail"]
    assert posts(sandbox) == []


# -- Standard Webhooks ------------------------------------------------------------------------------


def _signed(relay, sandbox, credential, body, headers, *, expect):
    before = len(posts(sandbox))
    resp, answer = call_signed(body, sender="acme", headers=headers)
    assert resp.status_code == expect, answer
    _record(credential, resp, answer, sandbox, before)
    return resp, answer


def test_signed_webhooks_matrix(relay, sandbox):
    payment = pay(documentNumber="WH-1")
    raw = __import__("json").dumps(payment).encode()
    # no signature, a bad one, an old timestamp: 401, nothing posted
    resp, answer = _signed(relay, sandbox, "no signature", raw, {}, expect=401)
    assert answer["type"] == PROBLEM + "signature-missing" and "webhook-signature" in answer["detail"]
    assert resp.headers["WWW-Authenticate"].startswith("webhook-signature")
    bad = signed_headers(raw, OLD_SECRET)
    _, answer = _signed(relay, sandbox, "bad signature (a secret not configured)", raw, bad, expect=401)
    assert answer["type"] == PROBLEM + "signature-invalid"
    tampered = signed_headers(raw, SECRET)
    _, answer = _signed(
        relay,
        sandbox,
        "valid signature, body changed after signing",
        raw.replace(b"12.50", b"12.51"),
        tampered,
        expect=401,
    )
    assert answer["type"] == PROBLEM + "signature-invalid"
    old = signed_headers(raw, SECRET, timestamp=int(time.time()) - 301)
    _, answer = _signed(relay, sandbox, "old timestamp (301 s, tolerance 300 s)", raw, old, expect=401)
    assert answer["type"] == PROBLEM + "signature-expired" and "301 s old" in answer["detail"]
    assert posts(sandbox) == []
    # valid: posted once; the same signed request again: a replay, refused
    valid = signed_headers(raw, SECRET, msg_id="msg_valid_1")
    _signed(relay, sandbox, "valid signature", raw, valid, expect=201)
    _, answer = _signed(relay, sandbox, "replayed webhook-id (same id and timestamp)", raw, valid, expect=401)
    assert answer["type"] == PROBLEM + "signature-replayed"
    # the sender's retry signs afresh: admitted, answered from the ledger (webhook-id is the key)
    retry = signed_headers(raw, SECRET, msg_id="msg_valid_1", timestamp=int(time.time()) + 1)
    resp, _ = _signed(
        relay, sandbox, "sender's retry: same webhook-id, new timestamp", raw, retry, expect=201
    )
    assert resp.headers["Idempotent-Replayed"] == "true"
    assert len(posts(sandbox)) == 1
    # rotation: the new secret signs; a delivery signed with both (old and new) passes too
    rotated = signed_headers(raw.replace(b"WH-1", b"WH-2"), NEW_SECRET)
    _signed(
        relay, sandbox, "rotated secret (the new one)", raw.replace(b"WH-1", b"WH-2"), rotated, expect=201
    )
    assert len(posts(sandbox)) == 2
    entries = _entries(relay)
    assert {e.caller for e in entries} == {"webhook:acme"}


def test_a_retired_secret_no_longer_verifies(relay, sandbox, azure_env, monkeypatch):
    monkeypatch.setenv("PAYMENTS_WEBHOOK_SECRET_ACME", NEW_SECRET)  # rotation finished
    azure_env("businesscentral")
    raw = b'{"customerNumber": "10000", "amount": -3}'
    _, answer = _signed(
        relay, sandbox, "retired secret after rotation", raw, signed_headers(raw, SECRET), expect=401
    )
    assert answer["type"] == PROBLEM + "signature-invalid"
    assert posts(sandbox) == []


def test_an_unknown_sender_and_a_token_on_a_signed_route_are_refused(relay, sandbox):
    raw = b'{"customerNumber": "10000", "amount": -3}'
    resp, answer = call_signed(raw, sender="globex", headers=signed_headers(raw, SECRET))
    assert (resp.status_code, answer["type"]) == (401, PROBLEM + "unknown-sender")
    resp, answer = call_signed(raw, sender="acme", headers=relay.entra.bearer())
    assert (resp.status_code, answer["type"]) == (401, PROBLEM + "signature-missing")
    assert posts(sandbox) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "m1", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m1", "webhook-timestamp": "1e9", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m 1\x7f", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,***"},
        {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "nonsense"},
        {"webhook-id": "m1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v2,AAAA v1"},
    ],
)
def test_malformed_signature_headers_get_401_never_500(relay, sandbox, headers):
    resp, answer = call_signed(b'{"customerNumber": "10000", "amount": -3}', sender="acme", headers=headers)
    assert resp.status_code == 401 and answer["type"].startswith(PROBLEM + "signature-"), answer
    assert posts(sandbox) == []


# -- what a caller sees: its own batches, the contract ---------------------------------------------


def test_a_caller_sees_only_its_own_batches(relay, sandbox, azure_env):
    settings = queue_settings()
    azure_env("businesscentral", **settings)
    relay.settings.update(settings)
    mine = relay.entra.bearer()
    resp, body = call([pay(documentNumber="B-1")], headers={**mine, "Prefer": "respond-async"})
    assert resp.status_code == 202
    location = resp.headers["Location"]
    other = relay.entra.bearer(app=OTHER_APP)
    resp, answer = get_status(location, other)
    assert (resp.status_code, answer["type"]) == (404, PROBLEM + "batch-not-found")
    resp, answer = get_status(location)  # no credential at all
    assert resp.status_code == 401
    resp, answer = get_status(location, mine)
    assert resp.status_code == 200 and answer["id"] == body["id"]


def test_a_signed_senders_batch_is_followed_on_its_own_route_with_a_signed_get(relay, sandbox, azure_env):
    azure_env("businesscentral", **queue_settings())
    raw = b'[{"customerNumber": "10000", "amount": -4, "documentNumber": "SB-1"}]'
    resp, body = call_signed(
        raw, sender="acme", headers={**signed_headers(raw, SECRET), "Prefer": "respond-async"}
    )
    assert resp.status_code == 202
    location = resp.headers["Location"]
    assert location == f"/api/webhooks/acme/batches/{body['id']}"
    resp, answer = get_status(location)
    assert (resp.status_code, answer["type"]) == (401, PROBLEM + "signature-missing")
    resp, answer = get_status(location, signed_headers(b"", SECRET))
    assert resp.status_code == 200 and answer["id"] == body["id"]
    resp, answer = get_status(
        f"/api/batches/{body['id']}", relay.entra.bearer()
    )  # an Entra caller: not its batch
    assert resp.status_code == 404


def test_a_deferred_batch_records_its_sender_in_every_ledger_entry(relay, sandbox, azure_env):
    settings = queue_settings()
    azure_env("businesscentral", **settings)
    relay.settings.update(settings)
    payments = [pay(documentNumber=f"D-{i}") for i in range(3)]
    resp, _body = call(payments, headers={**relay.entra.bearer(), "Prefer": "respond-async"})
    assert resp.status_code == 202
    with queue_host(relay) as host:
        host.drain(timeout=30)
    entries = _entries(relay)
    assert len(entries) == 3 and {(e.state, e.caller) for e in entries} == {("posted", f"app:{CALLER_APP}")}


def test_the_openapi_document_is_served_to_admitted_callers_only(relay, sandbox):
    resp, _ = get_openapi()
    assert resp.status_code == 401
    resp, doc = get_openapi(relay.entra.bearer())
    assert resp.status_code == 200 and doc["openapi"] == "3.1.0"
    flow = doc["components"]["securitySchemes"]["entra"]["flows"]["clientCredentials"]
    assert flow["scopes"] == {f"{RELAY_APP}/.default": "post payments (app role Payments.Submit)"}
    assert flow["tokenUrl"].startswith(relay.entra.authority)


def test_signed_deliveries_past_the_tolerance_are_purged_by_the_nightly_timer(relay, sandbox):
    from azure.data.tables import TableClient

    from payments import runtime

    raw = b'{"customerNumber": "10000", "amount": -5}'
    now = int(time.time())
    call_signed(raw, sender="acme", headers=signed_headers(raw, SECRET, timestamp=now - 200))
    call_signed(raw, sender="acme", headers=signed_headers(raw, SECRET, timestamp=now))
    table = TableClient.from_connection_string(
        relay.azurite.connection_string, relay.settings["PAYMENTS_WEBHOOK_TABLE"]
    )
    assert len(list(table.list_entities())) == 2
    gate = runtime.gate()
    gate.clock = lambda: time.time() + 2 * 300 - 100  # 100 s later than the first one may be kept
    assert gate.purge() == 1
    assert [e["Signed"] for e in table.list_entities()] == [int(time.time())] or len(
        list(table.list_entities())
    ) == 1
