from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from certification.engine import pgp
from certification.engine.auth_kinds import ALL_SECRET_FIELDS, SCHEMES
from demo.as2_keys import self_signed
from evidence.models import AuditEvent
from partners import services
from partners.management.commands.endpoint_set import Command
from partners.models import Endpoint, Partner

HTTP_URL = "http://127.0.0.1:9/api"
DB_URL = "postgres://reader@127.0.0.1:5432/orders"


def _run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra: dict[str, Any] = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("endpoint_set", *args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


def _fails(*args: str, stdin: str | None = None) -> str:
    """Run expecting bad input: exit code 2, nothing written; returns stderr."""
    err = io.StringIO()
    extra: dict[str, Any] = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    with pytest.raises(CommandError) as excinfo:
        call_command("endpoint_set", *args, stdout=io.StringIO(), stderr=err, **extra)
    assert excinfo.value.returncode == 2
    assert not Endpoint.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="endpoint.").exists()
    return err.getvalue()


# A well-formed SSH public key, given so that saving pins it without reaching a server.
_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

# Settings and secrets that are checked when saved (AS2 certificates and key, PGP keys): real ones.
_OUR_KEY, _OUR_CERT = (pem.strip() for pem in self_signed("certdash-test"))
_PARTNER_CERT = self_signed("partner-test")[1].strip()
_PGP_PRIVATE, _PGP_PUBLIC = pgp.generate("Partner files", "files@partner.example")
_REAL_VALUES = {
    "pgp_partner_key": _PGP_PUBLIC.strip(),
    "isa_sender": "ZZ:CERTDASH",
    "isa_receiver": "ZZ:PARTNER",
    "usage": "T",
    "mdn": "sync",
    "partner_certificate_pem": _PARTNER_CERT,
    "certificate_pem": _OUR_CERT,
    "encrypt": "yes",
    "mic_algorithm": "sha256",
    "encryption": "aes256-cbc",
}


def _base(auth: str = "api_key", *, url: str = HTTP_URL, name: str = "api") -> list[str]:
    return ["--partner", "p_a01", "--name", name, "--url", url, "--auth", auth]


@pytest.mark.parametrize("auth", list(SCHEMES))
def test_every_auth_kind_round_trips_its_settings_and_secrets(
    auth: str, partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme = SCHEMES[auth]
    kind = scheme.endpoint_kinds[0]
    url = {
        "http": HTTP_URL,
        "postgresql": DB_URL,
        "sftp": "sftp://127.0.0.1:9/files",
        "as2": "http://127.0.0.1:9/as2",
    }[kind]
    args = _base(auth, url=url)
    if kind != "http":
        args += ["--kind", kind]
    special = {"token_url": "http://127.0.0.1:9/token", "host_key": _HOST_KEY, **_REAL_VALUES}
    config = {f.name: special.get(f.name, f"cfg-{f.name}") for f in scheme.config}
    for name, value in config.items():
        args += ["--" + name.replace("_", "-"), value]
    secrets = {f.name: f"env-SECRET-{f.name}-0123" for f in scheme.secrets}
    if "as2_private_key_pem" in secrets:
        secrets["as2_private_key_pem"] = _OUR_KEY
    if "pgp_private_key" in secrets:
        secrets["pgp_private_key"] = _PGP_PRIVATE.strip()
    for name, value in secrets.items():
        monkeypatch.setenv(f"CI_{name.upper()}", value)
        args += ["--secret-env", f"{name}=CI_{name.upper()}"]

    out, err = _run(*args)

    endpoint = Endpoint.objects.get(partner=partner_a, name="api")
    assert (endpoint.auth_kind, endpoint.kind) == (auth, kind)
    assert endpoint.auth_config == config
    assert services.endpoint_secrets(endpoint) == secrets
    assert out.startswith("created p_a01/api\n")
    assert not any(value in out + err for value in secrets.values())
    for name in secrets:
        assert f"  {name}: •••••• (new)" in out


def test_a_single_secret_needs_no_name_and_defaults_come_from_the_table(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_API_KEY", "ci-key-SECRET-1")
    out, _ = _run(*_base(), "--secret-env", "CI_API_KEY")
    endpoint = Endpoint.objects.get()
    assert endpoint.auth_config == {"header_name": "X-API-Key"}
    assert endpoint.is_default  # the partner's first endpoint
    assert services.endpoint_secrets(endpoint) == {"api_key": "ci-key-SECRET-1"}
    assert "  kind: http, default\n" in out and f"  url: {HTTP_URL}\n" in out
    event = AuditEvent.objects.get(action="endpoint.create")
    assert event.actor_label == "manage.py endpoint_set"


def test_secret_from_stdin(partner_a: Partner) -> None:
    _run(
        *_base("db_password", url=DB_URL),
        "--kind",
        "postgresql",
        "--secret-stdin",
        stdin="db-pw-SECRET-1\n",
    )
    assert services.endpoint_secrets(Endpoint.objects.get()) == {"password": "db-pw-SECRET-1"}


def test_one_of_several_secrets_from_stdin_and_the_other_from_the_environment(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERT", "-----BEGIN CERTIFICATE-----")
    _run(
        *_base("mtls"),
        "--secret-env",
        "client_cert_pem=CERT",
        "--secret-stdin",
        "client_key_pem",
        stdin="-----BEGIN PRIVATE KEY-----",
    )
    assert services.endpoint_secrets(Endpoint.objects.get()) == {
        "client_cert_pem": "-----BEGIN CERTIFICATE-----",
        "client_key_pem": "-----BEGIN PRIVATE KEY-----",
    }


def test_second_run_updates_and_keeps_the_secret_not_given_again(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_API_KEY", "ci-key-SECRET-1")
    _run(*_base(), "--header-name", "X-Key", "--secret-env", "CI_API_KEY")
    out, _ = _run(*_base(url="http://127.0.0.1:9/v2"), "--no-default")
    endpoint = Endpoint.objects.get()
    assert out.startswith("updated p_a01/api\n") and "  api_key: •••••• (kept)" in out
    assert (endpoint.base_url, endpoint.is_default) == ("http://127.0.0.1:9/v2", False)
    assert endpoint.auth_config == {"header_name": "X-Key"}
    assert services.endpoint_secrets(endpoint) == {"api_key": "ci-key-SECRET-1"}
    assert AuditEvent.objects.filter(action="endpoint.update").count() == 1


def test_writable_database_endpoint(partner_a: Partner) -> None:
    _run(*_base("none", url=DB_URL, name="db"), "--kind", "postgresql", "--writable")
    assert Endpoint.objects.get().writable


def test_no_option_takes_a_secret_value() -> None:
    parser = Command().create_parser("manage.py", "endpoint_set")
    dests = {action.dest for action in parser._actions}
    assert not dests & {f.name for f in ALL_SECRET_FIELDS}
    assert not any("secret" in d for d in dests - {"secret_env", "secret_stdin"})


@pytest.mark.parametrize("flag", ["--secret", "--token", "--api-key", "--password"])
def test_a_secret_on_the_command_line_is_refused(partner_a: Partner, flag: str) -> None:
    # "--token" must not be taken as an abbreviation of "--token-url".
    with pytest.raises(CommandError, match="unrecognized arguments") as excinfo:
        _run(*_base("bearer"), flag, "argv-SECRET-123")
    assert "argv-SECRET-123" not in str(excinfo.value)
    assert not Endpoint.objects.exists()


def test_help_lists_every_auth_kind_with_its_fields() -> None:
    text = Command().create_parser("manage.py", "endpoint_set").format_help()
    for kind, scheme in SCHEMES.items():
        assert f"  {kind} " in text and scheme.label in text
        for field in scheme.config:
            assert "--" + field.name.replace("_", "-") + " VALUE" in text
        for field in scheme.secrets:
            assert f"secret {field.name} " in text
    assert "--secret-env" in text and "--secret-stdin" in text


def test_unknown_partner(db: Any) -> None:
    assert "error: --partner: unknown partner 'p_a01'" in _fails(*_base("none"))


def test_unknown_auth_kind_suggests_the_closest(partner_a: Partner) -> None:
    err = _fails(*_base("api-key"))
    assert "error: --auth: unknown auth kind 'api-key'; expected one of none, api_key" in err
    assert "did you mean 'api_key'?" in err


def test_unknown_endpoint_kind(partner_a: Partner) -> None:
    assert "error: --kind: unknown endpoint kind 'ftp'" in _fails(*_base("none"), "--kind", "ftp")


def test_missing_required_setting_names_its_flag(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CS", "client-SECRET-1")
    err = _fails(*_base("oauth2_client_credentials"), "--secret-env", "CS")
    assert "error: --token-url: Token URL is required for this auth kind." in err
    assert "error: --client-id: Client ID is required for this auth kind." in err


def test_missing_secret_names_its_flag(partner_a: Partner) -> None:
    err = _fails(*_base())
    assert "error: --secret-env api_key=VAR: API key is required for this auth kind." in err


def test_unset_environment_variable(partner_a: Partner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_NOPE", raising=False)
    err = _fails(*_base(), "--secret-env", "CI_NOPE")
    assert "error: --secret-env api_key=CI_NOPE: environment variable CI_NOPE is not set" in err


def test_empty_environment_variable(partner_a: Partner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_EMPTY", "  ")
    err = _fails(*_base(), "--secret-env", "CI_EMPTY")
    assert "error: --secret-env api_key=CI_EMPTY: environment variable CI_EMPTY is empty" in err


def test_empty_stdin(partner_a: Partner) -> None:
    assert "error: --secret-stdin: stdin was empty" in _fails(
        *_base(), "--secret-stdin", stdin="\n"
    )


def test_secret_too_short(partner_a: Partner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_SHORT", "1234567")
    err = _fails(*_base(), "--secret-env", "CI_SHORT")
    assert (
        "error: --secret-env api_key=CI_SHORT: API key is too short: a secret needs at least "
        "8 characters." in err
    )
    assert "1234567" not in err


def test_several_secrets_need_their_names(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERT", "-----BEGIN CERTIFICATE-----")
    err = _fails(*_base("mtls"), "--secret-env", "CERT")
    assert "error: --secret-env: mtls has several secrets (client_cert_pem, client_key_pem)" in err


def test_secret_the_auth_kind_does_not_have(
    partner_a: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOK", "bearer-SECRET-1")
    err = _fails(*_base("bearer"), "--secret-env", "tokn=TOK")
    assert "error: --secret-env: 'tokn' is not a secret of bearer (its secrets: token)" in err
    assert "did you mean 'token'?" in err
    assert "error: --secret-env: auth kind none takes no secrets" in _fails(
        *_base("none"), "--secret-env", "TOK"
    )


def test_setting_of_another_auth_kind(partner_a: Partner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOK", "bearer-SECRET-1")
    err = _fails(*_base("bearer"), "--secret-env", "TOK", "--header-name", "X-Key")
    assert "error: --header-name: not a setting of bearer (its settings: none)" in err


def test_url_refused_by_the_address_policy(partner_a: Partner) -> None:
    err = _fails(*_base("none", url="http://169.254.169.254/latest"))
    assert "error: --url: " in err and "metadata" in err


def test_database_url_with_an_inline_password(partner_a: Partner) -> None:
    err = _fails(
        *_base("none", url="postgres://reader:pw-SECRET-1@127.0.0.1/orders"), "--kind", "postgresql"
    )
    assert "error: --url: The URL holds a password" in err and "db_password" in err
    assert "pw-SECRET-1" not in err


def test_database_url_with_a_password_in_its_query_string(partner_a: Partner) -> None:
    url = "postgres://reader@127.0.0.1/orders?password=pw-SECRET-1"
    err = _fails(*_base("none", url=url), "--kind", "postgresql")
    assert "error: --url: The URL holds a password" in err
    assert "pw-SECRET-1" not in err


def test_writable_http_endpoint(partner_a: Partner) -> None:
    err = _fails(*_base("none"), "--writable")
    assert "error: --writable: only postgresql endpoints can be writable" in err


def test_every_error_is_reported_at_once(partner_a: Partner) -> None:
    err = _fails(*_base("none", url="http://10.0.0.1/", name="Bad Name"))
    assert "error: --url: " in err and "error: --name: " in err


def test_command_line_exits_2_and_never_echoes_a_secret_given_in_argv() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "endpoint_set", *_base(), "--api-key", "argv-SECRET-123"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: unrecognized arguments (not repeated here)" in result.stderr
    assert "argv-SECRET-123" not in result.stderr + result.stdout
