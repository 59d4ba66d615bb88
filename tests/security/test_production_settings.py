from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.settings import _DEV_ENCRYPTION_KEYS, _DEV_SECRET_KEY
from evidence.signing import generate_pem

PRODUCTION_ENV = {
    "APP_ENV": "production",
    "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "SECRETS_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "ALLOWED_HOSTS": "certdash.example.com",
    "DATABASE_URL": "postgres://certdash@db.internal:5432/certdash",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "EVIDENCE_SIGNING_KEY": generate_pem(),
    "PUBLIC_BASE_URL": "https://certdash.example.com",
}


def _manage(*args: str, drop: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    env.update({k: v for k, v in PRODUCTION_ENV.items() if k != drop})
    env.update(extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_deploy_check_is_clean_in_production_mode() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_public_base_url() -> None:
    result = _manage("check", drop="PUBLIC_BASE_URL")
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be set when APP_ENV=production" in result.stderr


def test_production_refuses_a_plain_http_public_base_url() -> None:
    result = _manage("check", PUBLIC_BASE_URL="http://certdash.example.com")
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be an https:// URL" in result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _manage("check", drop="SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when APP_ENV=production" in result.stderr


def test_production_refuses_to_start_without_encryption_keys() -> None:
    result = _manage("check", drop="SECRETS_ENCRYPTION_KEYS")
    assert "SECRETS_ENCRYPTION_KEYS must be set" in result.stderr


def test_production_refuses_to_start_without_an_evidence_signing_key() -> None:
    result = _manage("check", drop="EVIDENCE_SIGNING_KEY")
    assert result.returncode != 0
    assert "EVIDENCE_SIGNING_KEY must be set when APP_ENV=production" in result.stderr
    assert "manage.py signing_key --generate" in result.stderr


def test_production_refuses_to_start_without_a_database_url() -> None:
    result = _manage("check", drop="DATABASE_URL")
    assert result.returncode != 0 and "DATABASE_URL" in result.stderr


def test_a_malformed_sandbox_allowlist_is_refused_at_start() -> None:
    result = _manage("check", SANDBOX_ALLOWED_NETWORKS="10.0.0.0/33")
    assert "SANDBOX_ALLOWED_NETWORKS" in result.stderr and "10.0.0.0/33" in result.stderr


def test_production_allows_no_private_sandbox_networks_by_default() -> None:
    code = "from django.conf import settings; print(repr(settings.SANDBOX_ALLOWED_NETWORKS))"
    result = _manage("shell", "--no-imports", "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "''"


def test_production_refuses_the_published_development_secret_key() -> None:
    result = _manage("check", SECRET_KEY=_DEV_SECRET_KEY)
    assert result.returncode != 0
    assert "SECRET_KEY is the published development key" in result.stderr


@pytest.mark.parametrize(
    "ring",
    [
        _DEV_ENCRYPTION_KEYS,
        f"k2:{base64.b64encode(os.urandom(32)).decode()},{_DEV_ENCRYPTION_KEYS}",
        "prod:" + _DEV_ENCRYPTION_KEYS.partition(":")[2],  # the same key under another id
    ],
    ids=["alone", "kept-for-decryption", "renamed"],
)
def test_production_refuses_the_published_development_encryption_key(ring: str) -> None:
    result = _manage("check", SECRETS_ENCRYPTION_KEYS=ring)
    assert result.returncode != 0
    assert "SECRETS_ENCRYPTION_KEYS holds the published development key" in result.stderr


def test_production_refuses_a_malformed_encryption_key_ring_at_start() -> None:
    result = _manage("check", SECRETS_ENCRYPTION_KEYS="k1:c2hvcnQ=")
    assert result.returncode != 0
    assert "SECRETS_ENCRYPTION_KEYS key 'k1' must be 32 bytes" in result.stderr


@pytest.mark.parametrize(
    ("networks", "family"),
    [
        ("0.0.0.0/0", "IPv4"),
        ("::/0", "IPv4 and every IPv6"),  # IPv4-mapped addresses included
        ("127.0.0.0/8, 0.0.0.0/0", "IPv4"),
        ("0.0.0.0/1,128.0.0.0/1", "IPv4"),  # together they are 0.0.0.0/0
        ("::ffff:0:0/96", "IPv4"),  # every IPv4 address, IPv4-mapped
    ],
)
def test_production_refuses_a_sandbox_allowlist_covering_every_address(
    networks: str, family: str
) -> None:
    result = _manage("check", SANDBOX_ALLOWED_NETWORKS=networks)
    assert result.returncode != 0
    assert f"SANDBOX_ALLOWED_NETWORKS covers every {family} address" in result.stderr


def test_production_accepts_a_sandbox_allowlist_of_specific_networks() -> None:
    result = _manage("check", SANDBOX_ALLOWED_NETWORKS="10.8.0.0/16, fd00:8::/32, 0.0.0.0/1")
    assert result.returncode == 0, result.stderr
