from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from certification.models import (
    RecertificationSchedule,
    Run,
    Scenario,
    ScenarioRun,
    StepResult,
    Suite,
    WorkerHeartbeat,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Results and suite versions are evidence: the admin shows them, it does not edit them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ScenarioInline(admin.TabularInline):
    model = Scenario
    extra = 0
    can_delete = False
    readonly_fields = ["index", "code", "name", "kind", "step_count"]


@admin.register(Suite)
class SuiteAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "created_at", "content_hash"]
    search_fields = ["name"]
    inlines = [ScenarioInline]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["id", "partner", "suite", "status", "trigger", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]


@admin.register(ScenarioRun)
class ScenarioRunAdmin(ReadOnlyAdmin):
    list_display = ["run", "index", "status", "attempts", "claimed_by", "duration_ms"]
    list_filter = ["status"]


@admin.register(StepResult)
class StepResultAdmin(ReadOnlyAdmin):
    list_display = ["scenario_run", "step_index", "iteration", "name", "status"]
    list_filter = ["status"]


@admin.register(RecertificationSchedule)
class RecertificationScheduleAdmin(admin.ModelAdmin):
    list_display = ["partner", "suite_name", "every_days", "next_run_at", "enabled"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "seen_at"]
