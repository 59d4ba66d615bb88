# The audit log becomes an append-only hash chain (see evidence/audit.py and docs/audit.md):
# events keep their partner's external id (partner_label) and lose the database constraint on
# partner, so that deleting a partner never UPDATEs audit rows; existing events are chained in
# id order; seq becomes required; and on PostgreSQL a trigger refuses UPDATE and DELETE on the
# table from any client. SQLite (the development default) relies on the model and queryset
# guards only: its test database is flushed with DELETE, which such a trigger would refuse.
# PostgreSQL's TRUNCATE (test flushes) fires no row-level trigger and keeps working.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

TRIGGER_SQL = r"""
CREATE OR REPLACE FUNCTION evidence_auditevent_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only'
    USING ERRCODE = 'integrity_constraint_violation',
          DETAIL = format('%s of audit event seq %s refused', TG_OP, OLD.seq);
END $$ LANGUAGE plpgsql;

CREATE TRIGGER evidence_auditevent_append_only
  BEFORE UPDATE OR DELETE ON evidence_auditevent
  FOR EACH ROW EXECUTE FUNCTION evidence_auditevent_append_only();
"""

DROP_TRIGGER_SQL = r"""
DROP TRIGGER IF EXISTS evidence_auditevent_append_only ON evidence_auditevent;
DROP FUNCTION IF EXISTS evidence_auditevent_append_only();
"""


def chain_existing_events(apps, schema_editor):
    # The hash rule itself is evidence.audit's, so that what this writes verifies there.
    from evidence.audit import GENESIS_HASH, chain_hash

    db = schema_editor.connection.alias
    AuditEvent = apps.get_model("evidence", "AuditEvent")
    Partner = apps.get_model("partners", "Partner")
    labels = dict(Partner.objects.using(db).values_list("id", "external_id"))
    prev_hash = GENESIS_HASH
    events = AuditEvent.objects.using(db).order_by("id")
    for seq, event in enumerate(events.iterator(chunk_size=2000), start=1):
        partner_label = labels.get(event.partner_id, "")
        digest = chain_hash(
            seq=seq,
            at=event.at,
            actor_label=event.actor_label,
            action=event.action,
            partner_label=partner_label,
            target=event.target,
            data=event.data,
            prev_hash=prev_hash,
        )
        AuditEvent.objects.using(db).filter(pk=event.pk).update(
            seq=seq, prev_hash=prev_hash, hash=digest, partner_label=partner_label
        )
        prev_hash = digest


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: the function body's format() placeholders are not query parameters.
        schema_editor.execute(TRIGGER_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL, params=None)


class Migration(migrations.Migration):
    # After partners 0004, which scrubs passwords out of audit event data: once the chain and
    # the append-only trigger exist, no migration may rewrite an event.
    dependencies = [
        ("evidence", "0002_evidence_models"),
        ("partners", "0004_move_inline_db_passwords"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={"ordering": ["-seq"]},
        ),
        migrations.AddField(
            model_name="auditevent",
            name="partner_label",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="The partner's external id.",
                max_length=40,
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="partner",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                to="partners.partner",
            ),
        ),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(editable=False, unique=True),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
