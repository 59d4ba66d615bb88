from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.serializers import serialize
from django.test import override_settings

from evidence.models import AuditEvent
from partners import crypto
from partners.models import SLA, FieldMapping, Partner, RetryPolicy, WebhookSecret

DEMO = Path(settings.BASE_DIR) / "demo" / "registry"
PLAYBOOK = sorted(str(p) for p in DEMO.glob("*.csv"))


def _snapshot() -> str:
    models = (Partner, SLA, WebhookSecret, RetryPolicy, FieldMapping)
    return "".join(
        serialize("json", m.objects.order_by("pk"), fields=None).replace(
            '"updated_at"', ""
        )  # compared separately below
        for m in models
    )


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.django_db
def test_playbook_csvs_import_the_three_partners_with_structured_slas() -> None:
    call_command("import_registry", *PLAYBOOK)
    acme = Partner.objects.get(external_id="p_001")
    assert acme.name == "Acme Retail"
    assert acme.modes == ["api", "webhook"]
    assert acme.security == ["oauth2", "hmac"]
    p95 = acme.slas.get(name="p95")
    assert (p95.percentile, p95.threshold_ms) == (95, 300)
    assert str(acme.slas.get(name="uptime").uptime_percent) == "99.9000"
    assert Partner.objects.get(external_id="p_002").slas.get().schedule == "daily"
    assert set(Partner.objects.get(external_id="p_003").slas.values_list("name", flat=True)) == {
        "ack",
        "replay",
    }
    assert RetryPolicy.objects.get(flow="webhook.delivery").max_attempts == 8
    assert FieldMapping.objects.get(ours="total_amount").partner_field == "TotalGross"
    assert WebhookSecret.objects.get().window_s == 600


@pytest.mark.django_db
def test_importing_the_same_files_twice_gives_the_same_database() -> None:
    call_command("import_registry", *PLAYBOOK)
    first = _snapshot()
    stamps = list(Partner.objects.values_list("updated_at", flat=True))
    call_command("import_registry", *PLAYBOOK)
    assert _snapshot() == first
    assert list(Partner.objects.values_list("updated_at", flat=True)) == stamps


@pytest.mark.django_db
def test_file_with_one_broken_row_changes_nothing_and_names_the_row(
    tmp_path: Path, capsys: Any
) -> None:
    path = _write(
        tmp_path,
        "registry.csv",
        "partner_id,name,mode,security,contact,sla\n"
        'p_001,Acme Retail,API+Webhook,oauth2+hmac,ops@acme.com,"p95<=300ms"\n'
        'p_002,Globex,File(SFTP),ssh+pgp,integrations@globex.example,"file@2am daily"\n',
    )
    with pytest.raises(CommandError) as excinfo:
        call_command("import_registry", path)
    assert excinfo.value.returncode == 2
    assert f'{path}:3: sla: cannot parse SLA "file@2am daily"' in capsys.readouterr().err
    assert Partner.objects.count() == 0
    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_every_bad_row_and_column_is_reported_at_once(tmp_path: Path, capsys: Any) -> None:
    path = _write(
        tmp_path,
        "registry.csv",
        "partner_id,name,mode,security,contact,sla\n"
        "p_010,Bad,Fax,oauht2,not-an-email,p95<=300ms\n"
        "P 011,,API,,,\n",
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    err = capsys.readouterr().err
    assert f"{path}:2: mode: unknown mode 'Fax'" in err
    assert "did you mean 'oauth2'?" in err
    assert f"{path}:2: contact: 'not-an-email' is not an e-mail address" in err
    assert f"{path}:3: partner_id: 'P 011' is not a valid partner ID" in err
    assert f"{path}:3: name: required" in err


@pytest.mark.django_db
def test_a_bad_file_stops_the_good_files_given_with_it(tmp_path: Path) -> None:
    bad = _write(
        tmp_path, "retry.csv", "flow,max_attempts,backoff_ms_cap,jitter\napi.call,four,1,full\n"
    )
    with pytest.raises(CommandError):
        call_command("import_registry", str(DEMO / "partners.csv"), bad)
    assert Partner.objects.count() == 0


@pytest.mark.django_db
def test_unrecognised_header_is_reported_on_line_1(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path, "other.csv", "id,title\n1,x\n")
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    assert f"{path}:1: unrecognised header 'id,title'" in capsys.readouterr().err


@pytest.mark.django_db
def test_webhook_secret_for_an_unknown_partner_is_refused(tmp_path: Path, capsys: Any) -> None:
    path = _write(
        tmp_path,
        "hooks.csv",
        "partner_id,endpoint,secret,window_s\np_404,https://x.example/hooks,***,600\n",
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    assert f"{path}:2: partner_id: unknown partner 'p_404'" in capsys.readouterr().err


@pytest.mark.django_db
def test_duplicate_partner_id_in_one_file_is_an_error(tmp_path: Path, capsys: Any) -> None:
    path = _write(
        tmp_path,
        "registry.csv",
        "partner_id,name,mode,security,contact,sla\np_1,A,API,,,\np_1,B,API,,,\n",
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    assert f"{path}:3: duplicate of line 2 (p_1)" in capsys.readouterr().err


@pytest.mark.django_db
def test_reimport_updates_changed_fields_and_removes_dropped_slas(tmp_path: Path) -> None:
    call_command("import_registry", str(DEMO / "partners.csv"))
    path = _write(
        tmp_path,
        "registry.csv",
        "partner_id,name,mode,security,contact,sla\n"
        'p_001,Acme Retail Ltd,API,oauth2,ops@acme.com,"p95<=250ms"\n',
    )
    call_command("import_registry", path)
    acme = Partner.objects.get(external_id="p_001")
    assert acme.name == "Acme Retail Ltd"
    assert list(acme.slas.values_list("name", "threshold_ms")) == [("p95", 250)]


@pytest.mark.django_db
def test_webhook_secret_given_in_the_csv_is_sealed_and_kept_when_masked(tmp_path: Path) -> None:
    from partners import crypto

    call_command("import_registry", str(DEMO / "partners.csv"))
    header = "partner_id,endpoint,secret,window_s\n"
    with_secret = _write(tmp_path, "a.csv", header + "p_001,https://a.example/h,whsec_123,300\n")
    masked = _write(tmp_path, "b.csv", header + "p_001,https://a.example/h,***,300\n")
    call_command("import_registry", with_secret)
    call_command("import_registry", masked)
    row = WebhookSecret.objects.get()
    assert "whsec_123" not in row.secret_sealed
    assert crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad) == {"secret": "whsec_123"}


@pytest.mark.django_db
def test_webhook_endpoint_on_a_private_address_literal_is_refused(
    tmp_path: Path, capsys: Any
) -> None:
    call_command("import_registry", str(DEMO / "partners.csv"))
    path = _write(
        tmp_path,
        "hooks.csv",
        "partner_id,endpoint,secret,window_s\np_001,http://169.254.169.254/hook,***,600\n",
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    assert "cloud metadata" in capsys.readouterr().err


@pytest.mark.django_db
def test_dry_run_reports_changes_without_writing(capsys: Any) -> None:
    call_command("import_registry", "--dry-run", *PLAYBOOK)
    assert "Would import 4 file(s): 16 created" in capsys.readouterr().out
    assert Partner.objects.count() == 0


def test_missing_file_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="nope.csv: cannot read"):
        call_command("import_registry", "nope.csv")


def test_command_line_exits_with_code_2_and_prints_file_and_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _write(
        tmp_path,
        "registry.csv",
        "partner_id,name,mode,security,contact,sla\np_001,Acme,Carrier pigeon,,,\n",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "import_registry", path],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{path}:2: mode: unknown mode 'Carrier pigeon'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_webhook_secret_shorter_than_8_characters_is_refused(tmp_path: Path, capsys: Any) -> None:
    call_command("import_registry", str(DEMO / "partners.csv"))
    path = _write(
        tmp_path,
        "hooks.csv",
        "partner_id,endpoint,secret,window_s\np_001,https://a.example/h,whsec_1,300\n",
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    err = capsys.readouterr().err
    assert f"{path}:2: secret: too short; a secret needs at least 8 characters" in err
    assert "whsec_1" not in err
    assert not WebhookSecret.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hook:pw-SECRET-1@a.example/h", "the URL holds a password (user:password@host)"),
        ("https://a.example/h?password=pw-SECRET-1", "a password query parameter (?password=)"),
    ],
    ids=["userinfo", "query-string"],
)
def test_webhook_endpoint_with_a_password_is_refused_without_echoing_it(
    tmp_path: Path, capsys: Any, url: str, message: str
) -> None:
    call_command("import_registry", str(DEMO / "partners.csv"))
    path = _write(
        tmp_path, "hooks.csv", f"partner_id,endpoint,secret,window_s\np_001,{url},whsec_123,300\n"
    )
    with pytest.raises(CommandError):
        call_command("import_registry", path)
    err = capsys.readouterr().err
    assert f"{path}:2: endpoint: the URL holds a password" in err and message in err
    assert "pw-SECRET-1" not in err
    assert not WebhookSecret.objects.exists()


@pytest.mark.django_db
def test_webhook_secret_under_a_dropped_key_is_replaced_by_a_new_import(tmp_path: Path) -> None:
    call_command("import_registry", str(DEMO / "partners.csv"))
    header = "partner_id,endpoint,secret,window_s\n"
    first = _write(tmp_path, "a.csv", header + "p_001,https://a.example/h,whsec_old_1,300\n")
    with override_settings(SECRETS_ENCRYPTION_KEYS=f"k0:{crypto.new_key()}"):
        call_command("import_registry", first)
    again = _write(tmp_path, "b.csv", header + "p_001,https://a.example/h,whsec_new_1,300\n")
    call_command("import_registry", again)
    row = WebhookSecret.objects.get()
    assert crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad) == {"secret": "whsec_new_1"}
