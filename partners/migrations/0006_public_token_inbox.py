from __future__ import annotations

import django.core.validators
from django.db import migrations, models

import partners.models


def fill_tokens(apps, schema_editor):
    Partner = apps.get_model("partners", "Partner")
    for partner in Partner.objects.filter(public_token__isnull=True):
        partner.public_token = partners.models.new_public_token()
        partner.save(update_fields=["public_token"])


def fill_inbox_names(apps, schema_editor):
    import re
    from urllib.parse import urlsplit

    WebhookSecret = apps.get_model("partners", "WebhookSecret")
    taken: dict[int, set[str]] = {}
    for secret in WebhookSecret.objects.order_by("partner_id", "endpoint_url"):
        last = urlsplit(secret.endpoint_url).path.rstrip("/").rpartition("/")[2].lower()
        base = re.sub(r"[^a-z0-9_\-]+", "-", last).strip("-_")[:30] or "webhooks"
        used = taken.setdefault(secret.partner_id, set())
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        secret.name = name
        secret.save(update_fields=["name"])


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0005_endpoint_auth_basic"),
    ]

    operations = [
        migrations.AddField(
            model_name="partner",
            name="public_token",
            field=models.CharField(max_length=40, null=True, editable=False),
        ),
        migrations.RunPython(fill_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="partner",
            name="public_token",
            field=models.CharField(
                default=partners.models.new_public_token,
                editable=False,
                help_text="In the partner's hosted-mock and webhook-inbox URLs; not a credential.",
                max_length=40,
                unique=True,
            ),
        ),
        migrations.AddField(
            model_name="webhooksecret",
            name="name",
            field=models.CharField(
                blank=True,
                help_text="The inbox URL's last part: /inbox/<partner token>/<name>. Default: the "
                "endpoint URL's last path segment.",
                max_length=40,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[a-z0-9][a-z0-9_\\-]{0,39}$",
                        "Use lower-case letters, digits, '_' and '-' (e.g. api, api-gateway).",
                    )
                ],
                verbose_name="inbox name",
            ),
        ),
        migrations.RunPython(fill_inbox_names, migrations.RunPython.noop),
        migrations.AddField(
            model_name="webhooksecret",
            name="profile",
            field=models.CharField(
                choices=[
                    ("playbook", "Playbook (X-Signature: t=…, v1=…)"),
                    ("stripe", "Stripe (Stripe-Signature)"),
                    ("standard", "Standard Webhooks (webhook-id / -timestamp / -signature)"),
                    ("github", "GitHub (X-Hub-Signature-256)"),
                ],
                default="playbook",
                max_length=20,
                verbose_name="signature profile",
            ),
        ),
        migrations.AddField(
            model_name="webhooksecret",
            name="previous_valid_until",
            field=models.DateTimeField(
                blank=True,
                help_text="During a rotation the previous secret is accepted until this time.",
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="webhooksecret",
            constraint=models.UniqueConstraint(
                condition=models.Q(("name", ""), _negated=True),
                fields=("partner", "name"),
                name="webhook_secret_unique_inbox",
            ),
        ),
    ]
