"""The overview page (the landing page of QA leads and auditors)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from evidence import overview
from partners import access
from partners.models import Partner


class OverviewFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search", max_length=200)
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Partner.Status.choices]
    )
    mode = forms.ChoiceField(required=False, choices=[("", "Any mode"), *Partner.Mode.choices])
    failing = forms.BooleanField(required=False, label="Failing runs")
    sla_failing = forms.BooleanField(required=False, label="SLA not met")
    expiring = forms.BooleanField(
        required=False, label=f"Expiring within {overview.EXPIRING_DAYS} days"
    )
    sort = forms.ChoiceField(
        required=False, choices=[(key, label) for key, (label, _) in overview.SORTS.items()]
    )

    def filters(self) -> overview.Filters:
        """The valid filters; a bad value is shown on the form and ignored, the rest apply."""
        if not self.is_bound:
            return overview.Filters()
        self.is_valid()
        data: dict[str, Any] = self.cleaned_data
        return overview.Filters(
            q=data.get("q") or "",
            status=data.get("status") or "",
            mode=data.get("mode") or "",
            failing=bool(data.get("failing")),
            sla_failing=bool(data.get("sla_failing")),
            expiring=bool(data.get("expiring")),
            sort=data.get("sort") or "partner",
        )


@login_required
def overview_page(request: HttpRequest) -> HttpResponse:
    if (member_of := access.member_partner_id(request.user)) is not None:
        external_id = Partner.objects.values_list("external_id", flat=True).get(pk=member_of)
        return redirect("partners:detail", partner_id=external_id)
    now = timezone.now()
    form = OverviewFilterForm(request.GET or None)
    visible = access.partners_visible_to(request.user)
    partners = overview.overview_partners(visible, form.filters(), now=now)
    page = Paginator(overview.with_standings(partners), overview.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for partner in page.object_list:
        for standing in partner.standings:
            standing.chips = overview.sla_chips(standing.run.sla_verdicts)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "counts": overview.overview_counts(visible, now=now),
        "query": query.urlencode(),
        "expiring_days": overview.EXPIRING_DAYS,
    }
    template = "evidence/overview.html"
    if request.htmx and request.htmx.target == "overview-table":
        template += "#overview-table"
    return render(request, template, context)
