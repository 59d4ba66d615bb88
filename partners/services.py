"""Writes to the partner registry. Each service owns its transaction and audit event."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from certification.engine.auth_kinds import SCHEMES, kinds_for
from evidence.audit import audit_record
from partners import access, crypto, endpoint_keys
from partners.models import NAME_VALIDATOR, Endpoint, Partner, WebhookSecret
from partners.secret_rules import display_url, short_secret_message
from partners.urlguard import check_sandbox_url

__all__ = [
    "ROLE_PERMISSIONS",
    "display_url",
    "endpoint_delete",
    "endpoint_save",
    "endpoint_secret_names",
    "endpoint_secrets",
    "roles_sync",
    "secrets_rotate",
]

_MODELS = ("partner", "sla", "endpoint", "webhooksecret", "retrypolicy", "fieldmapping")
_VIEW_RUNS = [
    "certification.view_suite",
    "certification.view_run",
    "certification.view_recertificationschedule",
]
_VIEW_EVIDENCE = [
    "evidence.view_certification",
    "evidence.view_evidencebundle",
    "evidence.add_evidencebundle",
]
ROLE_PERMISSIONS: dict[str, list[str]] = {
    access.QA_LEAD: [
        *(f"partners.{verb}_{m}" for m in _MODELS for verb in ("add", "change", "delete", "view")),
        "partners.view_membership",
        "partners.import_registry",
        "partners.export_evidence",
        "partners.view_all_partners",
        *_VIEW_RUNS,
        "certification.add_suite",
        "certification.add_run",
        "certification.change_run",
        "certification.add_recertificationschedule",
        "certification.delete_recertificationschedule",
        *_VIEW_EVIDENCE,
        "evidence.add_certification",
        "evidence.sign_off_certification",
        "evidence.suspend_certification",
        "evidence.change_checklistitem",
        "evidence.add_waiver",
        "evidence.approve_waiver",
    ],
    access.AUDITOR: [
        *(f"partners.view_{model}" for model in _MODELS),
        "partners.view_membership",
        "partners.export_evidence",
        "partners.view_all_partners",
        *_VIEW_RUNS,
        *_VIEW_EVIDENCE,
    ],
    access.PARTNER_USER: [
        "partners.view_partner",
        "partners.view_sla",
        "partners.view_webhooksecret",
        "partners.view_endpoint",
        "partners.add_endpoint",
        "partners.change_endpoint",
        "partners.delete_endpoint",
        *_VIEW_RUNS,
        "certification.add_run",
        "certification.change_run",
        *_VIEW_EVIDENCE,
        "evidence.confirm_certification",
    ],
}


def roles_sync(*, using: str = "default") -> None:
    """Create the role groups and give them exactly their permissions (idempotent)."""
    from django.db.models import Q

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        wanted = Q(pk__in=[])
        for name in names:
            app_label, codename = name.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.using(using).filter(wanted))


def endpoint_secrets(endpoint: Endpoint) -> dict[str, str]:
    """Decrypted secrets of an endpoint. Only the transport should need these.

    Raises ``crypto.SecretUnavailable`` when they were sealed with a key no longer configured.
    """
    return crypto.open_secrets(endpoint.secrets_sealed, aad=endpoint.secrets_aad)


def endpoint_secret_names(endpoint: Endpoint) -> set[str]:
    """Which secrets are stored. Raises like ``endpoint_secrets``."""
    return set(endpoint_secrets(endpoint)) if endpoint.secrets_sealed else set()


@transaction.atomic
def endpoint_save(
    *,
    partner: Partner,
    by: Any,
    name: str,
    base_url: str,
    is_default: bool,
    auth_kind: str,
    auth_config: dict[str, str],
    new_secrets: dict[str, str],
    endpoint: Endpoint | None = None,
    kind: str = "http",
    writable: bool = False,
) -> Endpoint:
    """Create or update an endpoint.

    ``new_secrets`` holds only the secrets being replaced; secrets not named there keep their
    stored value. Secrets the auth kind does not use are dropped. Every secret kept must be at
    least ``MIN_SAVED_SECRET_LENGTH`` characters, and the URL must not hold a password. Raises
    ``ValidationError`` keyed by field name, with every problem found; nothing is written then.
    """
    errors: dict[str, list[str]] = {}
    if kind not in Endpoint.Kind.values:
        raise ValidationError({"kind": [f"Unknown endpoint kind '{kind}'."]})
    if auth_kind not in SCHEMES:
        raise ValidationError({"auth_kind": [f"Unknown auth kind '{auth_kind}'."]})
    scheme = SCHEMES[auth_kind]
    if auth_kind not in kinds_for(kind):
        errors["auth_kind"] = [f"{auth_kind} does not apply to a {kind} endpoint."]
    try:
        NAME_VALIDATOR(name)
    except ValidationError as exc:
        errors["name"] = exc.messages
    try:
        check_sandbox_url(base_url, kind=kind)
    except ValidationError as exc:
        errors["base_url"] = exc.messages

    config: dict[str, str] = {}
    for field in scheme.config:
        value = (auth_config.get(field.name) or field.default).strip()
        if field.required and not value:
            errors[field.name] = [f"{field.label} is required for this auth kind."]
        if "PRIVATE KEY" in value:
            # Settings are shown and copied into run snapshots; a pasted key would leak.
            errors[field.name] = [
                f"{field.label} holds a private key. Settings are not secret: give only the "
                "public key or certificate here, and a private key in its secret field."
            ]
            continue
        if value:
            config[field.name] = value
    if kind == "sftp" and "base_url" not in errors:
        problem = endpoint_keys.pin_host_key(base_url, config)
        if problem:
            errors["host_key"] = [problem]
    if "token_url" in config:
        try:
            check_sandbox_url(config["token_url"])
        except ValidationError as exc:
            errors["token_url"] = exc.messages

    secrets: dict[str, str] = {}
    unreadable = ""
    if endpoint is not None:
        try:
            secrets = endpoint_secrets(endpoint)
        except crypto.SecretDecryptionError as exc:
            # Entering every secret again replaces what can no longer be read.
            unreadable = str(exc)
    replaced = sorted(k for k, v in new_secrets.items() if v)
    secrets.update({k: v for k, v in new_secrets.items() if v})
    secrets = {f.name: secrets[f.name] for f in scheme.secrets if f.name in secrets}
    for field in scheme.secrets:
        value = secrets.get(field.name, "")
        if not value:
            if field.required and unreadable:
                errors[field.name] = [
                    f"The stored {field.label} cannot be read ({unreadable}); enter it again."
                ]
            elif field.required:
                errors[field.name] = [f"{field.label} is required for this auth kind."]
        elif problem := short_secret_message(field.label, value, stored=field.name not in replaced):
            errors[field.name] = [problem]

    if kind == "as2":
        for key, problem in endpoint_keys.as2_problems(config, secrets).items():
            errors.setdefault(key, []).append(problem)
    if kind == "sftp":
        for key, problem in endpoint_keys.pgp_problems(config, secrets).items():
            errors.setdefault(key, []).append(problem)

    creating = endpoint is None
    if creating:
        endpoint = Endpoint(partner=partner)
    clash = Endpoint.objects.filter(partner=partner, name=name).exclude(pk=endpoint.pk)
    if clash.exists():
        errors["name"] = [f"{partner.external_id} already has an endpoint called '{name}'."]
    if errors:
        raise ValidationError(errors)

    if is_default:
        Endpoint.objects.filter(partner=partner, is_default=True).exclude(pk=endpoint.pk).update(
            is_default=False
        )
    endpoint.name = name
    endpoint.kind = kind
    endpoint.writable = writable and kind == "postgresql"
    endpoint.base_url = base_url
    endpoint.is_default = is_default
    endpoint.auth_kind = auth_kind
    endpoint.auth_config = config
    endpoint.secrets_sealed = crypto.seal_secrets(secrets, aad=endpoint.secrets_aad)
    endpoint.full_clean(exclude=["partner"])
    endpoint.save()
    audit_record(
        actor=by,
        action="endpoint.create" if creating else "endpoint.update",
        partner=partner,
        target=str(endpoint),
        data={
            "base_url": display_url(base_url),
            "auth_kind": auth_kind,
            "kind": kind,
            "writable": endpoint.writable,
            "default": is_default,
            "secrets_replaced": replaced,
        },
    )
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint, by: Any) -> None:
    audit_record(actor=by, action="endpoint.delete", partner=endpoint.partner, target=str(endpoint))
    endpoint.delete()


def secrets_rotate() -> int:
    """Re-encrypt every sealed secret under the active key; returns how many rows changed."""

    # A row sealed with a key no longer configured raises ``crypto.SecretUnavailable`` and the
    # whole rotation rolls back: dropping that key first was the mistake to report.
    ring = crypto.key_ring()
    changed = 0
    with transaction.atomic():
        for model, field in ((Endpoint, "secrets_sealed"), (WebhookSecret, "secret_sealed")):
            for row in model.objects.select_for_update().exclude(**{field: ""}):
                token = getattr(row, field)
                if ring.key_id_of(token) == ring.active_kid:
                    continue
                plain = ring.decrypt(token, aad=row.secrets_aad)
                setattr(row, field, ring.encrypt(plain, aad=row.secrets_aad))
                row.save(update_fields=[field])
                changed += 1
        audit_record(
            actor="manage.py rotate_secrets", action="secrets.rotate", data={"rows": changed}
        )
    return changed


def webhook_secret_values(row: WebhookSecret, *, now: datetime | None = None) -> list[str]:
    """The secrets a delivery to this inbox may be signed with: the current one and, during a
    rotation, the previous one until ``previous_valid_until``."""
    if not row.secret_sealed:
        return []
    opened = crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad)
    values = [opened["secret"]] if opened.get("secret") else []
    now = now or timezone.now()
    if opened.get("previous") and row.previous_valid_until and row.previous_valid_until > now:
        values.append(opened["previous"])
    return values


@transaction.atomic
def webhook_secret_rotate(
    *, row: WebhookSecret, new_secret: str, overlap_s: int = 86_400, by: Any = "system"
) -> WebhookSecret:
    """Make ``new_secret`` current; the old one stays valid for ``overlap_s`` seconds (0: at
    once invalid), so deliveries signed before the partner switched still verify."""
    row = WebhookSecret.objects.select_for_update().select_related("partner").get(pk=row.pk)
    old = crypto.open_secrets(row.secret_sealed, aad=row.secrets_aad) if row.secret_sealed else {}
    values = {"secret": new_secret}
    if old.get("secret") and overlap_s > 0:
        values["previous"] = old["secret"]
    row.secret_sealed = crypto.seal_secrets(values, aad=row.secrets_aad)
    row.previous_valid_until = (
        timezone.now() + timedelta(seconds=overlap_s) if "previous" in values else None
    )
    row.save(update_fields=["secret_sealed", "previous_valid_until", "updated_at"])
    audit_record(
        actor=by,
        action="webhook_secret.rotate",
        partner=row.partner,
        target=f"inbox {row.name}",
        data={
            "endpoint_url": display_url(row.endpoint_url),
            "previous_valid_until": row.previous_valid_until.isoformat()
            if row.previous_valid_until
            else None,
        },
    )
    return row
