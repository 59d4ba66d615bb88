from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from certification import access as run_access
from certification import runs, selectors, suites
from certification.access import runs_visible_to
from certification.engine.spec import SuiteInvalid
from certification.forms import RunFilterForm, ScheduleForm, StartRunForm, SuiteUploadForm
from certification.models import RecertificationSchedule
from config.http import redirect_after_post
from partners import access


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database answers. Says nothing else about the system."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


@login_required
def suite_list(request: HttpRequest) -> HttpResponse:
    """The suites the user may see (a partner's user: those assigned to their partner)."""
    visible = run_access.suites_visible_to(request.user)
    versions = dict(
        visible.values("name").annotate(n=Count("pk")).values_list("name", "n").order_by()
    )
    rows = [
        (suite, versions[suite.name])
        for suite in run_access.latest_versions(visible).order_by("name")
    ]
    member_of = None
    if not access.sees_all_partners(request.user):
        member_of = access.partners_visible_to(request.user).first()
    return render(
        request,
        "certification/suite_list.html",
        {
            "rows": rows,
            "can_upload": run_access.can_upload_suites(request.user),
            "member_of": member_of,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def suite_upload(request: HttpRequest) -> HttpResponse:
    """Validate (the same validator as ``manage.py validate_suite``) and store a suite."""
    if not run_access.can_upload_suites(request.user):
        raise PermissionDenied("Only QA leads can add suites.")
    errors: list[str] = []
    form = SuiteUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        entry, source = form.cleaned_data["entry"], form.cleaned_data["source"]
        try:
            suite, created = suites.suite_store(
                entry=entry, sources={entry: source}, by=request.user
            )
        except SuiteInvalid as exc:
            errors = [str(e) for e in exc.errors]
        else:
            if created:
                messages.success(request, f"Stored {suite.name} version {suite.version}.")
            else:
                messages.info(request, f"{suite.name} v{suite.version} already has this content.")
            return redirect("certification:suite_detail", suite_id=suite.pk)
    status = 400 if errors or form.errors else 200
    return render(
        request, "certification/suite_upload.html", {"form": form, "errors": errors}, status=status
    )


@login_required
def suite_detail(request: HttpRequest, suite_id: int) -> HttpResponse:
    suite = run_access.suite_for_user(request.user, suite_id)
    versions = run_access.suites_visible_to(request.user).filter(name=suite.name)
    versions = versions.order_by("-version")
    return render(
        request,
        "certification/suite_detail.html",
        {
            "suite": suite,
            "versions": versions,
            "scenarios": suite.scenarios.all(),
            "source": suite.sources.get(suite.entry, ""),
        },
    )


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """Runs the user may see, newest first, filtered and paginated; the URL keeps the filters."""
    form = RunFilterForm(request.GET or None)
    runs = runs_visible_to(request.user)
    if form.is_bound and form.is_valid():
        runs = selectors.runs_filtered(runs, form.cleaned_data)
    elif form.is_bound:
        runs = runs.none()
    page = Paginator(
        selectors.run_list_rows(runs).order_by("-created_at", "-id"), selectors.RUN_LIST_PAGE_SIZE
    ).get_page(request.GET.get("page"))
    page.object_list = selectors.scenario_counts_attach(list(page.object_list))
    now = timezone.now()
    rows = [
        {
            "run": run,
            "duration_s": selectors.run_duration_s(run, now=now),
            "sla": selectors.sla_summary(run.sla_verdicts),
        }
        for run in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "certification/run_list.html",
        {"form": form, "page": page, "rows": rows, "query": query.urlencode()},
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@require_POST
def run_start(request: HttpRequest, partner_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    if not run_access.can_start_runs(request.user):
        raise PermissionDenied("Your role cannot start runs.")
    form = StartRunForm(request.POST, suites=run_access.suites_runnable_for(request.user, partner))
    if not form.is_valid():
        # An unassigned suite is refused as an unknown one: partner users never learn of it.
        messages.error(request, "Choose a suite to run.")
        return redirect("partners:detail", partner_id=partner.external_id)
    try:
        run = runs.start_run(
            partner=partner, suite=form.cleaned_data["suite"], by=request.user, trigger="web"
        )
    except runs.RunInputError as exc:
        messages.error(request, str(exc))
        return redirect("partners:detail", partner_id=partner.external_id)
    url = reverse("certification:run_detail", kwargs={"run_id": run.pk})
    return redirect_after_post(request, url)


@login_required
@require_POST
def schedule_create(request: HttpRequest, partner_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    if not run_access.can_schedule(request.user):
        raise PermissionDenied("Only QA leads can schedule recertification.")
    form = ScheduleForm(request.POST, suites=run_access.suites_runnable_for(request.user, partner))
    if form.is_valid():
        try:
            schedule = runs.schedule_save(
                partner=partner,
                suite_name=form.cleaned_data["suite_name"],
                every_days=form.cleaned_data["every_days"],
                by=request.user,
            )
        except runs.RunInputError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"{schedule.suite_name} runs every {schedule.every_days} "
                f"day{pluralize(schedule.every_days)}; next on "
                f"{schedule.next_run_at:%Y-%m-%d %H:%M} UTC.",
            )
    else:
        messages.error(request, "Choose a suite and a number of days from 1 to 3650.")
    return redirect("partners:detail", partner_id=partner.external_id)


@login_required
@require_POST
def schedule_delete(request: HttpRequest, partner_id: str, schedule_id: int) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    schedule = get_object_or_404(
        RecertificationSchedule.objects.visible_to(request.user), partner=partner, pk=schedule_id
    )
    if not run_access.can_schedule(request.user):
        raise PermissionDenied("Only QA leads can change schedules.")
    runs.schedule_delete(schedule=schedule, by=request.user)
    messages.success(request, f"Stopped recertifying with {schedule.suite_name}.")
    return redirect("partners:detail", partner_id=partner.external_id)
