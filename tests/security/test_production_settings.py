from __future__ import annotations

import base64
import os
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENV = {
    "APP_ENV": "production",
    "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "SECRETS_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "ALLOWED_HOSTS": "certdash.example.com",
    "DATABASE_URL": "postgres://certdash@db.internal:5432/certdash",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
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


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _manage("check", drop="SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when APP_ENV=production" in result.stderr


def test_production_refuses_to_start_without_encryption_keys() -> None:
    result = _manage("check", drop="SECRETS_ENCRYPTION_KEYS")
    assert "SECRETS_ENCRYPTION_KEYS must be set" in result.stderr


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
