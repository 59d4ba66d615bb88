"""Certification pages, bundles, the go-live answer and the signing-key page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from certification.access import run_for_user
from certification.models import Suite
from config.http import redirect_after_post
from evidence import access, bundles, golive, services
from evidence import review as review_reads
from evidence.audit import audit_record
from evidence.forms import (
    CertificationOpenForm,
    ChecklistForm,
    ReasonForm,
    SignOffForm,
    WaiverDecisionForm,
    WaiverRequestForm,
)
from evidence.models import Certification, EvidenceBundle, SigningKey, Waiver
from partners.access import partner_for_user

EXPIRING_WITHIN = dt.timedelta(days=30)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(f"{m}" for messages_ in exc.message_dict.values() for m in messages_)
    return " ".join(exc.messages)


def _back(request: HttpRequest, certification: Certification) -> HttpResponse:
    url = reverse("evidence:certification_detail", kwargs={"certification_id": certification.pk})
    return redirect_after_post(request, url)


def _act(
    request: HttpRequest, certification: Certification, action: Any, done: str, *, what: str
) -> HttpResponse:
    """Run a certification service; a refusal is shown to the user and audited.

    The refusal's audit event is written here, after the service's transaction has rolled
    back (an event written inside it would roll back with the refused change)."""
    try:
        action()
    except (ValidationError, PermissionDenied) as exc:
        text = _error_text(exc) if isinstance(exc, ValidationError) else str(exc)
        audit_record(
            actor=request.user,
            action=f"{what}.refused",
            partner=certification.partner,
            target=f"{certification.partner.external_id}/{certification.scope}",
            data={"reason": text[:500]},
        )
        if isinstance(exc, PermissionDenied):
            raise
        messages.error(request, text)
    else:
        messages.success(request, done)
    return _back(request, certification)


@login_required
@require_GET
def certification_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    qs = access.certifications_visible_to(request.user).select_related("partner")
    show = request.GET.get("show", "")
    if partner := request.GET.get("partner", "").strip():
        qs = qs.filter(partner__external_id=partner)
    if show == "due":
        qs = qs.filter(status=Certification.Status.EXPIRED) | qs.filter(
            status=Certification.Status.CERTIFIED, valid_until__lte=now + EXPIRING_WITHIN
        )
    elif show in Certification.Status.values:
        qs = qs.filter(status=show)
    rows = qs.order_by("partner__external_id", "scope", "-created_at")[:500]
    return render(
        request,
        "evidence/certification_list.html",
        {
            "rows": rows,
            "show": show,
            "partner": partner,
            "statuses": Certification.Status.choices,
            "now": now,
            "expiring": now + EXPIRING_WITHIN,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def certification_open(request: HttpRequest, partner_id: str) -> HttpResponse:
    partner = partner_for_user(request.user, partner_id)
    if not access.can_open(request.user):
        raise PermissionDenied("Only QA leads can open certifications.")
    suites = sorted(set(Suite.objects.values_list("name", flat=True)))
    slas = [(sla.name, f"{sla.name}: {sla.summary}") for sla in partner.slas.all()]
    form = CertificationOpenForm(request.POST or None, suites=suites, slas=slas)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            certification = services.certification_open(
                partner=partner,
                scope=data["scope"],
                title=data["title"],
                suite_names=data["suite_names"],
                sla_names=data["sla_names"],
                validity_days=data["validity_days"],
                by=request.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"Opened the certification {certification.title}.")
            return redirect("evidence:certification_detail", certification_id=certification.pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "evidence/certification_open.html",
        {"partner": partner, "form": form},
        status=status,
    )


@login_required
@require_GET
def certification_detail(request: HttpRequest, certification_id: str) -> HttpResponse:
    certification = access.certification_for_user(request.user, certification_id)
    review = review_reads.certification_review(certification)
    user = request.user
    bundle = certification.bundles.order_by("-requested_at").first()
    return render(
        request,
        "evidence/certification_detail.html",
        {
            "certification": certification,
            "partner": certification.partner,
            "review": review,
            "checklist_items": [i for i in review.items if i.kind == "checklist"],
            "evidence_items": [i for i in review.items if i.kind != "checklist"],
            "waivers": certification.waivers.select_related("requested_by", "decided_by"),
            "bundle": bundle,
            "today": review_reads.today(),
            "default_waiver_end": review_reads.today() + dt.timedelta(days=30),
            "can_review": access.can_review(user) and certification.status == "open",
            "can_request_waiver": access.can_request_waiver(user)
            and certification.status == "open",
            "can_approve_waiver": access.can_approve_waiver(user)
            and certification.status == "open",
            "can_sign_off": access.can_sign_off(user) and certification.status == "open",
            "can_suspend": access.can_suspend(user) and certification.status == "certified",
            "can_withdraw": access.can_open(user) and certification.status == "open",
            "can_confirm": access.can_confirm(user, certification)
            and certification.status in ("open", "certified")
            and not certification.partner_confirmed_at,
            "can_build": access.can_build_bundles(user),
            "checklist_states": ChecklistForm.base_fields["state"].choices,
            "go_live_url": request.build_absolute_uri(
                reverse(
                    "evidence:go_live",
                    kwargs={
                        "partner_id": certification.partner.external_id,
                        "scope": certification.scope,
                    },
                )  # fmt: skip
            ),
        },
    )


def _certification_for_post(request: HttpRequest, certification_id: str) -> Certification:
    return access.certification_for_user(request.user, certification_id)


@login_required
@require_POST
def checklist_set(request: HttpRequest, certification_id: str, key: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    item = get_object_or_404(certification.checklist, key=key)
    form = ChecklistForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose met, not applicable or open.")
        return _back(request, certification)
    return _act(
        request,
        certification,
        lambda: services.checklist_set(
            item=item,
            state=form.cleaned_data["state"],
            note=form.cleaned_data["note"],
            by=request.user,
        ),  # fmt: skip
        f"{item.label}: {form.cleaned_data['state'].replace('_', ' ')}.",
        what="checklist.set",
    )


@login_required
@require_POST
def waiver_request(request: HttpRequest, certification_id: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    form = WaiverRequestForm(request.POST)
    if not form.is_valid():
        labels = {"item_kind": "Item", "item_key": "Item", "reason": "Reason", "ends_on": "Ends on"}
        messages.error(
            request,
            "The waiver was not requested: "
            + "; ".join(f"{labels.get(k, k)}: {' '.join(v)}" for k, v in form.errors.items()),
        )
        return _back(request, certification)
    data = form.cleaned_data
    return _act(
        request,
        certification,
        lambda: services.waiver_request(
            certification=certification,
            item_kind=data["item_kind"],
            item_key=data["item_key"],
            reason=data["reason"],
            ends_on=data["ends_on"],
            by=request.user,
        ),
        "Waiver requested; another QA lead must approve it.",
        what="waiver.request",
    )


@login_required
@require_POST
def waiver_decide(request: HttpRequest, certification_id: str, waiver_id: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    waiver = get_object_or_404(
        Waiver, certification=certification, pk=access.uuid_or_404(waiver_id, "waiver")
    )
    form = WaiverDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or reject.")
        return _back(request, certification)
    approve = form.cleaned_data["decision"] == "approve"
    return _act(
        request,
        certification,
        lambda: services.waiver_decide(
            waiver=waiver, approve=approve, by=request.user, note=form.cleaned_data["note"]
        ),
        f"Waiver {'approved' if approve else 'rejected'}.",
        what="waiver.decide",
    )


@login_required
@require_POST
def sign_off(request: HttpRequest, certification_id: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    form = SignOffForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    return _act(
        request,
        certification,
        lambda: services.certification_sign_off(
            certification=certification, by=request.user, note=note
        ),
        "Signed off. The evidence bundle is being built.",
        what="certification.sign_off",
    )


@login_required
@require_POST
def confirm(request: HttpRequest, certification_id: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    return _act(
        request,
        certification,
        lambda: services.certification_confirm(certification=certification, by=request.user),
        "Confirmed for the partner.",
        what="certification.confirm",
    )


def _with_reason(
    request: HttpRequest, certification_id: str, service: Any, done: str, what: str
) -> HttpResponse:
    """A lifecycle action that takes a reason (suspend, withdraw); the service refuses an
    empty one."""
    certification = _certification_for_post(request, certification_id)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _act(
        request,
        certification,
        lambda: service(certification=certification, by=request.user, reason=reason),
        done,
        what=what,
    )


@login_required
@require_POST
def suspend(request: HttpRequest, certification_id: str) -> HttpResponse:
    return _with_reason(
        request, certification_id, services.certification_suspend, "Suspended.",
        "certification.suspend",
    )  # fmt: skip


@login_required
@require_POST
def withdraw(request: HttpRequest, certification_id: str) -> HttpResponse:
    return _with_reason(
        request, certification_id, services.certification_withdraw, "Withdrawn.",
        "certification.withdraw",
    )  # fmt: skip


def _bundle_fragment(
    request: HttpRequest, bundle: EvidenceBundle | None, **extra: Any
) -> HttpResponse:
    response = render(request, "evidence/_bundle.html", {"bundle": bundle, **extra})
    if request.htmx and bundle is not None and bundle.status in ("ready", "failed"):
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
@require_POST
def certification_bundle(request: HttpRequest, certification_id: str) -> HttpResponse:
    certification = _certification_for_post(request, certification_id)
    if not access.can_build_bundles(request.user):
        raise PermissionDenied("Your role cannot build evidence bundles.")
    bundle = bundles.bundle_request(certification=certification, by=request.user)
    if request.htmx:
        return _bundle_fragment(request, bundle)
    return _back(request, certification)


@login_required
@require_POST
def run_bundle(request: HttpRequest, run_id: int) -> HttpResponse:
    run = run_for_user(request.user, run_id)
    if not access.can_build_bundles(request.user):
        raise PermissionDenied("Your role cannot build evidence bundles.")
    try:
        bundle = bundles.bundle_request(run=run, by=request.user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect_after_post(request, reverse("certification:run_detail", args=[run.pk]))
    if request.htmx:
        return _bundle_fragment(request, bundle)
    return redirect_after_post(request, reverse("certification:run_detail", args=[run.pk]))


@login_required
@require_GET
def bundle_status(request: HttpRequest, bundle_id: str) -> HttpResponse:
    bundle = access.bundle_for_user(request.user, bundle_id)
    return _bundle_fragment(request, bundle)


@login_required
@require_GET
def bundle_download(request: HttpRequest, bundle_id: str) -> HttpResponse:
    bundle = access.bundle_for_user(request.user, bundle_id)
    if bundle.status != EvidenceBundle.Status.READY:
        raise Http404("This bundle is not ready.")
    try:
        handle = bundles.bundle_open(bundle, by=request.user)
    except FileNotFoundError:
        raise Http404("The bundle file is missing from the evidence storage.") from None
    response = FileResponse(
        handle, as_attachment=True, filename=bundle.download_name, content_type="application/zip"
    )
    response["X-Content-SHA256"] = bundle.sha256
    return response


def _answer(partner_id: str, scope: str) -> dict[str, Any]:
    from partners.models import Partner

    partner = Partner.objects.filter(external_id=partner_id).first()
    if partner is None:
        return golive.unknown_answer(partner_id, scope)
    return golive.go_live_answer(partner, scope)


@never_cache
@require_GET
def go_live(request: HttpRequest, partner_id: str, scope: str) -> JsonResponse:
    """Public on purpose (deploy pipelines ask it): says only whether the scope is certified,
    when, until when, which waivers are in force (items and end dates, not reasons) and the
    bundle hash. Unknown partners and scopes get the same JSON shape with status 404."""
    answer = _answer(partner_id, scope)
    return JsonResponse(answer, status=200 if answer["certification"] else 404)


@never_cache
@require_GET
def go_live_badge(request: HttpRequest, partner_id: str, scope: str) -> HttpResponse:
    response = HttpResponse(
        golive.badge_svg(_answer(partner_id, scope)), content_type="image/svg+xml"
    )
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


@require_GET
def signing_keys(request: HttpRequest) -> HttpResponse:
    """Public: the key that signs bundles now, and every key that signed one before."""
    from evidence import signing

    current_pem = signing.public_key_pem()
    return render(
        request,
        "evidence/signing_keys.html",
        {
            "current_pem": current_pem,
            "current_fingerprint": signing.fingerprint(current_pem),
            "keys": SigningKey.objects.order_by("-first_used_at"),
        },
    )
