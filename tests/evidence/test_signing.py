"""The evidence signing key: settings forms, the development key file, fingerprints that
openssl reproduces, the signing_key command and the record of keys used."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connections

from evidence import signing
from evidence.models import SigningKey

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _same_key(a: Ed25519PrivateKey, b: Ed25519PrivateKey) -> bool:
    return _raw(a) == _raw(b)


@pytest.fixture
def pem(settings: Any) -> str:
    value = signing.generate_pem()
    settings.EVIDENCE_SIGNING_KEY = value
    return value


def test_a_pem_setting_is_the_signing_key(pem: str) -> None:
    expected = serialization.load_pem_private_key(pem.encode(), password=None)
    assert _same_key(signing.signing_key(), expected)  # type: ignore[arg-type]


def test_a_pem_written_on_one_line_with_backslash_n_is_the_same_key(settings: Any) -> None:
    pem = signing.generate_pem()
    settings.EVIDENCE_SIGNING_KEY = pem.strip().replace("\n", "\\n")
    expected = serialization.load_pem_private_key(pem.encode(), password=None)
    assert _same_key(signing.signing_key(), expected)  # type: ignore[arg-type]


def test_base64_of_the_32_raw_bytes_is_the_signing_key(settings: Any) -> None:
    raw = os.urandom(32)
    settings.EVIDENCE_SIGNING_KEY = base64.b64encode(raw).decode()
    assert _raw(signing.signing_key()) == raw


def test_the_key_follows_the_setting_when_it_changes(settings: Any) -> None:
    settings.EVIDENCE_SIGNING_KEY = signing.generate_pem()
    first = signing.fingerprint(signing.signing_key())
    settings.EVIDENCE_SIGNING_KEY = signing.generate_pem()
    assert signing.fingerprint(signing.signing_key()) != first


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _encrypted_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        .decode()
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not a key at all", "neither a PEM nor base64"),
        (base64.b64encode(b"short-secret-key").decode(), "16 bytes, not the 32"),
        (signing.generate_pem()[:90], "cannot be read as a private key"),
        (_rsa_pem(), "a key of type RSA, not Ed25519"),
        (_encrypted_pem(), "encrypted PEM"),
    ],
    ids=["garbage", "wrong-length", "truncated-pem", "rsa", "encrypted"],
)
def test_an_unusable_key_setting_is_refused_naming_the_setting_without_the_key(
    settings: Any, value: str, says: str
) -> None:
    settings.EVIDENCE_SIGNING_KEY = value
    with pytest.raises(ImproperlyConfigured) as refused:
        signing.signing_key()
    message = str(refused.value)
    assert message.startswith("EVIDENCE_SIGNING_KEY ") and says in message
    body = [line for line in value.splitlines() if "-----" not in line]
    assert not any(part in message for part in body if len(part) > 8)
    shown = refused.value.__cause__ or (
        None if refused.value.__suppress_context__ else refused.value.__context__
    )
    assert shown is None  # no chained low-level error in what the operator sees


def test_without_the_setting_a_key_file_is_generated_with_mode_0600(
    settings: Any, tmp_path: Path
) -> None:
    path = tmp_path / "var" / "keys" / "evidence-signing-key.pem"
    settings.EVIDENCE_SIGNING_KEY = ""
    settings.EVIDENCE_SIGNING_KEY_FILE = path
    key = signing.signing_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    on_disk = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert _same_key(key, on_disk)  # type: ignore[arg-type]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_existing_key_file_is_used_as_it_is(settings: Any, tmp_path: Path) -> None:
    pem = signing.generate_pem()
    path = tmp_path / "key.pem"
    path.write_text(pem)
    settings.EVIDENCE_SIGNING_KEY = ""
    settings.EVIDENCE_SIGNING_KEY_FILE = path
    assert signing.public_key_pem() == signing.public_key_pem(
        serialization.load_pem_private_key(pem.encode(), password=None)  # type: ignore[arg-type]
    )
    assert path.read_text() == pem


def test_processes_racing_to_create_the_key_file_all_use_the_one_written(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(signing._key_file(path))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(seen) == {path.read_text()}


def test_a_key_file_that_is_not_a_pem_is_refused_naming_the_file(
    settings: Any, tmp_path: Path
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"\xff\xfe garbage")
    settings.EVIDENCE_SIGNING_KEY = ""
    settings.EVIDENCE_SIGNING_KEY_FILE = path
    with pytest.raises(ImproperlyConfigured, match="EVIDENCE_SIGNING_KEY_FILE"):
        signing.signing_key()


def test_fingerprint_is_what_openssl_and_sha256sum_print_for_the_public_key(
    pem: str, tmp_path: Path
) -> None:
    (tmp_path / "signing-key.pem").write_text(signing.public_key_pem())
    printed = subprocess.run(
        "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert signing.fingerprint(signing.public_key_pem()) == "SHA256:" + printed.split()[0]


def test_fingerprint_documents_the_openssl_command_that_reproduces_it() -> None:
    assert "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum" in (
        signing.fingerprint.__doc__ or ""
    )


def test_fingerprint_is_the_same_from_the_private_key_the_public_key_and_its_pem(pem: str) -> None:
    key = signing.signing_key()
    assert (
        signing.fingerprint(key)
        == signing.fingerprint(key.public_key())
        == signing.fingerprint(signing.public_key_pem(key))
    )


def test_a_signature_is_64_raw_bytes_that_the_public_key_verifies(pem: str) -> None:
    signature = signing.sign(b"SHA256SUMS content")
    assert len(signature) == 64
    signing.signing_key().public_key().verify(signature, b"SHA256SUMS content")


def test_signing_key_command_prints_the_public_key_and_its_fingerprint(pem: str) -> None:
    out = StringIO()
    call_command("signing_key", stdout=out)
    lines = out.getvalue().splitlines()
    assert "\n".join(lines[:-1]) + "\n" == signing.public_key_pem()
    assert lines[-1] == f"fingerprint: {signing.fingerprint(signing.signing_key())}"
    assert "PRIVATE" not in out.getvalue()


def test_signing_key_command_with_fingerprint_prints_only_the_fingerprint(pem: str) -> None:
    out = StringIO()
    call_command("signing_key", "--fingerprint", stdout=out)
    assert out.getvalue() == signing.fingerprint(signing.signing_key()) + "\n"


def test_signing_key_command_generate_prints_a_new_private_key_and_how_to_set_it(
    pem: str,
) -> None:
    out, err = StringIO(), StringIO()
    call_command("signing_key", "--generate", stdout=out, stderr=err)
    new = serialization.load_pem_private_key(out.getvalue().encode(), password=None)
    assert isinstance(new, Ed25519PrivateKey)
    assert not _same_key(new, signing.signing_key())
    assert "EVIDENCE_SIGNING_KEY" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1


def test_signing_key_command_reports_an_unusable_setting_as_an_error(settings: Any) -> None:
    settings.EVIDENCE_SIGNING_KEY = "not a key"
    with pytest.raises(CommandError, match="EVIDENCE_SIGNING_KEY") as failed:
        call_command("signing_key")
    assert failed.value.returncode == 2


def test_first_use_of_a_key_records_it_with_its_public_key(db: Any, pem: str) -> None:
    row = signing.signing_key_record(now=NOW)
    assert row.fingerprint == signing.fingerprint(signing.signing_key())
    assert row.public_pem == signing.public_key_pem()
    assert (row.first_used_at, row.retired_at) == (NOW, None)


def test_the_same_key_is_recorded_once(db: Any, pem: str) -> None:
    first = signing.signing_key_record(now=NOW)
    again = signing.signing_key_record(now=NOW + timedelta(days=3))
    assert again.pk == first.pk and again.first_used_at == NOW
    assert SigningKey.objects.count() == 1


def test_a_new_key_retires_the_previous_one_which_stays_listed(db: Any, settings: Any) -> None:
    settings.EVIDENCE_SIGNING_KEY = signing.generate_pem()
    old = signing.signing_key_record(now=NOW)
    settings.EVIDENCE_SIGNING_KEY = signing.generate_pem()
    rotated = NOW + timedelta(days=90)
    new = signing.signing_key_record(now=rotated)
    old.refresh_from_db()
    assert (old.first_used_at, old.retired_at) == (NOW, rotated)
    assert (new.first_used_at, new.retired_at) == (rotated, None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_use_of_a_key_records_one_row(pem: str) -> None:
    barrier = threading.Barrier(4)
    rows: list[int] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait()
            rows.append(signing.signing_key_record(now=NOW).pk)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(rows)) == 1 and SigningKey.objects.count() == 1
