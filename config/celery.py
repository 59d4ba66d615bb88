"""The Celery application: ``celery -A config worker`` starts a worker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("certdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker sweeps for the scenarios of dead workers (certification/sweeper.py).
app.steps["worker"].add("certification.sweeper:Sweeper")

# Celery's Django fixup closes the database connection before and after every task unless this
# is set; one scenario per task would then pay a new PostgreSQL connection each time. Django's
# own CONN_MAX_AGE and health checks still retire stale connections.
app.conf["CELERY_DB_REUSE_MAX"] = 500
