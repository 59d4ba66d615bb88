"""The run page, its live fragments, the comparison of two runs, cancel and export.

The page carries the header, the results and the failing scenarios with their steps; other
scenarios come as summary lines whose steps load when opened, a page of them at a time. The
htmx poll gets the header only (with one status letter per scenario, from which
``static/js/run.js`` re-fetches just the scenarios that changed) and stops once nothing is
queued or running.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from certification import access as run_access
from certification import run_page, runs, selectors
from certification.access import run_for_user, runs_visible_to
from certification.models import Run, ScenarioRun, StepResult
from config.http import redirect_after_post
from evidence.audit import audit_record


def _head_context(request: HttpRequest, run: Run, progress: run_page.Progress) -> dict:
    can_start = run_access.can_start_runs(request.user)
    # Re-run what run_start accepts: the latest version of this suite the user may run.
    rerun = (
        run_access.suites_runnable_for(request.user, run.partner)
        .filter(name=run.suite.name)
        .first()
        if can_start
        else None
    )
    return {
        "run": run,
        "progress": progress,
        "live": progress.live,
        "can_cancel": can_start and not run.is_finished,
        "rerun_suite": rerun,
    }


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page; its htmx poll (target ``run-live``) gets only the header, and the results
    once with the last poll, which stops polling (status 286)."""
    run = run_for_user(request.user, run_id)
    if request.htmx and request.htmx.target == "run-live":
        progress = run_page.run_progress(run)
        context = _head_context(request, run, progress)
        context["final"] = not progress.live
        if context["final"]:
            context.update(_results_context(run))
        response = render(request, "certification/_run_poll.html", context)
        if not progress.live:
            return HttpResponseStopPolling(response.content)
        return response
    scenario_runs = list(run_page.scenario_runs_listed(run))
    progress = run_page.progress_of(run, [(sr.index, sr.status) for sr in scenario_runs])
    groups = run_page.group_scenarios(scenario_runs)
    shown = [sr for group in groups for sr in group.rows]
    run_page.attach_steps(shown, inline=run_page.inline_ids(shown))
    context = {
        **_head_context(request, run, progress),
        "groups": groups,
        **_results_context(run),
    }
    return render(request, "certification/run_detail.html", context)


def _results_context(run: Run) -> dict:
    return {
        "endpoints": run_page.endpoint_latency_rows(run),
        "verdicts": run_page.verdict_rows(run),
        "precision": run_page.PRECISION_TEXT,
    }


def _index(request: HttpRequest, name: str) -> int:
    try:
        value = int(request.GET.get(name, ""))
    except ValueError:
        raise Http404(f"no such {name}") from None
    if value < 0:
        raise Http404(f"no such {name}")
    return value


@login_required
@require_GET
def run_scenario(request: HttpRequest, run_id: int) -> HttpResponse:
    """One scenario of the run (``?index=N``): its whole block, with its steps when it failed;
    or, with ``&part=steps``, its steps only (what opening a scenario loads)."""
    run = run_for_user(request.user, run_id)
    sr = get_object_or_404(
        ScenarioRun.objects.select_related("scenario"), run=run, index=_index(request, "index")
    )
    if request.GET.get("part") == "steps":
        steps = StepResult.objects.filter(scenario_run=sr).order_by("step_index", "iteration")
        context = {"run": run, "sr": sr, "steps": list(steps)}
        return render(request, "certification/_run_steps.html", context)
    failing = [sr.pk] if sr.status in run_page.FAILING else []
    run_page.attach_steps([sr], inline=failing)
    return render(request, "certification/_run_scenario.html", {"run": run, "sr": sr})


@login_required
@require_GET
def run_scenarios(request: HttpRequest, run_id: int) -> HttpResponse:
    """The next page of a group (``?kind=main&offset=100``): scenario summaries, failing ones
    first, and a button for the page after."""
    run = run_for_user(request.user, run_id)
    kind = request.GET.get("kind", "")
    offset = _index(request, "offset")
    group = run.scenario_runs.filter(scenario__kind=kind)
    failing_first = Case(
        When(status__in=list(run_page.FAILING), then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    total = group.count()
    rows = list(
        run_page.scenario_runs_listed(run)
        .filter(scenario__kind=kind)
        .order_by(failing_first, "index")[offset : offset + run_page.PAGE_SIZE]
    )
    run_page.attach_steps(rows, inline=[])
    shown = offset + len(rows)
    return render(
        request,
        "certification/_run_page_rows.html",
        {"run": run, "rows": rows, "kind": kind, "offset": shown, "more": max(total - shown, 0)},
    )


@login_required
@require_GET
def run_compare(request: HttpRequest, run_id: int) -> HttpResponse:
    """This run against the previous finished run of the same partner and suite, or against
    ``?with=<id>`` (both must be visible to the user)."""
    run = run_for_user(request.user, run_id)
    other_id = request.GET.get("with")
    if other_id:
        other = run_for_user(request.user, other_id)
    else:
        other = run_page.previous_run(run, runs_visible_to(request.user))
    comparison = run_page.run_comparison(run=run, other=other) if other else None
    return render(
        request,
        "certification/run_compare.html",
        {"run": run, "other": other, "comparison": comparison},
    )


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_user(request.user, run_id)
    if not run_access.can_start_runs(request.user):
        raise PermissionDenied("Your role cannot cancel runs.")
    runs.run_cancel(run=run, by=request.user)
    url = reverse("certification:run_detail", kwargs={"run_id": run.pk})
    return redirect_after_post(request, url)


@login_required
@require_GET
def run_export(request: HttpRequest, run_id: int, fmt: str) -> HttpResponse:
    run = run_for_user(request.user, run_id)
    if fmt == "json":
        body = json.dumps(selectors.run_as_json(run), indent=2)
        response = HttpResponse(body, content_type="application/json")
    elif fmt == "junit":
        response = HttpResponse(selectors.run_as_junit(run), content_type="application/xml")
    else:
        raise Http404("Unknown export format")
    suffix = "json" if fmt == "json" else "xml"
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.{suffix}"'
    audit_record(
        actor=request.user,
        action="run.export",
        partner=run.partner,
        target=f"run {run.pk}",
        data={"format": fmt},
    )
    return response
