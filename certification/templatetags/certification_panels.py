"""``{% load certification_panels %}``: what certification adds to pages of other apps.

``{% partner_runs partner has_endpoints=… %}`` renders a partner's runs and recertification
schedule on the partner page, so that ``partners`` shows them without importing
``certification``. Its "Run suite" choice offers only the suites the user may run for the
partner (``access.suites_runnable_for``).
"""

from __future__ import annotations

from typing import Any

from django import template

from certification.access import (
    can_schedule,
    can_start_runs,
    runs_visible_to,
    suites_runnable_for,
)
from certification.forms import ScheduleForm, StartRunForm
from certification.models import RecertificationSchedule
from partners.access import sees_all_partners

register = template.Library()


@register.inclusion_tag("certification/_partner_runs.html", takes_context=True)
def partner_runs(context: template.Context, partner: Any, *, has_endpoints: Any) -> dict[str, Any]:
    user = context["request"].user
    suites = suites_runnable_for(user, partner)
    return {
        "partner": partner,
        "endpoints": bool(has_endpoints),
        "runs": runs_visible_to(user).filter(partner=partner).select_related("suite")[:20],
        "can_start_runs": can_start_runs(user),
        "start_form": StartRunForm(suites=suites),
        "has_suites": suites.exists(),
        "sees_all_partners": sees_all_partners(user),
        "schedules": RecertificationSchedule.objects.visible_to(user)
        .filter(partner=partner)
        .select_related("last_run"),
        "can_schedule": can_schedule(user),
        "schedule_form": ScheduleForm(suites=suites),
        "csrf_token": context.get("csrf_token"),
    }
