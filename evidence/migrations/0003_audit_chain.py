# Placeholder: chains existing audit events and makes the table append-only (filled in below).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("evidence", "0002_evidence_models")]

    operations = []
