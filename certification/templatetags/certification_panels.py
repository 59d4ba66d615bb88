"""``{% load certification_panels %}``: what certification adds to pages of other apps.

On the partner page, so that ``partners`` shows them without importing ``certification``:
``{% partner_suites partner %}`` the suites in scope and where each stands;
``{% partner_charts partner %}`` latency, pass rate and error rate over time
(``certification.charts``); ``{% partner_runs partner has_endpoints=… %}`` the run history
with scenario counts and the recertification schedule. The "Run suite" choice offers only the
suites the user may run for the partner (``access.suites_runnable_for``).
"""

from __future__ import annotations

from typing import Any

from django import template

from certification import partner_page
from certification.access import (
    can_schedule,
    can_start_runs,
    suite_names_assigned,
    suites_runnable_for,
)
from certification.forms import ScheduleForm, StartRunForm
from certification.models import RecertificationSchedule
from certification.selectors import run_duration_s, sla_summary
from partners.access import sees_all_partners

register = template.Library()


@register.inclusion_tag("certification/_partner_runs.html", takes_context=True)
def partner_runs(context: template.Context, partner: Any, *, has_endpoints: Any) -> dict[str, Any]:
    user = context["request"].user
    suites = suites_runnable_for(user, partner)
    history, more_runs = partner_page.partner_runs_history(user, partner)
    return {
        "partner": partner,
        "endpoints": bool(has_endpoints),
        "rows": [
            {"run": run, "duration_s": run_duration_s(run), "sla": sla_summary(run.sla_verdicts)}
            for run in history
        ],
        "more_runs": more_runs,
        "can_start_runs": can_start_runs(user),
        "start_form": StartRunForm(suites=suites, preferred=suite_names_assigned(partner.pk)),
        "has_suites": bool(suites),
        "sees_all_partners": sees_all_partners(user),
        "schedules": RecertificationSchedule.objects.visible_to(user)
        .filter(partner=partner)
        .select_related("last_run"),
        "can_schedule": can_schedule(user),
        "schedule_form": ScheduleForm(suites=suites),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("certification/_partner_suites.html")
def partner_suites(partner: Any) -> dict[str, Any]:
    return {"partner": partner, "suites": partner_page.suites_in_scope(partner)}


@register.inclusion_tag("certification/_partner_charts.html", takes_context=True)
def partner_charts(context: template.Context, partner: Any) -> dict[str, Any]:
    charts, runs_drawn = partner_page.charts_for(context["request"].user, partner)
    return {
        "partner": partner,
        "charts": charts,
        "runs_drawn": runs_drawn,
        "chart_runs": partner_page.CHART_RUNS,
    }
