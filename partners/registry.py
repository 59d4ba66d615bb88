"""Import of the playbook's registry CSVs: partners (with SLAs), webhook secrets, retry policies
and field mappings. Each file is recognised by its header row.

``registry_parse`` checks every row of every file and collects all errors; ``registry_preview``
compares a clean plan with the database; ``registry_import`` applies it in one transaction,
upserting by natural key, so importing the same files twice leaves the same database.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction

from certification.engine.masking import MIN_SAVED_SECRET_LENGTH
from certification.engine.netpolicy import parse_host_literal
from evidence.audit import audit_record
from partners import crypto
from partners.models import (
    EXTERNAL_ID_VALIDATOR,
    SLA,
    FieldMapping,
    Partner,
    RetryPolicy,
    WebhookSecret,
)
from partners.secret_rules import has_inline_password
from partners.sla import SLAParseError, SLATarget, parse_sla_text
from partners.urlguard import sandbox_policy

PARTNERS, WEBHOOK_SECRETS, RETRY_POLICIES, FIELD_MAPPINGS = (
    "partner registry",
    "webhook secret registry",
    "retry policy",
    "field mapping",
)
# kind -> (required columns, optional columns)
HEADERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    PARTNERS: (("partner_id", "name", "mode", "security", "contact", "sla"), ("status",)),
    WEBHOOK_SECRETS: (("partner_id", "endpoint", "secret", "window_s"), ()),
    RETRY_POLICIES: (("flow", "max_attempts", "backoff_ms_cap", "jitter"), ()),
    FIELD_MAPPINGS: (("ours", "partner", "type"), ("notes",)),
}
MODE_ALIASES = {
    "api": "api",
    "rest": "api",
    "webhook": "webhook",
    "webhooks": "webhook",
    "file": "file",
    "file(sftp)": "file",
    "sftp": "file",
    "edi": "edi",
}
SECURITY_KINDS = (
    "oauth2", "mtls", "hmac", "api_key", "bearer", "basic", "ssh", "pgp", "as2", "mdn",
)  # fmt: skip
FIELD_TYPES = ("string", "integer", "decimal", "boolean", "date", "datetime", "enum", "object")
MASKED_SECRETS = {"", "***"}
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class PartnerRow:
    line: str
    external_id: str
    name: str
    modes: list[str]
    security: list[str]
    contact_email: str
    slas: list[SLATarget]
    status: str | None


@dataclass
class WebhookSecretRow:
    line: str
    partner_id: str
    endpoint_url: str
    secret: str | None
    window_s: int


@dataclass
class RetryPolicyRow:
    line: str
    flow: str
    max_attempts: int
    backoff_ms_cap: int
    jitter: str


@dataclass
class FieldMappingRow:
    line: str
    ours: str
    partner_field: str
    type: str
    notes: str


@dataclass
class RegistryPlan:
    files: list[tuple[str, str]] = field(default_factory=list)  # (file name, kind)
    errors: list[RowError] = field(default_factory=list)
    partners: list[PartnerRow] = field(default_factory=list)
    webhook_secrets: list[WebhookSecretRow] = field(default_factory=list)
    retry_policies: list[RetryPolicyRow] = field(default_factory=list)
    field_mappings: list[FieldMappingRow] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    kind: str
    key: str
    action: str  # create | update | unchanged | delete
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action:9} {self.kind} {self.key}{detail}"


class RowInvalid(ValueError):
    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class _Checks:
    """Runs every column check of a row so that one pass reports all of the row's problems."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def take(self, check: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except RowInvalid as exc:
            self.errors.extend(exc.messages)
            return None

    def done(self) -> None:
        if self.errors:
            raise RowInvalid(*self.errors)


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _parse_modes(cell: str) -> list[str]:
    modes: list[str] = []
    for token in cell.replace(",", "+").split("+"):
        key = token.strip().lower().replace(" ", "")
        if not key:
            continue
        if key not in MODE_ALIASES:
            raise RowInvalid(
                f"mode: unknown mode '{token.strip()}'; expected API, Webhook, File(SFTP) or EDI"
                + _suggest(key, list(MODE_ALIASES))
            )
        if MODE_ALIASES[key] not in modes:
            modes.append(MODE_ALIASES[key])
    if not modes:
        raise RowInvalid("mode: empty; expected e.g. API+Webhook")
    return modes


def _parse_security(cell: str) -> list[str]:
    kinds: list[str] = []
    for token in cell.replace(",", "+").split("+"):
        key = token.strip().lower().replace("-", "_")
        key = {"apikey": "api_key", "oauth": "oauth2"}.get(key, key)
        if not key:
            continue
        if key not in SECURITY_KINDS:
            raise RowInvalid(
                f"security: unknown kind '{token.strip()}'; expected some of "
                f"{', '.join(SECURITY_KINDS)}" + _suggest(key, SECURITY_KINDS)
            )
        if key not in kinds:
            kinds.append(key)
    return kinds


def _int(value: str, column: str, *, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise RowInvalid(f"{column}: '{value}' is not a whole number") from None
    if not low <= number <= high:
        raise RowInvalid(f"{column}: {number} is outside {low}..{high}")
    return number


def _required(row: dict[str, str], column: str) -> str:
    value = row[column].strip()
    if not value:
        raise RowInvalid(f"{column}: required")
    return value


def _check_webhook_url(value: str) -> str:
    if has_inline_password(value):
        # Not echoed: the value holds a password.
        raise RowInvalid(
            "endpoint: the URL holds a password (user:password@host) or a password query "
            "parameter (?password=); remove it, a URL is stored and shown in clear"
        )
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise RowInvalid(f"endpoint: '{value}' is not an http(s) URL") from None
    host = value.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    try:
        address = parse_host_literal(host)
    except ValueError as exc:
        raise RowInvalid(f"endpoint: {exc}") from None
    if address is not None:
        try:
            sandbox_policy().check_ip(address)
        except ValueError as exc:
            raise RowInvalid(f"endpoint: {exc}") from None
    return value


def _external_id(value: str) -> str:
    try:
        EXTERNAL_ID_VALIDATOR(value)
    except ValidationError:
        raise RowInvalid(f"partner_id: '{value}' is not a valid partner ID (e.g. p_001)") from None
    return value


def _email(value: str) -> str:
    if value:
        try:
            EmailValidator()(value)
        except ValidationError:
            raise RowInvalid(f"contact: '{value}' is not an e-mail address") from None
    return value


def _slas(value: str) -> list[SLATarget]:
    try:
        return parse_sla_text(value)
    except SLAParseError as exc:
        raise RowInvalid(f"sla: {exc}") from None


def _status(value: str | None) -> str | None:
    # The lifecycle status follows the partner's certifications (evidence.services); an import
    # may not set it. An empty column is accepted so that exported registries import again.
    if (value or "").strip():
        raise RowInvalid(
            "status: the lifecycle status is not imported; it follows the partner's "
            "certifications (leave the column empty or remove it)"
        )
    return None


def _partner_row(row: dict[str, str], line: str) -> PartnerRow:
    checks = _Checks()
    external_id = checks.take(_required, row, "partner_id")
    if external_id:
        checks.take(_external_id, external_id)
    parsed = PartnerRow(
        line=line,
        external_id=external_id or "",
        name=checks.take(_required, row, "name"),
        modes=checks.take(_parse_modes, row["mode"]),
        security=checks.take(_parse_security, row["security"]),
        contact_email=checks.take(_email, row["contact"].strip()),
        slas=checks.take(_slas, row["sla"]),
        status=checks.take(_status, row.get("status")),
    )
    checks.done()
    return parsed


def _secret(value: str) -> str | None:
    secret = value.strip()
    if secret in MASKED_SECRETS:
        return None
    if len(secret) < MIN_SAVED_SECRET_LENGTH:
        raise RowInvalid(
            f"secret: too short; a secret needs at least {MIN_SAVED_SECRET_LENGTH} characters "
            "(write *** to keep the stored one)"
        )
    return secret


def _webhook_secret_row(row: dict[str, str], line: str) -> WebhookSecretRow:
    checks = _Checks()
    endpoint = checks.take(_required, row, "endpoint")
    parsed = WebhookSecretRow(
        line=line,
        partner_id=checks.take(_required, row, "partner_id"),
        endpoint_url=endpoint and checks.take(_check_webhook_url, endpoint),
        secret=checks.take(_secret, row["secret"]),
        window_s=checks.take(_int, row["window_s"], "window_s", low=1, high=86400),
    )
    checks.done()
    return parsed


def _jitter(value: str) -> str:
    jitter = value.strip().lower()
    if jitter not in RetryPolicy.Jitter.values:
        raise RowInvalid(
            f"jitter: unknown jitter '{jitter}'; expected one of "
            f"{', '.join(RetryPolicy.Jitter.values)}" + _suggest(jitter, RetryPolicy.Jitter.values)
        )
    return jitter


def _retry_policy_row(row: dict[str, str], line: str) -> RetryPolicyRow:
    checks = _Checks()
    parsed = RetryPolicyRow(
        line=line,
        flow=checks.take(_required, row, "flow"),
        max_attempts=checks.take(_int, row["max_attempts"], "max_attempts", low=1, high=100),
        backoff_ms_cap=checks.take(
            _int, row["backoff_ms_cap"], "backoff_ms_cap", low=0, high=86_400_000
        ),
        jitter=checks.take(_jitter, row["jitter"]),
    )
    checks.done()
    return parsed


def _field_type(value: str) -> str:
    kind = value.strip().lower()
    if kind not in FIELD_TYPES:
        raise RowInvalid(
            f"type: unknown type '{kind}'; expected one of {', '.join(FIELD_TYPES)}"
            + _suggest(kind, FIELD_TYPES)
        )
    return kind


def _field_mapping_row(row: dict[str, str], line: str) -> FieldMappingRow:
    checks = _Checks()
    parsed = FieldMappingRow(
        line=line,
        ours=checks.take(_required, row, "ours"),
        partner_field=checks.take(_required, row, "partner"),
        type=checks.take(_field_type, row["type"]),
        notes=(row.get("notes") or "").strip(),
    )
    checks.done()
    return parsed


# kind -> (row parser, plan attribute, natural key)
_ROW_PARSERS = {
    PARTNERS: (_partner_row, "partners", lambda r: r.external_id),
    WEBHOOK_SECRETS: (_webhook_secret_row, "webhook_secrets", lambda r: (r.partner_id, r.endpoint_url)),  # noqa: E501
    RETRY_POLICIES: (_retry_policy_row, "retry_policies", lambda r: r.flow),
    FIELD_MAPPINGS: (_field_mapping_row, "field_mappings", lambda r: r.ours),
}  # fmt: skip


def _recognise(header: list[str]) -> str | None:
    columns = {cell.strip().lower() for cell in header}
    for kind, (required, optional) in HEADERS.items():
        if set(required) <= columns <= set(required) | set(optional):
            return kind
    return None


def _parse_file(plan: RegistryPlan, name: str, content: bytes) -> None:
    if len(content) > MAX_FILE_BYTES:
        plan.errors.append(RowError(name, 1, f"file is larger than {MAX_FILE_BYTES} bytes"))
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        plan.errors.append(RowError(name, 1, f"not UTF-8 text (byte {exc.start})"))
        return
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        plan.errors.append(RowError(name, 1, f"CSV syntax: {exc}"))
        return
    if not header:
        plan.errors.append(RowError(name, 1, "empty file; expected a header row"))
        return
    kind = _recognise(header)
    if kind is None:
        expected = "; ".join(f"{k}: {','.join(cols)}" for k, (cols, _) in HEADERS.items())
        plan.errors.append(
            RowError(name, 1, f"unrecognised header '{','.join(header)}'; expected {expected}")
        )
        return
    plan.files.append((name, kind))
    columns = [cell.strip().lower() for cell in header]
    parse_row, target, key_of = _ROW_PARSERS[kind]
    seen: dict[Any, int] = {}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            plan.errors.append(RowError(name, start, f"CSV syntax: {exc}"))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            plan.errors.append(
                RowError(name, start, f"expected {len(columns)} columns, found {len(cells)}")
            )
            continue
        try:
            parsed = parse_row(dict(zip(columns, cells, strict=True)), f"{name}:{start}")
        except RowInvalid as exc:
            plan.errors.extend(RowError(name, start, message) for message in exc.messages)
            continue
        key = key_of(parsed)
        if key in seen:
            label = key if isinstance(key, str) else " ".join(key)
            plan.errors.append(RowError(name, start, f"duplicate of line {seen[key]} ({label})"))
            continue
        seen[key] = start
        getattr(plan, target).append(parsed)


def registry_parse(files: Sequence[tuple[str, bytes]]) -> RegistryPlan:
    """Check every row of every file. The plan's ``errors`` lists all problems found."""
    plan = RegistryPlan()
    for name, content in files:
        _parse_file(plan, name, content)
    kinds = [kind for _, kind in plan.files]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            names = ", ".join(n for n, k in plan.files if k == kind)
            plan.errors.append(
                RowError(names.split(", ")[-1], 1, f"a second {kind} file ({names})")
            )
    known = {row.external_id for row in plan.partners}
    missing = [row for row in plan.webhook_secrets if row.partner_id not in known]
    if missing:
        existing = set(
            Partner.objects.filter(external_id__in={r.partner_id for r in missing}).values_list(
                "external_id", flat=True
            )
        )
        for row in missing:
            if row.partner_id not in existing:
                file, line = row.line.rsplit(":", 1)
                plan.errors.append(
                    RowError(file, int(line), f"partner_id: unknown partner '{row.partner_id}'")
                )
    return plan


def _diff(obj: Any, values: dict[str, Any]) -> tuple[str, ...]:
    changed = []
    for name, value in values.items():
        current = getattr(obj, name)
        if isinstance(value, Decimal) and current is not None:
            current = Decimal(current)
        if current != value:
            changed.append(name)
    return tuple(changed)


def _partner_values(row: PartnerRow, *, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": row.name,
        "modes": row.modes,
        "security": row.security,
        "contact_email": row.contact_email,
    }
    if creating:
        values["status"] = Partner.Status.ONBOARDING
    return values


def _sla_values(target: SLATarget) -> dict[str, Any]:
    return {
        "kind": target.kind,
        "text": target.text,
        "percentile": target.percentile,
        "threshold_ms": target.threshold_ms,
        "uptime_percent": target.uptime_percent,
        "window_start": target.window_start,
        "window_end": target.window_end,
        "schedule": target.schedule,
        "retention_days": target.retention_days,
        "strict": target.strict,
        "endpoint": target.endpoint,
    }


def _secret_differs(row: WebhookSecretRow, existing: WebhookSecret | None) -> bool:
    if row.secret is None:
        return False
    if existing is None or not existing.secret_sealed:
        return True
    try:
        stored = crypto.open_secrets(existing.secret_sealed, aad=existing.secrets_aad)
    except crypto.SecretDecryptionError:
        return True  # the new value replaces one that can no longer be read
    return stored != {"secret": row.secret}


def _apply(plan: RegistryPlan, *, write: bool) -> list[Change]:
    """Compare the plan with the database and, when ``write``, make it so."""
    changes: list[Change] = []

    def upsert(kind: str, key: str, model: Any, lookup: dict[str, Any], values: dict[str, Any]):
        obj = model.objects.filter(**lookup).first()
        if obj is None:
            changes.append(Change(kind, key, "create"))
            if write:
                obj = model(**lookup, **values)
                obj.full_clean()
                obj.save()
            return obj, True
        fields = _diff(obj, values)
        changes.append(Change(kind, key, "update" if fields else "unchanged", fields))
        if write and fields:
            for name in fields:
                setattr(obj, name, values[name])
            obj.full_clean()
            obj.save()
        return obj, False

    for row in plan.partners:
        exists = Partner.objects.filter(external_id=row.external_id).exists()
        partner, _ = upsert(
            "partner",
            row.external_id,
            Partner,
            {"external_id": row.external_id},
            _partner_values(row, creating=not exists),
        )
        current = {sla.name: sla for sla in partner.slas.all()} if partner and partner.pk else {}
        for target in row.slas:
            key = f"{row.external_id} {target.name}"
            values = _sla_values(target)
            if partner is None or not partner.pk:
                changes.append(Change("SLA", key, "create"))
                continue
            upsert("SLA", key, SLA, {"partner": partner, "name": target.name}, values)
        for name, sla in current.items():
            if name not in {t.name for t in row.slas}:
                changes.append(Change("SLA", f"{row.external_id} {name}", "delete"))
                if write:
                    sla.delete()

    for row in plan.webhook_secrets:
        key = f"{row.partner_id} {row.endpoint_url}"
        partner = Partner.objects.filter(external_id=row.partner_id).first()
        existing = (
            WebhookSecret.objects.filter(partner=partner, endpoint_url=row.endpoint_url).first()
            if partner
            else None
        )
        fields = []
        if existing is None:
            action = "create"
        else:
            fields = ["window_s"] if existing.window_s != row.window_s else []
            action = "update" if fields else "unchanged"
        if _secret_differs(row, existing):
            fields.append("secret")
            action = "create" if existing is None else "update"
        changes.append(Change("webhook secret", key, action, tuple(fields)))
        if write and action != "unchanged":
            obj = existing or WebhookSecret(partner=partner, endpoint_url=row.endpoint_url)
            obj.window_s = row.window_s
            if row.secret is not None:
                obj.secret_sealed = crypto.seal_secrets({"secret": row.secret}, aad=obj.secrets_aad)
            obj.full_clean()
            obj.save()

    for row in plan.retry_policies:
        upsert(
            "retry policy",
            row.flow,
            RetryPolicy,
            {"flow": row.flow},
            {
                "max_attempts": row.max_attempts,
                "backoff_ms_cap": row.backoff_ms_cap,
                "jitter": row.jitter,
            },
        )
    for row in plan.field_mappings:
        upsert(
            "field mapping",
            row.ours,
            FieldMapping,
            {"ours": row.ours},
            {"partner_field": row.partner_field, "type": row.type, "notes": row.notes},
        )
    return changes


def registry_preview(plan: RegistryPlan) -> list[Change]:
    """What importing the plan would change, without changing anything."""
    if plan.errors:
        raise ValueError("a plan with errors cannot be previewed")
    return _apply(plan, write=False)


@transaction.atomic
def registry_import(*, plan: RegistryPlan, by: Any) -> list[Change]:
    """Apply a plan with no errors; all of it or, on any failure, none of it."""
    if plan.errors:
        raise ValueError("a plan with errors cannot be imported")
    changes = _apply(plan, write=True)
    audit_record(
        actor=by,
        action="registry.import",
        target=", ".join(name for name, _ in plan.files),
        data={
            "created": sum(c.action == "create" for c in changes),
            "updated": sum(c.action == "update" for c in changes),
            "deleted": sum(c.action == "delete" for c in changes),
            "unchanged": sum(c.action == "unchanged" for c in changes),
        },
    )
    return changes
