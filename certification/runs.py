"""Starting, cancelling and scheduling runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from certification.access import suites_visible_to
from certification.models import (
    RecertificationSchedule,
    Run,
    ScenarioRun,
    Suite,
)
from evidence.audit import audit_record
from partners.access import member_partner_id, sees_all_partners
from partners.models import Endpoint, Partner
from partners.secret_rules import display_url, has_inline_password
from partners.urlguard import check_sandbox_url


class RunInputError(ValueError):
    """Bad input to a run (an endpoint override, a missing endpoint); nothing was created."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _snapshot(
    partner: Partner, overrides: dict[str, str], *, keep_auth: bool
) -> tuple[dict[str, Any], str]:
    endpoints: dict[str, Any] = {}
    default = ""
    for endpoint in Endpoint.objects.filter(partner=partner):
        endpoints[endpoint.name] = {
            "base_url": endpoint.base_url,
            "kind": endpoint.kind,
            "auth_kind": endpoint.auth_kind,
            "auth_config": endpoint.auth_config,
            "writable": endpoint.writable,
            "endpoint_id": str(endpoint.pk),
            "source": "partner",
        }
        if endpoint.is_default:
            default = endpoint.name
    for name, url in overrides.items():
        kind = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "http"
        if has_inline_password(url):
            raise RunInputError(
                f"--endpoint {name}=...: the URL carries a password (user:password@ or "
                "?password=); give it to the endpoint's secret instead (manage.py endpoint_set)"
            )
        try:
            check_sandbox_url(url, kind=kind)
        except Exception as exc:
            messages = getattr(exc, "messages", [str(exc)])
            raise RunInputError(
                f"--endpoint {name}={display_url(url)}: {' '.join(messages)}"
            ) from None
        stored = endpoints.get(name)
        base = {"auth_kind": "none", "auth_config": {}, "writable": False}
        if stored is not None:
            same_origin = _origin(stored["base_url"]) == _origin(url)
            if same_origin or keep_auth:
                base = stored
            else:
                # The stored credentials are for the stored host: never sent to another one
                # unless the caller says so.
                base = {**base, "writable": stored["writable"], "auth_dropped": True}
        endpoints[name] = {**base, "base_url": url, "kind": kind, "source": "override"}
    if not default and overrides:
        default = next(iter(overrides))
    return endpoints, default


def _check_endpoints(
    partner: Partner, suite: Suite, endpoints: dict[str, Any], default: str
) -> None:
    """Refuse, before anything is created, a run whose suite addresses endpoints the partner
    lacks, naming them (rather than failing each step at run time)."""
    from certification.engine.runner import endpoints_needed
    from certification.suites import suite_of

    names, needs_default = endpoints_needed(suite_of(suite))
    missing = sorted(names - set(endpoints))
    have = ", ".join(sorted(endpoints)) or "none"
    if missing:
        raise RunInputError(
            f"{suite.name} v{suite.version} needs endpoint{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}, which {partner.external_id} does not have (its endpoints: "
            f"{have}); add {'them' if len(missing) > 1 else 'it'} on the partner page or with "
            "manage.py endpoint_set"
        )
    if needs_default and not default:
        raise RunInputError(
            f"{suite.name} v{suite.version} has URLs relative to the default endpoint ('/…'), "
            f"but {partner.external_id} has no default endpoint (its endpoints: {have})"
        )


def _check_assigned(partner: Partner, suite: Suite, by: Any) -> None:
    """Refuse a partner's user a suite not assigned to their partner. The views offer no
    other; this holds every other caller to the same rule. Callers that are not users (the
    CLI, the beat schedule) act for the operator."""
    if not getattr(by, "is_authenticated", False) or sees_all_partners(by):
        return
    assigned = suites_visible_to(by).filter(pk=suite.pk).exists()
    if member_partner_id(by) != partner.pk or not assigned:
        raise RunInputError(
            f"{suite.name} is not assigned to {partner.external_id}: a QA lead assigns suites "
            "by opening a certification that names them"
        )


def run_create(
    *,
    partner: Partner,
    suite: Suite,
    by: Any,
    endpoint_overrides: dict[str, str] | None = None,
    keep_auth: bool = False,
    trigger: str = "manual",
) -> Run:
    """Create a queued run with one queued scenario run per scenario of the suite.

    An override that points endpoint NAME at another origin drops NAME's credentials unless
    ``keep_auth`` is set."""
    _check_assigned(partner, suite, by)
    endpoints, default = _snapshot(partner, endpoint_overrides or {}, keep_auth=keep_auth)
    _check_endpoints(partner, suite, endpoints, default)
    scenarios = list(suite.scenarios.order_by("index"))
    run = Run.objects.create(
        partner=partner,
        suite=suite,
        endpoints=endpoints,
        default_endpoint=default,
        trigger=trigger,
        scenarios_total=len(scenarios),
        created_by=by if getattr(by, "is_authenticated", False) else None,
    )
    ScenarioRun.objects.bulk_create(
        ScenarioRun(run=run, scenario=s, index=s.index) for s in scenarios
    )
    audit_record(
        actor=by,
        action="run.create",
        partner=partner,
        target=f"run {run.pk}",
        data={
            "suite": str(suite),
            "endpoints": {n: display_url(e["base_url"]) for n, e in endpoints.items()},
            "trigger": trigger,
        },
    )
    from evidence.services import on_run_created

    on_run_created(run=run, by=by)
    return run


def _enqueue(scenario_run_ids: list[int]) -> None:
    from certification.tasks import run_scenario

    for scenario_run_id in scenario_run_ids:
        run_scenario.delay(scenario_run_id)


def start_run(
    *,
    partner: Partner,
    suite: Suite,
    by: Any,
    endpoint_overrides: dict[str, str] | None = None,
    keep_auth: bool = False,
    trigger: str = "manual",
) -> Run:
    """Create a run and queue one task per scenario once the run is committed."""
    with transaction.atomic():
        run = run_create(
            partner=partner,
            suite=suite,
            by=by,
            endpoint_overrides=endpoint_overrides,
            keep_auth=keep_auth,
            trigger=trigger,
        )
        ids = list(run.scenario_runs.values_list("pk", flat=True))
        transaction.on_commit(lambda: _enqueue(ids))
    return run


def run_cancel(*, run: Run, by: Any) -> Run:
    """Stop queued scenarios and mark the run cancelled; scenarios already running finish."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.is_finished:
            return locked
        now = timezone.now()
        cancelled = ScenarioRun.objects.filter(run=locked, status=ScenarioRun.Status.QUEUED).update(
            status=ScenarioRun.Status.CANCELLED, finished_at=now
        )
        locked.status = Run.Status.CANCELLED
        locked.finished_at = now
        locked.scenarios_done = F("scenarios_done") + cancelled
        locked.save(update_fields=["status", "finished_at", "scenarios_done"])
        locked.refresh_from_db()
        audit_record(actor=by, action="run.cancel", partner=locked.partner, target=f"run {run.pk}")
    return locked


# ----------------------------------------------------------------------------- schedules


@transaction.atomic
def schedule_save(
    *, partner: Partner, suite_name: str, every_days: int, by: Any, first_run_at: Any = None
) -> RecertificationSchedule:
    """Create or change the recertification schedule of a partner and suite."""
    if not Suite.objects.filter(name=suite_name).exists():
        raise RunInputError(f"no stored suite called '{suite_name}'")
    if every_days < 1:
        raise RunInputError("a schedule repeats every 1 day or more")
    if not partner.endpoints.exists():
        raise RunInputError(
            f"{partner.external_id} has no sandbox endpoint yet: add one before scheduling runs"
        )
    schedule, created = RecertificationSchedule.objects.update_or_create(
        partner=partner,
        suite_name=suite_name,
        defaults={
            "every_days": every_days,
            "enabled": True,
            "next_run_at": first_run_at or timezone.now() + timedelta(days=every_days),
            "created_by": by if getattr(by, "is_authenticated", False) else None,
        },
    )
    audit_record(
        actor=by,
        action="schedule.create" if created else "schedule.update",
        partner=partner,
        target=str(schedule),
        data={"every_days": every_days, "next_run_at": schedule.next_run_at},
    )
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: RecertificationSchedule, by: Any) -> None:
    audit_record(actor=by, action="schedule.delete", partner=schedule.partner, target=str(schedule))
    schedule.delete()


def recertifications_start_due() -> list[Run]:
    """Start a run for every enabled schedule that is due, once each: the schedule is moved
    to its next date by a conditional update, so two beat processes cannot both start it."""
    now = timezone.now()
    started = []
    due = RecertificationSchedule.objects.filter(enabled=True, next_run_at__lte=now)
    for schedule in due.select_related("partner"):
        suite = Suite.objects.filter(name=schedule.suite_name).order_by("-version").first()
        with transaction.atomic():
            moved = RecertificationSchedule.objects.filter(
                pk=schedule.pk, next_run_at=schedule.next_run_at
            ).update(next_run_at=now + timedelta(days=schedule.every_days))
            if not moved:
                continue
            if suite is None:
                audit_record(
                    actor="celery beat",
                    action="schedule.skip",
                    partner=schedule.partner,
                    target=str(schedule),
                    data={"reason": "the suite no longer exists"},
                )
                continue
            try:
                run = start_run(
                    partner=schedule.partner, suite=suite, by="celery beat", trigger="schedule"
                )
            except RunInputError as exc:
                audit_record(
                    actor="celery beat",
                    action="schedule.skip",
                    partner=schedule.partner,
                    target=str(schedule),
                    data={"reason": str(exc)},
                )
                continue
            RecertificationSchedule.objects.filter(pk=schedule.pk).update(last_run=run)
            started.append(run)
    return started
