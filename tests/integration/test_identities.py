"""Several identities (issue 25): the relay calls Business Central as every user-assigned managed identity
of PAYMENTS_TARGET_CLIENT_IDS, each with its own budget, through the real azure-identity against the
sandbox's managed identity endpoint, which issues each client id its own tokens; the sandbox keeps its
limits per identity, as Business Central does. Speed is bench/scale.py's."""

from __future__ import annotations

import time

import pytest

from payments.model import check
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from sandbox import Limits
from tests.support.relay import make_client, make_pipeline

A = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
B = "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e"


def payments(n: int, tag: str):
    return [
        check({"customerNumber": "10000", "documentNumber": f"{tag}-{i}", "amount": f"-{i + 1}"}).payment
        for i in range(n)
    ]


@pytest.fixture
def two(azure_env, sandbox):
    azure_env("businesscentral", PAYMENTS_TARGET_CLIENT_IDS=f"{A}, {B}")
    return sandbox


def test_each_identity_gets_its_own_token_and_the_requests_are_spread_over_them(two):
    client = make_client()
    assert [p.name for p in client.principals.all] == [A, B]
    outcomes = make_pipeline().post_all(C, J, payments(8, "SPREAD"))
    assert [o.kind for o in outcomes] == ["created"] * 8
    by_identity = dict(two.requests_by_identity)
    assert set(by_identity) == {A, B} and sum(by_identity.values()) == 8
    assert min(by_identity.values()) >= 3  # round-robin among identities with equal room


def test_an_identity_business_central_does_not_know_sits_out_and_the_others_post(two):
    """One identity is not (or no longer) on Business Central's Microsoft Entra Applications page: it is
    refused (401 Authentication_InvalidCredentials, after a fresh token); the relay sets it aside and
    posts everything as the other, nothing refused, nothing posted twice."""
    two.unregister(A)
    outcomes = make_pipeline().post_all(C, J, payments(6, "REFUSED"))
    assert [o.kind for o in outcomes] == ["created"] * 6
    assert len(two.payments()) == 6
    assert two.requests_by_identity[B] == 6 and two.requests_by_identity[A] == 0
    refused = [r for r in two.requests if r.method == "POST" and "sandbox-token" in r.headers["Authorization"]]
    assert len(refused) - 6 <= 2  # A was tried once, and once more with a fresh token, then set aside


def test_every_identity_refused_is_answered_not_authorized(two):
    two.unregister(A)
    two.unregister(B)
    [outcome] = make_pipeline().post_all(C, J, payments(1, "NONE"))
    assert outcome.kind == "denied" and two.payments() == []


def test_an_identity_throttled_does_not_stall_the_others(two, azure_env):
    """Another integration has spent identity A's window: Business Central answers A with 429 and a
    Retry-After of minutes. The relay pauses A alone; the payment is sent again at once as B, and the
    rest go as B, without waiting for A's window."""
    two.identity_limits[A] = Limits(rate=1, window=300.0)
    started = time.monotonic()
    outcomes = make_pipeline().post_all(C, J, payments(6, "THROTTLED"))
    assert [o.kind for o in outcomes] == ["created"] * 6
    assert time.monotonic() - started < 10
    assert two.throttled_count <= 2  # A is tried again only after its pause (doubling without Retry-After)
    # A created one and was answered 429 the other times; B created the rest.
    assert two.requests_by_identity[A] == 1 + two.throttled_count and two.requests_by_identity[B] == 5


def test_one_identity_is_the_default_and_behaves_as_before(azure_env, sandbox):
    azure_env("businesscentral")
    client = make_client()
    assert [p.name for p in client.principals.all] == ["default"]
    make_pipeline().post_all(C, J, payments(2, "ONE"))
    [(identity, count)] = sandbox.requests_by_identity.items()
    assert (identity, count) == ("7f3e2d1c-0b9a-4876-a5d4-c3b2a1f0e9d8", 2)  # the sandbox's default client id


def test_client_ids_are_checked(azure_env, sandbox):
    from payments.errors import SettingsError
    from payments.settings import load_settings

    azure_env("businesscentral", PAYMENTS_TARGET_CLIENT_IDS=f"{A},not-a-guid")
    with pytest.raises(SettingsError, match="not-a-guid"):
        load_settings()
