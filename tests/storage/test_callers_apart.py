"""Callers stay apart (issue 23), through the registered functions with the ledger in Azurite, Entra ID's
keys on loopback (tests/support/entra.py) and signatures by the reference Standard Webhooks library:

- a signing key the tenant withdrew is refused once the set that no longer lists it is fetched, and at
  the latest when the cached set's hour is up; unknown key ids cost at most one fetch per cooldown, an
  unreachable authority too;
- an explicit idempotency key (Idempotency-Key, webhook-id) is its caller's own: another caller sending
  the same text reads nothing and blocks nothing; the same payment sent without a key still posts once
  whoever sends it; entries from before keep answering their own caller;
- a refusal says what failed (RFC 6750) without the relay's tenant, audience or settings, which go to a
  log that a flood of refusals cannot flood.

Each hole's test failed before the change it names (the issue note has the table)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from payments import runtime
from payments.ledger import TableLedgerStore, evolve, former_key
from payments.ledger.entry import Scope
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.entra import CALLER_APP, OTHER_APP, OTHER_TENANT, RELAY_APP, TENANT
from tests.support.webhook import (
    ACME_SECRET,
    call,
    call_signed,
    get_status,
    pay,
    posts,
    signed_headers,
)
from tests.support.work import queue_host, queue_settings

PROBLEM = "urn:payments-relay:problem:"


def _keys():
    return runtime.gate()._entra.keys  # the worker's copy of the tenant's keys


def _entries(env):
    return list(TableLedgerStore(env.table).scan())


def _numbers(sandbox) -> list[str]:
    """The documentNumber of each payment the target received, in order."""
    return [json.loads(p.body)["documentNumber"] for p in posts(sandbox)]


# -- a withdrawn signing key ------------------------------------------------------------------------


def test_a_key_the_tenant_withdrew_is_refused_once_the_set_without_it_is_fetched(relay, sandbox):
    """Before: PyJWT's per-key cache kept the withdrawn key, and its tokens posted payments."""
    resp, _ = call(pay(documentNumber="W-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201  # the key set is cached now, the current key with it
    withdrawn, old_kid = relay.entra.withdraw()  # an emergency rollover: only a new key is listed
    _keys().cooldown_duration = 0  # the 30 s between refetches, for the test's sake
    resp, body = call(pay(documentNumber="W-2"), headers=relay.entra.bearer())
    assert resp.status_code == 201, body  # the new key's id made the relay fetch the set again
    forged = relay.entra.bearer(signed_by=withdrawn, kid=old_kid)
    resp, body = call(pay(documentNumber="W-3"), headers=forged)
    assert (resp.status_code, body["type"]) == (401, PROBLEM + "unauthenticated")
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="payments-relay", error="invalid_token", error_description="Invalid token"'
    )
    assert "current keys" in body["detail"]
    assert _numbers(sandbox) == ["W-1", "W-2"]


def test_a_withdrawn_key_is_refused_when_the_cached_set_expires_even_if_no_new_key_was_seen(relay, sandbox):
    resp, _ = call(pay(documentNumber="X-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201
    withdrawn, old_kid = relay.entra.withdraw()
    fetches = relay.entra.fetches
    _keys().jwk_set_cache.lifespan = 0  # the cached set's hour is up
    resp, body = call(pay(documentNumber="X-2"), headers=relay.entra.bearer(signed_by=withdrawn, kid=old_kid))
    assert resp.status_code == 401, body
    assert relay.entra.fetches == fetches + 1
    assert _numbers(sandbox) == ["X-1"]


def test_unknown_key_ids_cost_at_most_one_fetch_per_cooldown(relay, sandbox):
    resp, _ = call(pay(documentNumber="K-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201
    fetches = relay.entra.fetches
    for _ in range(20):
        forged = relay.entra.bearer(signed_by=relay.entra.stranger, kid=uuid.uuid4().hex)
        resp, _ = call(pay(documentNumber="K-2"), headers=forged)
        assert resp.status_code == 401
    assert relay.entra.fetches == fetches  # within the cooldown after the first fetch: none
    assert len(posts(sandbox)) == 1


def test_an_unreachable_authority_is_asked_at_most_once_per_cooldown_and_answers_503(relay, sandbox):
    """Before: every call fetched again while the authority was down (PyJWT cools down after successful
    fetches only)."""
    fetches = relay.entra.fetches
    relay.entra.down = True
    try:
        for _ in range(10):
            resp, body = call(pay(documentNumber="D-1"), headers=relay.entra.bearer())
            assert (resp.status_code, body["type"]) == (503, PROBLEM + "auth-unavailable")
            assert "WWW-Authenticate" not in resp.headers and resp.headers["Retry-After"] == "30"
        assert relay.entra.fetches - fetches == 1  # one per cooldown (30 s), and this run is shorter
    finally:
        relay.entra.down = False
    assert posts(sandbox) == []


def test_a_key_added_beside_the_old_one_is_admitted_and_the_old_one_still_verifies(relay, sandbox):
    resp, _ = call(pay(documentNumber="A-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201
    old_key, old_kid = relay.entra.key, relay.entra.kid
    relay.entra.roll()  # a planned rollover: both keys listed
    _keys().cooldown_duration = 0
    resp, _ = call(pay(documentNumber="A-2"), headers=relay.entra.bearer())
    assert resp.status_code == 201
    resp, _ = call(pay(documentNumber="A-3"), headers=relay.entra.bearer(signed_by=old_key, kid=old_kid))
    assert resp.status_code == 201  # still listed: still trusted
    assert len(posts(sandbox)) == 3


# -- idempotency keys are the caller's own ----------------------------------------------------------


def _signed_pay(relay, body: dict, msg_id: str, *, timestamp: int | None = None):
    raw = json.dumps(body).encode()
    return call_signed(raw, sender="acme", headers=signed_headers(raw, ACME_SECRET, msg_id=msg_id, timestamp=timestamp))


def test_another_caller_sending_a_signed_deliverys_key_reads_nothing_of_its_answer(relay, sandbox):
    """Before: an Entra application sending acme's payment with `Idempotency-Key:
    webhook-id:webhook:acme:<id>` got acme's stored answer back (its payment's id, Idempotent-Replayed).
    Now the key is that application's own and new: its payment is its own, posted as any payment it may
    send (an application allowed to post can always post a copy; it can no longer read another's)."""
    resp, acme = _signed_pay(relay, pay(documentNumber="ACME-1"), "msg_a1")
    assert resp.status_code == 201
    key = {"Idempotency-Key": "webhook-id:webhook:acme:msg_a1"}
    resp, body = call(pay(documentNumber="ACME-1"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers, body
    assert body["id"] != acme["id"]
    resp, again = _signed_pay(relay, pay(documentNumber="ACME-1"), "msg_a1", timestamp=int(time.time()) + 1)
    assert (resp.status_code, resp.headers["Idempotent-Replayed"], again["id"]) == (201, "true", acme["id"])
    assert {e.caller for e in _entries(relay)} == {"webhook:acme", f"app:{CALLER_APP}"}


def test_another_caller_cannot_probe_for_a_signed_deliverys_key(relay, sandbox):
    """Before: another payment under acme's key text answered 422 idempotency-key-reused, which told
    the caller that acme had used that webhook-id."""
    resp, _ = _signed_pay(relay, pay(documentNumber="ACME-3"), "msg_c1")
    assert resp.status_code == 201
    key = {"Idempotency-Key": "webhook-id:webhook:acme:msg_c1"}
    resp, body = call(pay(documentNumber="APP-1"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201 and body["documentNumber"] == "APP-1", body
    assert _numbers(sandbox) == ["ACME-3", "APP-1"]


def test_another_caller_cannot_block_a_signed_delivery_by_sending_its_key_first(relay, sandbox):
    """Before: the genuine delivery was answered 422 idempotency-key-reused and never posted."""
    key = {"Idempotency-Key": "webhook-id:webhook:acme:msg_b1"}
    resp, _ = call(pay(documentNumber="SQUAT-1", amount="-1.00"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201
    resp, body = _signed_pay(relay, pay(documentNumber="ACME-2"), "msg_b1")
    assert resp.status_code == 201, body
    assert _numbers(sandbox) == ["SQUAT-1", "ACME-2"]
    assert {(e.caller, e.state) for e in _entries(relay)} == {
        (f"app:{CALLER_APP}", "posted"),
        ("webhook:acme", "posted"),
    }


def test_two_applications_with_the_same_idempotency_key_each_post_their_own_payment(relay, sandbox):
    key = {"Idempotency-Key": "order-4711"}
    resp, first = call(pay(documentNumber="O-1"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201
    resp, second = call(pay(documentNumber="O-2"), headers={**relay.entra.bearer(app=OTHER_APP), **key})
    assert resp.status_code == 201, second  # before: 422 idempotency-key-reused
    resp, replay = call(pay(documentNumber="O-1"), headers={**relay.entra.bearer(), **key})
    assert (resp.status_code, resp.headers["Idempotent-Replayed"], replay["id"]) == (201, "true", first["id"])
    assert len(posts(sandbox)) == 2


def test_the_same_payment_without_a_key_posts_once_whoever_sends_it(relay, sandbox):
    resp, first = call(pay(documentNumber="N-1"), headers=relay.entra.bearer())
    assert resp.status_code == 201
    resp, second = call(pay(documentNumber="N-1"), headers=relay.entra.bearer(app=OTHER_APP))
    assert (resp.status_code, resp.headers["Payments-Already-Posted"], second["id"]) == (200, "true", first["id"])
    assert len(posts(sandbox)) == 1


def test_queued_batches_of_two_callers_with_one_key_are_kept_and_posted_apart(relay, sandbox, azure_env):
    settings = queue_settings()
    azure_env("businesscentral", **settings)
    relay.settings.update(settings)
    key = {"Idempotency-Key": "nightly-run", "Prefer": "respond-async"}
    mine, theirs = relay.entra.bearer(), relay.entra.bearer(app=OTHER_APP)
    resp, a = call([pay(documentNumber="Q-A1"), pay(documentNumber="Q-A2")], headers={**mine, **key})
    assert resp.status_code == 202
    resp, b = call([pay(documentNumber="Q-B1"), pay(documentNumber="Q-B2")], headers={**theirs, **key})
    assert resp.status_code == 202
    with queue_host(relay) as host:
        host.drain(timeout=30)
    for location, headers, numbers in ((a["statusUrl"], mine, ["Q-A1", "Q-A2"]), (b["statusUrl"], theirs, ["Q-B1", "Q-B2"])):
        resp, status = get_status(location, headers)
        assert status["summary"] == {"total": 2, "created": 2}, status
        assert [r["payment"]["documentNumber"] for r in status["results"]] == numbers
    assert sorted(_numbers(sandbox)) == ["Q-A1", "Q-A2", "Q-B1", "Q-B2"]
    assert {e.caller for e in _entries(relay)} == {f"app:{CALLER_APP}", f"app:{OTHER_APP}"}


# -- entries from before keys were the caller's -----------------------------------------------------


def _as_before(env, caller: str | None) -> None:
    """Rewrite the ledger's one entry as the relay wrote it before keys were the caller's: under the
    former shared key of its Idempotency-Key (here always "legacy-1"), recording `caller` (None: from
    before callers were recorded). A fresh worker then starts on a ledger that holds it."""
    store = TableLedgerStore(env.table)
    [entry] = list(store.scan())
    scope = Scope(C, J)
    assert store.insert(evolve(entry, key=former_key(scope, "legacy-1"), caller=caller, etag=None))
    assert store.delete(entry)
    for entity in env.table.query_entities("PartitionKey eq '~ledger'"):
        env.table.delete_entity(entity)  # the mark: as if no worker had used caller keys yet
    runtime.reset()


def _posted_once_before(relay, caller: str | None) -> dict:
    key = {"Idempotency-Key": "legacy-1"}
    resp, first = call(pay(documentNumber="L-1"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201
    _as_before(relay, caller)
    return first


@pytest.mark.parametrize("recorded", [f"app:{CALLER_APP}", None], ids=["its caller recorded", "no caller"])
def test_an_entry_from_before_answers_its_own_callers_retry_without_posting(relay, sandbox, recorded):
    first = _posted_once_before(relay, recorded)
    key = {"Idempotency-Key": "legacy-1"}
    resp, again = call(pay(documentNumber="L-1"), headers={**relay.entra.bearer(), **key})
    assert (resp.status_code, resp.headers.get("Idempotent-Replayed"), again["id"]) == (201, "true", first["id"])
    assert len(posts(sandbox)) == 1


def test_an_entry_from_before_is_not_another_callers(relay, sandbox):
    _posted_once_before(relay, f"app:{CALLER_APP}")
    key = {"Idempotency-Key": "legacy-1"}
    resp, body = call(pay(documentNumber="L-2"), headers={**relay.entra.bearer(app=OTHER_APP), **key})
    assert resp.status_code == 201 and body["documentNumber"] == "L-2", body
    assert len(posts(sandbox)) == 2


def test_former_keys_are_looked_up_only_for_the_retention_period_after_caller_keys_began(relay, sandbox):
    _posted_once_before(relay, f"app:{CALLER_APP}")
    began = datetime.now(UTC) - timedelta(days=31)  # retention is 30 days
    relay.table.create_entity({"PartitionKey": "~ledger", "RowKey": "caller-keys-since", "Value": began})
    key = {"Idempotency-Key": "legacy-1"}
    resp, _ = call(pay(documentNumber="L-1"), headers={**relay.entra.bearer(), **key})
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers
    assert len(posts(sandbox)) == 2  # the former entry had expired by then anyway


def test_a_ledger_that_was_empty_when_caller_keys_began_never_looks_for_former_keys(relay, sandbox):
    resp, _ = call(pay(documentNumber="E-1"), headers={**relay.entra.bearer(), "Idempotency-Key": "e-1"})
    assert resp.status_code == 201
    [mark] = relay.table.query_entities("PartitionKey eq '~ledger'")
    assert (mark["RowKey"], mark["Value"].year) == ("caller-keys-since", 1970)
    assert [e.key[:2] for e in _entries(relay)] == ["c-"]  # the mark is no entry of the ledger's


# -- what a refusal says, and what the log keeps ----------------------------------------------------

DISCLOSING = (TENANT, RELAY_APP, "PAYMENTS_", "Payments.Submit")

REFUSALS = [
    # what the caller sends, status, WWW-Authenticate, problem title
    ("nothing", lambda e: {}, 401, 'Bearer realm="payments-relay"', "A Microsoft Entra ID token is required"),
    (
        "a token for another audience",
        lambda e: e.bearer(audience="api://someone-else"),
        401,
        'Bearer realm="payments-relay", error="invalid_token", error_description="Token for another audience"',
        "Token for another audience",
    ),
    (
        "a token from another tenant",
        lambda e: e.bearer(tenant=OTHER_TENANT),
        401,
        'Bearer realm="payments-relay", error="invalid_token", error_description="Token from another tenant"',
        "Token from another tenant",
    ),
    (
        "an expired token",
        lambda e: e.bearer(expires_in=-3600),
        401,
        'Bearer realm="payments-relay", error="invalid_token", error_description="Token expired"',
        "Token expired",
    ),
    (
        "a token without the role",
        lambda e: e.bearer(roles=()),
        403,
        'Bearer realm="payments-relay", error="insufficient_scope", '
        'error_description="The caller lacks the app role"',
        "The caller lacks the app role",
    ),
]


@pytest.mark.parametrize(
    ("sent", "headers", "status", "challenge", "title"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_a_refusal_says_what_failed_without_the_relays_tenant_audience_or_settings(
    relay, sandbox, caplog, sent, headers, status, challenge, title
):
    """Before: a call without a token learned the audience, a token from another tenant the tenant id,
    a 403 the setting's name; and no RFC 6750 error code said what failed."""
    with caplog.at_level(logging.WARNING, logger="payments.inbound"):
        resp, body = call(pay(), headers=headers(relay.entra))
    raw = resp.get_body().decode()
    assert (resp.status_code, body["title"], resp.headers["WWW-Authenticate"]) == (status, title, challenge)
    assert not [word for word in DISCLOSING if word in raw], raw
    assert body["detail"]  # still says what to do
    [line] = [r.getMessage() for r in caplog.records if r.name == "payments.inbound"]
    assert line.startswith(f"caller refused ({status} ")
    assert "eyJ" not in line  # never the token


def test_the_log_says_what_the_caller_is_not_told(relay, sandbox, caplog, azure_env):
    azure_env("businesscentral", PAYMENTS_AUTH_CLIENT_APPLICATIONS=OTHER_APP)
    with caplog.at_level(logging.WARNING, logger="payments.inbound"):
        call(pay(), headers=relay.entra.bearer(tenant=OTHER_TENANT))
        call(pay(), headers=relay.entra.bearer())
    lines = [r.getMessage() for r in caplog.records if r.name == "payments.inbound"]
    assert f"not tenant {TENANT}" in lines[0] and OTHER_TENANT in lines[0]
    assert f"application {CALLER_APP} is not in PAYMENTS_AUTH_CLIENT_APPLICATIONS" in lines[1]


def test_an_unknown_sender_is_not_told_the_setting(relay, sandbox):
    raw = b'{"customerNumber": "10000", "amount": -3}'
    resp, body = call_signed(raw, sender="globex", headers=signed_headers(raw, ACME_SECRET))
    assert (resp.status_code, body["type"]) == (401, PROBLEM + "unknown-sender")
    assert "PAYMENTS_" not in resp.get_body().decode()
    assert resp.headers["WWW-Authenticate"] == (
        'webhook-signature realm="payments-relay", error="invalid_token", '
        'error_description="Unknown webhook sender"'
    )


def test_a_flood_of_refusals_logs_ten_lines_a_minute_and_counts_the_rest(relay, sandbox, caplog, monkeypatch):
    from payments.inbound.refusal import REFUSALS

    clock = [1000.0]
    monkeypatch.setattr(REFUSALS, "clock", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="payments.inbound"):
        for _ in range(500):
            resp, _ = call(pay(), headers={"Authorization": "Bearer not-a-jwt"})
            assert resp.status_code == 401
        clock[0] += 61
        call(pay(), headers={"Authorization": "Bearer not-a-jwt"})
    lines = [r.getMessage() for r in caplog.records if r.name == "payments.inbound"]
    assert len(lines) == 12
    assert lines[10] == (
        "490 more callers refused (unauthenticated) in the minute before were counted, not logged one by one"
    )
    assert posts(sandbox) == []
