from __future__ import annotations

import base64
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from partners import crypto, services
from partners.crypto import SecretDecryptionError, SecretUnavailable, parse_key_ring
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


def test_secret_sealed_with_a_dropped_key_names_that_key() -> None:
    old = parse_key_ring(f"k0:{_key()}")
    token = old.encrypt("s3cret-value", aad="row-1")
    with pytest.raises(SecretUnavailable) as excinfo:
        parse_key_ring(f"k1:{_key()}").decrypt(token, aad="row-1")
    assert excinfo.value.key_id == "k0"
    assert str(excinfo.value) == (
        "secret sealed with key 'k0', which is not in SECRETS_ENCRYPTION_KEYS"
    )
    assert isinstance(excinfo.value, SecretDecryptionError)


def test_endpoint_secrets_under_a_dropped_key_raise_secret_unavailable(
    endpoint_a: Endpoint,
) -> None:
    with override_settings(SECRETS_ENCRYPTION_KEYS=f"gone:{_key()}"):
        endpoint_a.secrets_sealed = crypto.seal_secrets(
            {"api_key": "alpha-key-SECRET-value"}, aad=endpoint_a.secrets_aad
        )
    with pytest.raises(SecretUnavailable, match="'gone'"):
        services.endpoint_secrets(endpoint_a)


def test_rotation_with_a_dropped_key_fails_naming_it_and_changes_nothing(
    endpoint_a: Endpoint,
) -> None:
    before = Endpoint.objects.get(pk=endpoint_a.pk).secrets_sealed
    with (
        override_settings(SECRETS_ENCRYPTION_KEYS=f"new:{_key()}"),
        pytest.raises(CommandError, match="which is not in SECRETS_ENCRYPTION_KEYS"),
    ):
        call_command("rotate_secrets")
    assert Endpoint.objects.get(pk=endpoint_a.pk).secrets_sealed == before


def test_a_secret_shorter_than_the_minimum_is_never_sealed() -> None:
    with pytest.raises(ValueError, match="shorter than 8 characters: api_key"):
        crypto.seal_secrets({"api_key": "1234567"}, aad="x")
