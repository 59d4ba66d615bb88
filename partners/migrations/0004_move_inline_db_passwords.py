"""Move passwords written inside stored endpoint URLs (``postgres://u:pw@host/db``) into the
endpoint's sealed secrets, and scrub them from run snapshots and audit events.

URLs with a password are refused when saved since this version; rows saved before kept the
password readable in three tables. The password becomes the endpoint's ``password`` secret
(what ``dbQuery`` uses first), the URL keeps its user name.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from django.db import migrations

from partners import crypto
from partners.secret_rules import PASSWORD_QUERY_PARAMETERS, display_url, has_inline_password


def _without_password(url: str) -> tuple[str, str]:
    """The URL without its password, and the password (from ``user:pw@`` or ``?password=``)."""
    password = ""
    scheme_end = url.find("://") + 3
    at = url.find("@", scheme_end, _authority_end(url, scheme_end))
    if at != -1 and ":" in url[scheme_end:at]:
        user, _, password = url[scheme_end:at].partition(":")
        url = f"{url[:scheme_end]}{user}@{url[at + 1 :]}"
        password = unquote(password)
    head, question, query = url.partition("?")
    if question:
        kept = []
        for item in query.split("&"):
            name, _, value = item.partition("=")
            if unquote(name).lower() in PASSWORD_QUERY_PARAMETERS:
                if unquote(name).lower() == "password" and not password:
                    password = unquote(value)
                continue
            kept.append(item)
        url = head + ("?" + "&".join(kept) if kept else "")
    return url, password


def _authority_end(url: str, start: int) -> int:
    ends = [i for i in (url.find(c, start) for c in "/?#") if i != -1]
    return min(ends, default=len(url))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return display_url(value) if has_inline_password(value) else value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def forwards(apps: Any, schema_editor: Any) -> None:
    Endpoint = apps.get_model("partners", "Endpoint")
    for endpoint in Endpoint.objects.all():
        if not has_inline_password(endpoint.base_url):
            continue
        aad = f"partners.endpoint:{endpoint.pk}"
        try:
            secrets = crypto.open_secrets(endpoint.secrets_sealed, aad=aad)
        except crypto.SecretDecryptionError:
            secrets = {}  # unreadable already: the password from the URL is all there is
        url, password = _without_password(endpoint.base_url)
        if password:
            secrets.setdefault("password", password)
        # Sealed as it was stored: the minimum length applies to secrets entered from now on.
        endpoint.secrets_sealed = crypto.seal_text(json.dumps(secrets, sort_keys=True), aad=aad)
        endpoint.base_url = url
        if endpoint.kind == "postgresql" and endpoint.auth_kind == "none":
            endpoint.auth_kind = "db_password"
        endpoint.save(update_fields=["secrets_sealed", "base_url", "auth_kind"])
    Run = apps.get_model("certification", "Run")
    for run in Run.objects.only("endpoints").iterator():
        scrubbed = _scrub(run.endpoints)
        if scrubbed != run.endpoints:
            Run.objects.filter(pk=run.pk).update(endpoints=scrubbed)
    AuditEvent = apps.get_model("evidence", "AuditEvent")
    for event in AuditEvent.objects.only("data").iterator():
        scrubbed = _scrub(event.data)
        if scrubbed != event.data:
            AuditEvent.objects.filter(pk=event.pk).update(data=scrubbed)


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0003_sla_endpoint_alter_sla_name_registryupload"),
        ("certification", "0002_run_reasons_alter_run_latency_alter_run_status_and_more"),
        ("evidence", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
