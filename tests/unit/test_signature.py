"""Standard Webhooks verification (payments.inbound.signature) against the specification's published
example and the reference implementation (PyPI standardwebhooks), and the settings that hold secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from payments.errors import CallerRefused, SettingsError
from payments.inbound import MemoryDeliveries
from payments.inbound.signature import Delivery, verify
from payments.settings import load_settings

# The example in standard-webhooks/standard-webhooks (spec and libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def headers(signature: str, msg_id: str = SPEC_ID, ts: int = SPEC_TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_the_specifications_example_verifies():
    assert (
        Webhook(SPEC_SECRET).sign(SPEC_ID, datetime.fromtimestamp(SPEC_TS, UTC), SPEC_BODY.decode())
        == SPEC_SIGNATURE
    )
    got = verify(
        [secret_bytes(SPEC_SECRET)], headers(SPEC_SIGNATURE), SPEC_BODY, tolerance=300, now=SPEC_TS + 299
    )
    assert got == Delivery(SPEC_ID, SPEC_TS)


@pytest.mark.parametrize(
    ("now", "slug"),
    [(SPEC_TS + 301, "signature-expired"), (SPEC_TS - 301, "signature-expired")],
)
def test_a_timestamp_outside_the_tolerance_is_refused_either_way(now, slug):
    with pytest.raises(CallerRefused) as refused:
        verify([secret_bytes(SPEC_SECRET)], headers(SPEC_SIGNATURE), SPEC_BODY, tolerance=300, now=now)
    assert (refused.value.status, refused.value.slug) == (401, slug)


def test_the_tolerance_is_a_setting_not_five_minutes():
    verify(
        [secret_bytes(SPEC_SECRET)], headers(SPEC_SIGNATURE), SPEC_BODY, tolerance=3600, now=SPEC_TS + 3000
    )
    with pytest.raises(CallerRefused):
        verify(
            [secret_bytes(SPEC_SECRET)], headers(SPEC_SIGNATURE), SPEC_BODY, tolerance=30, now=SPEC_TS + 31
        )


def test_any_listed_signature_with_any_secret_verifies_and_nothing_else_does():
    other = base64.b64encode(b"x" * 32).decode()
    rotated = [secret_bytes("whsec_" + other), secret_bytes(SPEC_SECRET)]
    several = f"v1,{base64.b64encode(b'y' * 32).decode()} v1a,abc {SPEC_SIGNATURE}"
    assert verify(rotated, headers(several), SPEC_BODY, tolerance=300, now=SPEC_TS).id == SPEC_ID
    for body in (SPEC_BODY + b" ", b'{"test": 2432232315}'):
        with pytest.raises(CallerRefused) as refused:
            verify(rotated, headers(several), body, tolerance=300, now=SPEC_TS)
        assert refused.value.slug == "signature-invalid"
    with pytest.raises(CallerRefused):  # the id is signed too
        verify(rotated, headers(SPEC_SIGNATURE, msg_id="msg_other"), SPEC_BODY, tolerance=300, now=SPEC_TS)


def test_a_replayed_delivery_is_seen_once_and_a_new_timestamp_is_a_new_delivery():
    seen = MemoryDeliveries()
    assert seen.first("acme", Delivery("m", 1)) is True
    assert seen.first("acme", Delivery("m", 1)) is False
    assert seen.first("acme", Delivery("m", 2)) is True
    assert seen.first("globex", Delivery("m", 1)) is True
    assert seen.purge(older_than=2) == 2
    assert seen.first("acme", Delivery("m", 1)) is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "PAYMENTS_WEBHOOK_SECRET_ACME_CORP to a Key Vault reference"),
        (
            "whsec_" + base64.b64encode(b"short").decode(),
            "secret 1 is not whsec_ followed by base64 of at least 24 bytes",
        ),
        ("whsec_!!!notbase64!!!", "secret 1 is not whsec_"),
        (
            "@Microsoft.KeyVault(VaultName=kv;SecretName=webhook-acme-corp)",
            "the Key Vault reference did not resolve",
        ),
    ],
)
def test_sender_secrets_are_checked_at_start_and_never_echoed(monkeypatch, value, message):
    monkeypatch.setenv("PAYMENTS_WEBHOOK_SENDERS", "acme-corp")
    if value is not None:
        monkeypatch.setenv("PAYMENTS_WEBHOOK_SECRET_ACME_CORP", value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert message in str(error.value)
    if value:
        assert value not in str(error.value)


def test_a_sender_name_must_fit_its_url(monkeypatch):
    monkeypatch.setenv("PAYMENTS_WEBHOOK_SENDERS", "Acme Corp")
    with pytest.raises(SettingsError, match="1-32 lower-case letters"):
        load_settings()
