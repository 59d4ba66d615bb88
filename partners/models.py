"""The partner registry: partners, their SLAs, sandbox endpoints, secrets and memberships."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from certification.engine import auth_kinds
from partners import sla as sla_grammar

EXTERNAL_ID_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_\-]{0,39}$",
    "Use lower-case letters, digits, '_' and '-' (e.g. p_001), at most 40 characters.",
)
NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_\-]{0,39}$",
    "Use lower-case letters, digits, '_' and '-' (e.g. api, api-gateway).",
)


class PartnerScopedQuerySet(models.QuerySet):
    """Rows that belong to a partner. ``visible_to`` is the single place partner scoping lives."""

    partner_lookup = "partner"

    def visible_to(self, user: Any) -> PartnerScopedQuerySet:
        from partners import access

        return access.scope_queryset(self, user, partner_lookup=self.partner_lookup)


class PartnerQuerySet(PartnerScopedQuerySet):
    partner_lookup = ""


def new_public_token() -> str:
    """The unguessable part of a partner's hosted-mock and inbox URLs."""
    import secrets

    return secrets.token_urlsafe(18)


class Partner(models.Model):
    class Status(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        IN_CERTIFICATION = "in_certification", "In certification"
        CERTIFIED = "certified", "Certified"
        EXPIRED = "expired", "Expired"
        SUSPENDED = "suspended", "Suspended"

    class Mode(models.TextChoices):
        API = "api", "API"
        WEBHOOK = "webhook", "Webhook"
        FILE = "file", "File (SFTP)"
        EDI = "edi", "EDI"

    external_id = models.CharField(
        "partner ID", max_length=40, unique=True, validators=[EXTERNAL_ID_VALIDATOR]
    )
    name = models.CharField(max_length=200)
    modes = models.JSONField(default=list, help_text="Integration modes, e.g. ['api', 'webhook'].")
    security = models.JSONField(default=list, help_text="Security kinds, e.g. ['oauth2', 'hmac'].")
    contact_email = models.EmailField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ONBOARDING)
    public_token = models.CharField(
        max_length=40,
        unique=True,
        default=new_public_token,
        editable=False,
        help_text="In the partner's hosted-mock and webhook-inbox URLs; not a credential.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        ordering = ["external_id"]
        permissions = [
            ("import_registry", "Can import the partner registry CSVs"),
            ("export_evidence", "Can export certification evidence"),
            ("view_all_partners", "Can see every partner, not only their own"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}"

    @property
    def mock_base_url(self) -> str:
        """Where the partner's sandbox sends its third-party calls: ``<this>/<host>/<path>``."""
        return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/mock/{self.public_token}"

    def inbox_url(self, name: str) -> str:
        """Where the partner's sandbox delivers the webhooks of inbox ``name``."""
        return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/inbox/{self.public_token}/{name}"

    @property
    def as2_url(self) -> str:
        """Where the partner's AS2 server posts its interchanges (997, 855 …) and MDNs to us."""
        return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/as2/{self.public_token}"

    @property
    def mode_labels(self) -> list[str]:
        labels = dict(self.Mode.choices)
        return [labels.get(mode, mode) for mode in self.modes]


class SLA(models.Model):
    class Kind(models.TextChoices):
        LATENCY = sla_grammar.LATENCY, "Latency percentile"
        UPTIME = sla_grammar.UPTIME, "Uptime"
        FILE_WINDOW = sla_grammar.FILE_WINDOW, "File delivery window"
        ACK = sla_grammar.ACK, "Acknowledgement deadline"
        REPLAY = sla_grammar.REPLAY, "Replay retention"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="slas")
    name = models.CharField(
        max_length=80, help_text="p95, uptime, file, ack or replay; p95@orders when scoped."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    text = models.CharField(max_length=100, help_text="The registry text it was parsed from.")
    percentile = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    threshold_ms = models.PositiveIntegerField(null=True, blank=True)
    uptime_percent = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    schedule = models.CharField(max_length=20, blank=True)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    strict = models.BooleanField(
        default=False, help_text="The target is exclusive ('<'): reaching it is a miss."
    )
    endpoint = models.CharField(
        max_length=50,
        blank=True,
        help_text="The endpoint (or flow:<name>) this SLA applies to; blank: each endpoint.",
    )

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA"
        ordering = ["partner", "kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="sla_unique_name"),
            models.CheckConstraint(
                condition=~Q(kind="latency")
                | Q(percentile__isnull=False, threshold_ms__isnull=False),
                name="sla_latency_has_target",
            ),
            models.CheckConstraint(
                condition=~Q(kind="uptime") | Q(uptime_percent__isnull=False),
                name="sla_uptime_has_target",
            ),
            models.CheckConstraint(
                condition=~Q(kind="file_window") | Q(window_start__isnull=False),
                name="sla_file_window_has_start",
            ),
            models.CheckConstraint(
                condition=~Q(kind="ack") | Q(threshold_ms__isnull=False),
                name="sla_ack_has_deadline",
            ),
            models.CheckConstraint(
                condition=~Q(kind="replay") | Q(retention_days__isnull=False),
                name="sla_replay_has_retention",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner.external_id} {self.summary}"

    @property
    def target(self) -> sla_grammar.SLATarget:
        return sla_grammar.SLATarget(
            kind=self.kind,
            name=self.name,
            text=self.text,
            percentile=self.percentile,
            threshold_ms=self.threshold_ms,
            uptime_percent=self.uptime_percent,
            window_start=self.window_start,
            window_end=self.window_end,
            schedule=self.schedule,
            retention_days=self.retention_days,
            strict=self.strict,
            endpoint=self.endpoint,
        )

    @property
    def summary(self) -> str:
        return sla_grammar.describe(self.target)


class Endpoint(models.Model):
    """A named sandbox endpoint of a partner: base URL plus how to authenticate to it.

    Non-secret auth settings live in ``auth_config``; secrets live only in ``secrets_sealed``,
    encrypted with the row's id as associated data (see ``partners.crypto``). The auth kinds
    and their fields are ``certification.engine.auth_kinds.SCHEMES``.
    """

    class Kind(models.TextChoices):
        HTTP = "http", "HTTP(S) API"
        POSTGRESQL = "postgresql", "PostgreSQL database"
        SFTP = "sftp", "SFTP file server"
        AS2 = "as2", "AS2 (EDI over HTTP)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=40, validators=[NAME_VALIDATOR])
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HTTP)
    base_url = models.CharField(
        "base URL",
        max_length=500,
        help_text="http(s)://… for APIs, postgres://… for databases, sftp://host[:port][/root] "
        "for file servers, the partner's AS2 URL (http(s)://…) for AS2.",
    )
    writable = models.BooleanField(
        default=False,
        help_text="Databases only: let dbQuery steps write. Otherwise queries run read-only.",
    )
    is_default = models.BooleanField(
        default=False, help_text="Used for scenario URLs that start with '/'."
    )
    auth_kind = models.CharField(max_length=30, choices=auth_kinds.CHOICES, default="none")
    auth_config = models.JSONField(default=dict, blank=True)
    secrets_sealed = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="endpoint_unique_name"),
            models.UniqueConstraint(
                fields=["partner"], condition=Q(is_default=True), name="endpoint_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner.external_id}/{self.name}"

    @property
    def secrets_aad(self) -> str:
        return f"partners.endpoint:{self.pk}"


class WebhookSecret(models.Model):
    """The playbook's webhook secret registry: where a partner receives webhooks and the HMAC
    secret and replay window used to sign them (``X-Signature: t=<ts>,v1=<hmac>``), and, for
    webhooks the partner sends us, the inbox they arrive at (``/inbox/<token>/<name>``) and the
    signature profile they are verified with. The sealed blob holds ``secret`` and, during a
    rotation, ``previous``, accepted until ``previous_valid_until``."""

    class Profile(models.TextChoices):
        PLAYBOOK = "playbook", "Playbook (X-Signature: t=…, v1=…)"
        STRIPE = "stripe", "Stripe (Stripe-Signature)"
        STANDARD = "standard", "Standard Webhooks (webhook-id / -timestamp / -signature)"
        GITHUB = "github", "GitHub (X-Hub-Signature-256)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="webhook_secrets")
    endpoint_url = models.URLField("endpoint URL", max_length=500)
    name = models.CharField(
        "inbox name",
        max_length=40,
        blank=True,
        validators=[NAME_VALIDATOR],
        help_text="The inbox URL's last part: /inbox/<partner token>/<name>. Default: the "
        "endpoint URL's last path segment.",
    )
    profile = models.CharField(
        "signature profile", max_length=20, choices=Profile.choices, default=Profile.PLAYBOOK
    )
    previous_valid_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="During a rotation the previous secret is accepted until this time.",
    )
    secret_sealed = models.TextField(blank=True, editable=False)
    window_s = models.PositiveIntegerField(
        "replay window (s)",
        default=600,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "endpoint_url"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "endpoint_url"], name="webhook_secret_unique_endpoint"
            ),
            models.UniqueConstraint(
                fields=["partner", "name"],
                condition=~Q(name=""),
                name="webhook_secret_unique_inbox",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner.external_id} {self.endpoint_url}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.name:
            self.name = default_inbox_name(self)
        super().save(*args, **kwargs)

    @property
    def secrets_aad(self) -> str:
        return f"partners.webhooksecret:{self.pk}"

    @property
    def inbox_url(self) -> str:
        return self.partner.inbox_url(self.name)


def default_inbox_name(secret: WebhookSecret) -> str:
    """``https://acme.example/webhooks/orders`` -> ``orders``; unique within the partner."""
    import re
    from urllib.parse import urlsplit

    last = urlsplit(secret.endpoint_url).path.rstrip("/").rpartition("/")[2].lower()
    base = re.sub(r"[^a-z0-9_\-]+", "-", last).strip("-_")[:30] or "webhooks"
    taken = set(
        WebhookSecret.objects.filter(partner_id=secret.partner_id)
        .exclude(pk=secret.pk)
        .values_list("name", flat=True)
    )
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


class RetryPolicy(models.Model):
    """How often and how patiently a flow is retried (playbook's retry policy CSV)."""

    class Jitter(models.TextChoices):
        FULL = "full", "Full"
        EQUAL = "equal", "Equal"
        DECORRELATED = "decorrelated", "Decorrelated"
        NONE = "none", "None"

    flow = models.CharField(max_length=80, unique=True)
    max_attempts = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    backoff_ms_cap = models.PositiveIntegerField()
    jitter = models.CharField(max_length=20, choices=Jitter.choices)

    class Meta:
        verbose_name_plural = "retry policies"
        ordering = ["flow"]

    def __str__(self) -> str:
        return self.flow


class FieldMapping(models.Model):
    """Our field name to the partner's (playbook's field mapping CSV)."""

    ours = models.CharField(max_length=100, unique=True)
    partner_field = models.CharField(max_length=100)
    type = models.CharField(max_length=20)
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["ours"]

    def __str__(self) -> str:
        return f"{self.ours} -> {self.partner_field}"


class Membership(models.Model):
    """Ties a partner user to the one partner whose data they may see."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "user"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.partner.external_id}"


class RegistryUpload(models.Model):
    """Registry CSVs previewed and waiting for the importer to confirm them.

    The files may hold webhook secrets, so they are kept sealed (``partners.crypto``, bound to
    the token) and only briefly: the row is deleted when it is confirmed or cancelled, and
    expired rows are deleted whenever another preview is stored or confirmed.
    """

    token = models.CharField(max_length=64, primary_key=True, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    files_sealed = models.TextField(editable=False)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["expires_at"]

    def __str__(self) -> str:
        return f"registry upload by {self.uploaded_by} until {self.expires_at:%H:%M}"

    @property
    def secrets_aad(self) -> str:
        return f"partners.registryupload:{self.pk}"


class ControlNumber(models.Model):
    """The last number we used with a partner, per kind: the X12 control numbers
    ``interchange`` (ISA13), ``group`` (GS06) and ``set`` (ST02), and ``file:<flow>``, the
    sequence in the names of the batch files of a flow (``globex_inventory_…_000042.csv``).
    Taken only through ``partners.control_numbers``, one atomic statement each, so concurrent
    runs never use the same number twice."""

    class Kind(models.TextChoices):
        INTERCHANGE = "interchange", "Interchange (ISA13)"
        GROUP = "group", "Functional group (GS06)"
        SET = "set", "Transaction set (ST02)"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="+")
    # One of ``Kind``, or ``file:<flow>`` (checked by ``control_numbers.take``).
    kind = models.CharField(max_length=50)
    value = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "kind"], name="control_number_once"),
        ]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.kind} {self.value}"
