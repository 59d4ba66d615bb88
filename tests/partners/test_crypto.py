from __future__ import annotations

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from partners import crypto, services
from partners.crypto import SecretDecryptionError, parse_key_ring
from partners.models import Endpoint


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_stored_secret_is_not_in_the_database_in_clear(endpoint_a: Endpoint) -> None:
    raw = Endpoint.objects.values_list("secrets_sealed", flat=True).get(pk=endpoint_a.pk)
    assert "alpha-key-SECRET-value" not in raw
    assert services.endpoint_secrets(endpoint_a) == {"api_key": "alpha-key-SECRET-value"}


def test_ciphertext_copied_to_another_partners_row_does_not_decrypt(
    endpoint_a: Endpoint, endpoint_b: Endpoint
) -> None:
    endpoint_b.secrets_sealed = endpoint_a.secrets_sealed
    with pytest.raises(SecretDecryptionError):
        services.endpoint_secrets(endpoint_b)


def test_secrets_still_decrypt_after_a_new_key_is_put_first(endpoint_a: Endpoint) -> None:
    from django.conf import settings

    with override_settings(
        SECRETS_ENCRYPTION_KEYS=f"new:{_key()},{settings.SECRETS_ENCRYPTION_KEYS}"
    ):
        assert services.endpoint_secrets(endpoint_a) == {"api_key": "alpha-key-SECRET-value"}


def test_rotation_reencrypts_with_the_active_key_so_old_keys_can_be_dropped(
    endpoint_a: Endpoint,
) -> None:
    from django.conf import settings

    new = f"new:{_key()}"
    with override_settings(SECRETS_ENCRYPTION_KEYS=f"{new},{settings.SECRETS_ENCRYPTION_KEYS}"):
        assert services.secrets_rotate() == 1
        assert services.secrets_rotate() == 0
    endpoint_a.refresh_from_db()
    with override_settings(SECRETS_ENCRYPTION_KEYS=new):
        assert services.endpoint_secrets(endpoint_a) == {"api_key": "alpha-key-SECRET-value"}


def test_tampered_ciphertext_is_refused() -> None:
    ring = parse_key_ring(f"k1:{_key()}")
    token = ring.encrypt("s3cret", aad="row-1")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretDecryptionError):
        ring.decrypt(tampered, aad="row-1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        ("nokid", "expected 'kid:base64key'"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
    ],
)
def test_bad_key_configuration_fails_loudly(spec: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_key_ring(spec)


def test_empty_secrets_are_stored_as_nothing() -> None:
    assert crypto.seal_secrets({}, aad="x") == ""
    assert crypto.open_secrets("", aad="x") == {}
