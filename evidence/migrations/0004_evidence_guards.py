# Immutability after sign-off, enforced by PostgreSQL whatever code (or psql session) writes:
# a locked run, its scenario runs and step results; a signed certification's content, its
# checklist, waivers (except their expiry) and pinned runs; a finished evidence bundle.
# SQLite (the development default) relies on the model and queryset guards only: its test
# database is flushed with DELETE, which such triggers would refuse.

from django.db import migrations

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION certdash_run_guard() RETURNS trigger AS $$
BEGIN
  IF OLD.locked_at IS NOT NULL THEN
    RAISE EXCEPTION 'run % is evidence of a signed-off certification and cannot be changed',
      OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION certdash_run_locked(run bigint) RETURNS boolean AS $$
  SELECT EXISTS (SELECT 1 FROM certification_run WHERE id = run AND locked_at IS NOT NULL)
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION certdash_scenariorun_guard() RETURNS trigger AS $$
BEGIN
  IF (TG_OP <> 'INSERT' AND certdash_run_locked(OLD.run_id))
     OR (TG_OP <> 'DELETE' AND certdash_run_locked(NEW.run_id)) THEN
    RAISE EXCEPTION 'results of a run that is evidence of a signed-off certification cannot be changed'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION certdash_scenariorun_locked(sr bigint) RETURNS boolean AS $$
  SELECT EXISTS (
    SELECT 1 FROM certification_scenariorun s JOIN certification_run r ON r.id = s.run_id
    WHERE s.id = sr AND r.locked_at IS NOT NULL)
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION certdash_stepresult_guard() RETURNS trigger AS $$
BEGIN
  IF (TG_OP <> 'INSERT' AND certdash_scenariorun_locked(OLD.scenario_run_id))
     OR (TG_OP <> 'DELETE' AND certdash_scenariorun_locked(NEW.scenario_run_id)) THEN
    RAISE EXCEPTION 'results of a run that is evidence of a signed-off certification cannot be changed'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION certdash_certification_guard() RETURNS trigger AS $$
BEGIN
  IF OLD.signed_off_at IS NULL THEN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'certification % is signed off and cannot be deleted', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF ROW(NEW.id, NEW.partner_id, NEW.scope, NEW.title, NEW.suite_names, NEW.sla_names,
         NEW.validity_days, NEW.created_by_id, NEW.created_at, NEW.signed_off_by_id,
         NEW.signed_off_role, NEW.signed_off_at, NEW.signoff_note, NEW.valid_until)
     IS DISTINCT FROM
     ROW(OLD.id, OLD.partner_id, OLD.scope, OLD.title, OLD.suite_names, OLD.sla_names,
         OLD.validity_days, OLD.created_by_id, OLD.created_at, OLD.signed_off_by_id,
         OLD.signed_off_role, OLD.signed_off_at, OLD.signoff_note, OLD.valid_until)
     OR (OLD.bundle_sha256 <> '' AND NEW.bundle_sha256 IS DISTINCT FROM OLD.bundle_sha256)
     OR (OLD.partner_confirmed_at IS NOT NULL
         AND ROW(NEW.partner_confirmed_by_id, NEW.partner_confirmed_at)
             IS DISTINCT FROM ROW(OLD.partner_confirmed_by_id, OLD.partner_confirmed_at)) THEN
    RAISE EXCEPTION 'certification % is signed off; only its lifecycle status may change', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION certdash_certification_signed(cert uuid) RETURNS boolean AS $$
  SELECT EXISTS (
    SELECT 1 FROM evidence_certification WHERE id = cert AND signed_off_at IS NOT NULL)
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION certdash_certification_part_guard() RETURNS trigger AS $$
BEGIN
  IF (TG_OP <> 'INSERT' AND certdash_certification_signed(OLD.certification_id))
     OR (TG_OP <> 'DELETE' AND certdash_certification_signed(NEW.certification_id)) THEN
    -- Through jsonb: only the waiver table has a status column, and PL/pgSQL does not
    -- short-circuit field references on the other tables.
    IF TG_TABLE_NAME = 'evidence_waiver' AND TG_OP = 'UPDATE' THEN
      IF to_jsonb(OLD) ->> 'status' = 'approved' AND to_jsonb(NEW) ->> 'status' = 'expired'
         AND (to_jsonb(NEW) - 'status') = (to_jsonb(OLD) - 'status') THEN
        RETURN NEW;
      END IF;
    END IF;
    RAISE EXCEPTION '% of a signed-off certification cannot be changed', TG_TABLE_NAME
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION certdash_bundle_guard() RETURNS trigger AS $$
BEGIN
  IF OLD.status = 'ready' THEN
    RAISE EXCEPTION 'evidence bundle % is finished and cannot be changed', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
"""

TRIGGERS = [
    ("certification_run", "certdash_run_guard", "UPDATE OR DELETE"),
    ("certification_scenariorun", "certdash_scenariorun_guard", "INSERT OR UPDATE OR DELETE"),
    ("certification_stepresult", "certdash_stepresult_guard", "INSERT OR UPDATE OR DELETE"),
    ("evidence_certification", "certdash_certification_guard", "UPDATE OR DELETE"),
    (
        "evidence_certificationrun",
        "certdash_certification_part_guard",
        "INSERT OR UPDATE OR DELETE",
    ),
    ("evidence_checklistitem", "certdash_certification_part_guard", "INSERT OR UPDATE OR DELETE"),
    ("evidence_waiver", "certdash_certification_part_guard", "INSERT OR UPDATE OR DELETE"),
    ("evidence_evidencebundle", "certdash_bundle_guard", "UPDATE OR DELETE"),
]

DROP_FUNCTIONS = [
    "certdash_run_guard()",
    "certdash_scenariorun_guard()",
    "certdash_stepresult_guard()",
    "certdash_certification_guard()",
    "certdash_certification_part_guard()",
    "certdash_bundle_guard()",
    "certdash_run_locked(bigint)",
    "certdash_scenariorun_locked(bigint)",
    "certdash_certification_signed(uuid)",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, params=None)  # None: '%' in RAISE is not a placeholder
    for table, function, events in TRIGGERS:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, _, _ in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
    for function in DROP_FUNCTIONS:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}")


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0003_audit_chain"),
        ("certification", "0003_run_locked_at"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="certification",
            options={
                "ordering": ["partner", "scope", "-created_at"],
                "permissions": [
                    ("sign_off_certification", "Can sign off a certification"),
                    ("suspend_certification", "Can suspend a certification"),
                    ("confirm_certification", "Can confirm a certification for the partner"),
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="waiver",
            options={
                "ordering": ["certification", "item_kind", "item_key", "-requested_at"],
                "permissions": [("approve_waiver", "Can approve or reject a waiver")],
            },
        ),
        migrations.RunPython(create, drop),
    ]
