"""Encryption of partner secrets at rest.

AES-256-GCM with a key ring read from ``SECRETS_ENCRYPTION_KEYS`` (``kid:base64key,...``; the
first key encrypts, every key decrypts, so keys rotate without downtime). The row's identity is
the associated data: a ciphertext copied onto another row, or another partner's row, does not
decrypt. The keys are deliberately not derived from ``SECRET_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from functools import cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from certification.engine.masking import MIN_SAVED_SECRET_LENGTH

_VERSION = "v1"


class SecretDecryptionError(Exception):
    """The ciphertext does not decrypt with any known key for this row."""


class SecretUnavailable(SecretDecryptionError):
    """The secret was sealed with a key that is no longer configured: it cannot be read until
    that key is put back in ``SECRETS_ENCRYPTION_KEYS`` or the secret is entered again."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"secret sealed with key {key_id!r}, which is not in SECRETS_ENCRYPTION_KEYS"
        )


@dataclass(frozen=True)
class KeyRing:
    active_kid: str
    keys: dict[str, AESGCM]

    def encrypt(self, plaintext: str, *, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self.keys[self.active_kid].encrypt(nonce, plaintext.encode(), aad.encode())
        payload = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self.active_kid}.{payload}"

    def decrypt(self, token: str, *, aad: str) -> str:
        try:
            version, kid, payload = token.split(".", 2)
        except ValueError:
            raise SecretDecryptionError("not a sealed secret") from None
        if version != _VERSION:
            raise SecretDecryptionError(f"unknown sealing format {version!r}")
        if kid not in self.keys:
            raise SecretUnavailable(kid)
        try:
            raw = base64.urlsafe_b64decode(payload)
            return self.keys[kid].decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretDecryptionError("ciphertext does not belong to this row") from None

    def key_id_of(self, token: str) -> str:
        return token.split(".", 2)[1] if token.count(".") >= 2 else ""


def parse_key_ring(spec: str) -> KeyRing:
    """Parse ``kid:base64key[,kid:base64key...]``; each key is 32 bytes (AES-256)."""
    keys: dict[str, AESGCM] = {}
    order: list[str] = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        kid, sep, b64 = entry.partition(":")
        if not sep or not kid or "." in kid:
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEYS entry {kid or entry!r}: expected 'kid:base64key'"
            )
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEYS key {kid!r} is not valid base64"
            ) from None
        if len(raw) != 32:
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEYS key {kid!r} must be 32 bytes, not {len(raw)}"
            )
        if kid in keys:
            raise ImproperlyConfigured(f"SECRETS_ENCRYPTION_KEYS repeats key id {kid!r}")
        keys[kid] = AESGCM(raw)
        order.append(kid)
    if not order:
        raise ImproperlyConfigured("SECRETS_ENCRYPTION_KEYS holds no key")
    return KeyRing(active_kid=order[0], keys=keys)


@cache
def _ring_for(spec: str) -> KeyRing:
    return parse_key_ring(spec)


def key_ring() -> KeyRing:
    return _ring_for(settings.SECRETS_ENCRYPTION_KEYS)


def seal_text(plaintext: str, *, aad: str) -> str:
    """Encrypt any text bound to ``aad`` (the owning row) with the active key."""
    return key_ring().encrypt(plaintext, aad=aad)


def open_text(token: str, *, aad: str) -> str:
    """Decrypt what ``seal_text`` sealed. Raises ``SecretUnavailable`` when its key is gone and
    ``SecretDecryptionError`` when it does not belong to ``aad``."""
    return key_ring().decrypt(token, aad=aad)


def seal_secrets(values: dict[str, str], *, aad: str) -> str:
    """Encrypt a dict of secrets bound to ``aad`` (the owning row); empty dict -> empty string.

    Callers check the length of each secret first and report it on the field; this refusal is
    the last line, so that no path stores a secret too short to be masked reliably.
    """
    if not values:
        return ""
    short = sorted(name for name, value in values.items() if len(value) < MIN_SAVED_SECRET_LENGTH)
    if short:
        raise ValueError(
            f"secrets shorter than {MIN_SAVED_SECRET_LENGTH} characters: {', '.join(short)}"
        )
    return seal_text(json.dumps(values, sort_keys=True), aad=aad)


def open_secrets(token: str, *, aad: str) -> dict[str, str]:
    if not token:
        return {}
    return json.loads(open_text(token, aad=aad))


def new_key() -> str:
    """A fresh base64 key for SECRETS_ENCRYPTION_KEYS."""
    return base64.b64encode(os.urandom(32)).decode()
