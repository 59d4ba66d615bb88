"""The Ed25519 key that signs evidence bundles.

The key comes from ``EVIDENCE_SIGNING_KEY``: an unencrypted PKCS#8 PEM (a literal ``\\n`` may
stand for each newline, so the PEM fits on one line of an environment file) or the base64 of the
32-byte raw private key. When that setting is empty (development), the PEM is read from
``EVIDENCE_SIGNING_KEY_FILE``, which is generated once if it does not exist yet.

An auditor checks a bundle's signature with ``openssl`` and the bundle's ``signing-key.pem``;
what makes that key trustworthy is its fingerprint, published on /about/signing-keys/. Every key
that has signed a bundle is recorded as a :class:`~evidence.models.SigningKey` row, so old keys
stay listed with the period in which they were in use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

if TYPE_CHECKING:
    from evidence.models import SigningKey

_EXPECTED = (
    "expected an unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY; newlines may be written as \\n) or "
    "the base64 of a 32-byte Ed25519 private key; `manage.py signing_key --generate` makes one"
)

_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], Ed25519PrivateKey] = {}


def generate_pem() -> str:
    """A new Ed25519 private key as an unencrypted PKCS#8 PEM."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def parse_private_key(value: str, *, source: str = "EVIDENCE_SIGNING_KEY") -> Ed25519PrivateKey:
    """The Ed25519 private key in ``value`` (PEM, or base64 of the 32 raw bytes).

    Raises ``ImproperlyConfigured`` naming ``source``; the message never quotes the value.
    """
    text = value.strip()
    if "-----BEGIN" in text:
        pem = text.replace("\\n", "\n").encode("ascii", errors="replace")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError:
            # cryptography raises TypeError for an encrypted PEM without a password.
            raise ImproperlyConfigured(f"{source} is an encrypted PEM; {_EXPECTED}") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ImproperlyConfigured(
                f"{source} cannot be read as a private key; {_EXPECTED}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
            raise ImproperlyConfigured(
                f"{source} holds a key of type {kind}, not Ed25519; {_EXPECTED}"
            )
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(text, altchars=b"-_", validate=True)  # URL-safe base64
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(
                f"{source} is neither a PEM nor base64; {_EXPECTED}"
            ) from None
    if len(raw) != 32:
        raise ImproperlyConfigured(
            f"{source} decodes to {len(raw)} bytes, not the 32 of an Ed25519 key; {_EXPECTED}"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def _key_file(path: Path) -> str:
    """The PEM in ``path``, generating it first if the file does not exist.

    The file is created with mode 0600 and published complete: the PEM is written to a
    private temporary file (O_CREAT|O_EXCL) and hard-linked to ``path``, which fails if
    another process got there first; then that process's key is read and used instead.
    """
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_pem().encode("ascii")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_exclusively(temporary, pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process won the race: use its key
    except OSError:
        # A file system without hard links: create the file itself exclusively.
        with contextlib.suppress(FileExistsError):
            _write_exclusively(path, pem)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_complete(path)


def _write_exclusively(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _read_complete(path: Path) -> str:
    """The file's text once it holds a whole PEM. Only without hard links can another process
    be seen half-way through writing it; then it is read again for up to a second."""
    text = path.read_text(encoding="ascii")
    for _ in range(100):
        if "-----END" in text:
            break
        time.sleep(0.01)
        text = path.read_text(encoding="ascii")
    return text


def signing_key() -> Ed25519PrivateKey:
    """The current signing key, loaded once per process and per setting values (so that
    ``override_settings`` in tests gives the key of the overridden settings).

    Raises ``ImproperlyConfigured`` naming EVIDENCE_SIGNING_KEY (or EVIDENCE_SIGNING_KEY_FILE)
    when the key cannot be read or is not Ed25519; the message never holds key material.
    """
    value = settings.EVIDENCE_SIGNING_KEY or ""
    file_setting = settings.EVIDENCE_SIGNING_KEY_FILE
    cache_key = (value, str(file_setting or ""))
    with _cache_lock:
        key = _cache.get(cache_key)
        if key is not None:
            return key
        if value.strip():
            key = parse_private_key(value)
        else:
            if not file_setting:
                raise ImproperlyConfigured(
                    "EVIDENCE_SIGNING_KEY is not set and EVIDENCE_SIGNING_KEY_FILE is empty; "
                    "set EVIDENCE_SIGNING_KEY (`manage.py signing_key --generate` makes one)"
                )
            path = Path(file_setting)
            source = f"EVIDENCE_SIGNING_KEY_FILE ({path})"
            try:
                text = _key_file(path)
            except UnicodeDecodeError:
                raise ImproperlyConfigured(
                    f"{source} is not a PEM text file; {_EXPECTED}"
                ) from None
            except OSError as exc:
                raise ImproperlyConfigured(
                    f"{source} cannot be read or created: {exc.strerror or type(exc).__name__}; "
                    "set EVIDENCE_SIGNING_KEY instead"
                ) from None
            key = parse_private_key(text, source=source)
        _cache[cache_key] = key
        return key


def _public(key: Ed25519PrivateKey | Ed25519PublicKey | str | bytes) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return key
    data = key.encode("ascii", errors="replace") if isinstance(key, str) else key
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key (BEGIN PUBLIC KEY)") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return loaded


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey | None = None) -> str:
    """The public half of ``key`` (default: the current signing key) as a SubjectPublicKeyInfo
    PEM (``-----BEGIN PUBLIC KEY-----``), as written to a bundle's ``signing-key.pem``."""
    public = _public(signing_key() if key is None else key)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def fingerprint(public_pem_or_key: Ed25519PrivateKey | Ed25519PublicKey | str | bytes) -> str:
    """``SHA256:<lowercase hex>``: the SHA-256 of the DER SubjectPublicKeyInfo of the key.

    Anyone can reproduce it from a bundle's ``signing-key.pem`` with standard tools::

        openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum

    (which prints the same hex digits, followed by ``  -``). Accepts a public key PEM, a
    private or public key object. Raises ``ValueError`` for a PEM that is not an Ed25519
    public key.
    """
    der = _public(public_pem_or_key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def sign(data: bytes) -> bytes:
    """The raw 64-byte Ed25519 signature of ``data`` with the current signing key (what
    ``openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin`` checks)."""
    return signing_key().sign(data)


def signing_key_record(*, now: datetime) -> SigningKey:
    """The ``SigningKey`` row of the current key, created on its first use.

    When the row is created, every other key still in use gets ``retired_at=now``: rotation
    keeps old public keys listed, each with its validity ``first_used_at .. retired_at``.
    Safe under concurrency: two processes first using the same key both get the one row (the
    unique fingerprint decides, the loser retries and finds the winner's row).
    """
    from evidence.models import SigningKey

    key = signing_key()
    fp = fingerprint(key)
    pem = public_key_pem(key)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                row = SigningKey.objects.select_for_update().filter(fingerprint=fp).first()
                if row is not None:
                    return row
                row = SigningKey.objects.create(fingerprint=fp, public_pem=pem, first_used_at=now)
                SigningKey.objects.filter(retired_at__isnull=True).exclude(pk=row.pk).update(
                    retired_at=now
                )
                return row
        except IntegrityError:
            continue  # another process created it first; the next attempt finds it
    return SigningKey.objects.get(fingerprint=fp)
