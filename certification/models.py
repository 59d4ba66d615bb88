"""Suites, runs and their results.

A ``Suite`` row is one immutable version of a suite's YAML; a ``Run`` executes one suite version
against one partner; each scenario of the suite gets a ``ScenarioRun`` and each executed step a
``StepResult``. Results are written under unique constraints so a redelivered task can never
duplicate them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from partners.models import Partner, PartnerScopedQuerySet


class ImmutableRecordError(Exception):
    """A write to a record that a sign-off has frozen (a run pinned as evidence, its results,
    a signed certification's content, a finished evidence bundle). PostgreSQL refuses the same
    writes with triggers (evidence migration 0004), whatever code issues them."""


class LockGuardQuerySet(PartnerScopedQuerySet):
    """``update()`` and ``delete()`` refuse to touch rows of a locked run.

    ``locked_lookup`` is the path from the row to its run's ``locked_at``."""

    locked_lookup = "locked_at"

    def _refuse_locked(self, verb: str) -> None:
        if self.filter(**{f"{self.locked_lookup}__isnull": False}).exists():
            raise ImmutableRecordError(
                f"cannot {verb} results of a run that is evidence of a signed-off certification"
            )

    def update(self, **kwargs: object) -> int:
        self._refuse_locked("change")
        return super().update(**kwargs)

    def update_open(self, **kwargs: object) -> int:
        """``update()`` without the locked-run check, for the execution path's writes to rows
        its own filter keeps open (queued or running scenarios, their unfinished run): a run is
        locked only once finished, so the check could never refuse them, and it cost a query
        per write. PostgreSQL's triggers still refuse any write to a locked run."""
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._refuse_locked("delete")
        return super().delete()


class LockGuardModel(models.Model):
    """``save()`` and ``delete()`` refuse rows of a locked run (checked in the database, not
    on the possibly stale instance)."""

    class Meta:
        abstract = True

    def save(self, *args: object, **kwargs: object) -> None:
        if self._is_locked():
            raise ImmutableRecordError(
                f"{self._meta.verbose_name} {self.pk} is evidence of a signed-off certification"
            )
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        if self._is_locked():
            raise ImmutableRecordError(
                f"{self._meta.verbose_name} {self.pk} is evidence of a signed-off certification"
            )
        return super().delete(*args, **kwargs)

    def _is_locked(self) -> bool:
        if self._state.adding or self.pk is None:
            return False
        qs = type(self)._default_manager.filter(pk=self.pk)
        return qs.filter(**{f"{qs.locked_lookup}__isnull": False}).exists()


class Suite(models.Model):
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    entry = models.CharField(max_length=300, help_text="The top file of the suite.")
    sources = models.JSONField(help_text="File name -> YAML text, the entry file and its $refs.")
    parsed = models.JSONField(help_text="The parsed suite, for display.")
    content_hash = models.CharField(max_length=64)
    warnings = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="suite_unique_version"),
            models.UniqueConstraint(fields=["name", "content_hash"], name="suite_unique_content"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


# A suite's YAML and parsed form: what pages listing runs or suites need not read back.
SUITE_BODY = ("sources", "parsed")


class Scenario(models.Model):
    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="scenarios")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=300)
    code = models.CharField(max_length=20, blank=True)
    kind = models.CharField(max_length=20, default="main")
    step_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["suite", "index"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "index"], name="scenario_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}".strip()


class RunStatus(models.TextChoices):
    """The life of a run and of each of its scenarios."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    # Scenarios only: a check could not be evaluated. Never passed; the run then fails.
    UNEVALUATED = "unevaluated", "Not evaluated"


FINISHED_STATUSES = (
    RunStatus.PASSED,
    RunStatus.FAILED,
    RunStatus.ERROR,
    RunStatus.CANCELLED,
    RunStatus.UNEVALUATED,
)


class RunQuerySet(LockGuardQuerySet):
    pass


class Run(LockGuardModel):
    Status = RunStatus
    FINISHED = FINISHED_STATUSES

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="runs")
    suite = models.ForeignKey(Suite, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    endpoints = models.JSONField(
        default=dict, help_text="Endpoint snapshot: name -> base URL, auth kind (no secrets)."
    )
    default_endpoint = models.CharField(max_length=40, blank=True)
    trigger = models.CharField(max_length=20, default="manual")
    error = models.TextField(blank=True)
    scenarios_total = models.PositiveIntegerField(default=0)
    scenarios_done = models.PositiveIntegerField(default=0)
    latency = models.JSONField(
        default=dict, blank=True, help_text="Per endpoint: merged successful probe samples."
    )
    sla_verdicts = models.JSONField(default=list, blank=True)
    reasons = models.JSONField(
        default=list, blank=True, help_text="Why a finished run did not pass, one line each."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set when a sign-off pins the run as evidence; the run and its results are then "
        "immutable.",
    )

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running"]) | Q(finished_at__isnull=False),
                name="run_finished_has_time",
            ),
        ]
        indexes = [
            # The runs list and a partner's run history, newest first; the partner's charts.
            models.Index(fields=["-created_at", "-id"], name="run_newest"),
            models.Index(fields=["partner", "-created_at", "-id"], name="run_partner_newest"),
            models.Index(fields=["partner", "-finished_at"], name="run_partner_finished"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.partner.external_id} {self.suite}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class ScenarioRunQuerySet(LockGuardQuerySet):
    partner_lookup = "run__partner"
    locked_lookup = "run__locked_at"


class ScenarioRun(LockGuardModel):
    Status = RunStatus
    FINISHED = FINISHED_STATUSES

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scenario_runs")
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="+")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    objects = ScenarioRunQuerySet.as_manager()

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="scenario_run_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.index} {self.status}"


class StepResultQuerySet(LockGuardQuerySet):
    partner_lookup = "scenario_run__run__partner"
    locked_lookup = "scenario_run__run__locked_at"


class StepResult(LockGuardModel):
    class Status(models.TextChoices):
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        ERROR = "error", "Error"
        UNEVALUATED = "unevaluated", "Not evaluated"

    scenario_run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="steps")
    step_index = models.PositiveIntegerField()
    iteration = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices)
    request = models.JSONField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    timings = models.JSONField(null=True, blank=True)
    assertions = models.JSONField(default=list, blank=True)
    failure = models.JSONField(null=True, blank=True)
    extracted = models.JSONField(default=dict, blank=True)
    data = models.JSONField(null=True, blank=True)
    latency = models.JSONField(null=True, blank=True)
    notes = models.JSONField(default=list, blank=True)
    traffic = models.JSONField(
        default=list, blank=True, help_text="Per match group: the captured requests it selected."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)

    objects = StepResultQuerySet.as_manager()

    class Meta:
        ordering = ["scenario_run", "step_index", "iteration"]
        constraints = [
            models.UniqueConstraint(
                fields=["scenario_run", "step_index", "iteration"], name="step_result_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scenario_run} step {self.step_index} {self.status}"


class LatestRun(models.Model):
    """The latest finished, not cancelled run of each suite for each partner: what the overview
    shows and filters on without scanning every run. Written when a run finishes
    (``certification.standing``); rebuilt from the runs with ``latest_runs_rebuild``."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="latest_runs")
    suite_name = models.CharField(max_length=200)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=RunStatus.choices)
    finished_at = models.DateTimeField()
    scenarios_passed = models.PositiveIntegerField(default=0)
    scenarios_total = models.PositiveIntegerField(default=0)
    sla_missed = models.PositiveIntegerField(
        default=0, help_text="SLA verdicts of the run that are not met (missed or unproven)."
    )

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "suite_name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "suite_name"], name="latest_run_unique"),
        ]
        indexes = [models.Index(fields=["status", "partner"], name="latest_run_status")]

    def __str__(self) -> str:
        return f"{self.partner_id} {self.suite_name}: run {self.run_id} {self.status}"


class RecertificationSchedule(models.Model):
    """Run the latest version of a suite against a partner every ``every_days`` days."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="schedules")
    suite_name = models.CharField(max_length=200)
    every_days = models.PositiveIntegerField()
    next_run_at = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    last_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PartnerScopedQuerySet.as_manager()

    class Meta:
        ordering = ["partner", "suite_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "suite_name"], name="schedule_unique_partner_suite"
            ),
            models.CheckConstraint(condition=Q(every_days__gte=1), name="schedule_every_day_min"),
        ]

    def __str__(self) -> str:
        return f"{self.partner.external_id} {self.suite_name} every {self.every_days} d"


class WorkerHeartbeat(models.Model):
    """Written by a worker when it handles a ``heartbeat`` task: a round trip through the broker."""

    hostname = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()
    nonce = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


from certification.traffic_models import CapturedRequest, InboxEvent  # noqa: E402

__all__ = [
    "CapturedRequest",
    "InboxEvent",
    "LatestRun",
    "RecertificationSchedule",
    "Run",
    "Scenario",
    "ScenarioRun",
    "StepResult",
    "Suite",
    "WorkerHeartbeat",
]
