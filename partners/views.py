from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from certification.engine.auth_kinds import kinds_for
from config.http import redirect_after_post
from partners import access, crypto, endpoint_keys, services
from partners.forms import EndpointForm, RegistryUploadForm
from partners.models import Endpoint, Partner
from partners.registry import registry_import, registry_parse, registry_preview
from partners.registry_uploads import (
    UploadGone,
    registry_upload_discard,
    registry_upload_hold,
    registry_upload_take,
)
from partners.secret_rules import display_url


@login_required
def partner_list(request: HttpRequest) -> HttpResponse:
    """The partner list is the overview; a partner's user has one partner and lands on its
    page. The query string (search, filters) carries over, so old links keep working."""
    if (member_of := access.member_partner_id(request.user)) is not None:
        external_id = Partner.objects.values_list("external_id", flat=True).get(pk=member_of)
        return redirect("partners:detail", partner_id=external_id)
    url = reverse("overview")
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


@login_required
def partner_detail(request: HttpRequest, partner_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    endpoints = list(Endpoint.objects.visible_to(request.user).filter(partner=partner))
    for endpoint in endpoints:
        try:
            endpoint.secret_names = sorted(services.endpoint_secret_names(endpoint))
        except crypto.SecretDecryptionError as exc:
            endpoint.secret_names, endpoint.secret_error = [], str(exc)
        endpoint.config_items = endpoint_keys.config_display(endpoint.auth_config)
    context = {
        "partner": partner,
        "slas": partner.slas.all(),
        "endpoints": endpoints,
        "webhook_secrets": partner.webhook_secrets.select_related("partner"),
        "can_manage_endpoints": access.can_manage_endpoints(request.user),
    }
    return render(request, "partners/partner_detail.html", context)


def _require_endpoint_manager(request: HttpRequest) -> None:
    if not access.can_manage_endpoints(request.user):
        raise PermissionDenied("Your role cannot change endpoints.")


def _endpoint_form_page(
    request: HttpRequest, partner: Partner, endpoint: Endpoint | None
) -> HttpResponse:
    stored: set[str] = set()
    secret_error = ""
    if endpoint is not None:
        try:
            stored = services.endpoint_secret_names(endpoint)
        except crypto.SecretDecryptionError as exc:
            secret_error = str(exc)
    if request.method == "POST":
        form = EndpointForm(request.POST, stored_secrets=stored)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.endpoint_save(
                    partner=partner,
                    by=request.user,
                    endpoint=endpoint,
                    name=data["name"],
                    kind=data["kind"],
                    writable=data["writable"],
                    base_url=data["base_url"],
                    is_default=data["is_default"],
                    auth_kind=data["auth_kind"],
                    auth_config=form.auth_config(),
                    new_secrets=form.new_secrets(),
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                messages.success(request, f"Endpoint {saved.name} saved.")
                return redirect("partners:detail", partner_id=partner.external_id)
    elif endpoint is not None:
        initial = {
            "name": endpoint.name,
            "kind": endpoint.kind,
            "writable": endpoint.writable,
            # A password stored before URLs had to be free of one is not shown; saving the
            # masked URL is refused and says where the password goes.
            "base_url": display_url(endpoint.base_url),
            "is_default": endpoint.is_default,
            "auth_kind": endpoint.auth_kind,
            **endpoint.auth_config,
        }
        form = EndpointForm(initial=initial, stored_secrets=stored)
    else:
        has_default = partner.endpoints.filter(is_default=True).exists()
        form = EndpointForm(initial={"is_default": not has_default}, stored_secrets=stored)
    context = {
        "partner": partner,
        "endpoint": endpoint,
        "form": form,
        "secret_error": secret_error,
        "auth_kinds_for": {kind: kinds_for(kind) for kind in Endpoint.Kind.values},
    }
    return render(request, "partners/endpoint_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_create(request: HttpRequest, partner_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    _require_endpoint_manager(request)
    return _endpoint_form_page(request, partner, None)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, partner_id: str, endpoint_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    endpoint = access.endpoint_for_user(request.user, partner, endpoint_id)
    _require_endpoint_manager(request)
    return _endpoint_form_page(request, partner, endpoint)


@login_required
@require_POST
def endpoint_delete(request: HttpRequest, partner_id: str, endpoint_id: str) -> HttpResponse:
    partner = access.partner_for_user(request.user, partner_id)
    endpoint = access.endpoint_for_user(request.user, partner, endpoint_id)
    _require_endpoint_manager(request)
    services.endpoint_delete(endpoint=endpoint, by=request.user)
    messages.success(request, f"Endpoint {endpoint.name} deleted.")
    url = reverse("partners:detail", kwargs={"partner_id": partner.external_id})
    return redirect_after_post(request, url)


def _require_importer(request: HttpRequest) -> None:
    if not access.can_import_registry(request.user):
        raise PermissionDenied("Only QA leads can import the registry.")


@login_required
@require_http_methods(["GET", "POST"])
def registry_import_upload(request: HttpRequest) -> HttpResponse:
    """Upload CSVs and see every error, or a preview of the changes to confirm."""
    _require_importer(request)
    max_bytes = settings.REGISTRY_UPLOAD_MAX_BYTES
    context: dict[str, object] = {}
    if request.method == "POST":
        form = RegistryUploadForm(request.POST, request.FILES, max_bytes=max_bytes)
        if form.is_valid():
            files = form.cleaned_data["files"]
            plan = registry_parse(files)
            context["plan"] = plan
            if not plan.errors:
                context["changes"] = registry_preview(plan)
                context["token"] = registry_upload_hold(files=files, by=request.user)
    else:
        form = RegistryUploadForm(max_bytes=max_bytes)
    context["form"] = form
    status = 400 if context.get("plan") and context["plan"].errors else 200
    return render(request, "partners/registry_import.html", context, status=status)


@login_required
@require_POST
def registry_import_confirm(request: HttpRequest) -> HttpResponse:
    _require_importer(request)
    try:
        files = registry_upload_take(token=request.POST.get("token", ""), by=request.user)
    except UploadGone as exc:
        messages.error(request, str(exc))
        return redirect("partners:registry_import")
    plan = registry_parse(files)
    if plan.errors:
        # The database changed since the preview (e.g. a partner was deleted).
        messages.error(request, "The files no longer import cleanly; upload them again.")
        return redirect("partners:registry_import")
    changes = registry_import(plan=plan, by=request.user)
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
    messages.success(
        request,
        f"Registry imported: {counts['create']} created, {counts['update']} updated, "
        f"{counts['delete']} deleted.",
    )
    return redirect("partners:list")


@login_required
@require_POST
def registry_import_cancel(request: HttpRequest) -> HttpResponse:
    _require_importer(request)
    if registry_upload_discard(token=request.POST.get("token", ""), by=request.user):
        messages.info(request, "Import cancelled; the uploaded files were deleted.")
    return redirect("partners:registry_import")
