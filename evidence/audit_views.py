"""The audit trail pages: the list with its filters, and the same events as a CSV download.

Both read events only through ``AuditEvent.objects.visible_to`` (QA leads and auditors see
every event; a partner user only their partner's; anyone else nothing)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from evidence.audit import audit_record, canonical_json, format_at
from evidence.audit_forms import AuditFilterForm
from evidence.models import AuditEvent
from partners import access
from partners.models import Partner

PAGE_SIZE = 50
CSV_COLUMNS = ["seq", "at", "actor", "action", "partner", "target", "data", "prev_hash", "hash"]
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form)
    events = form.filter(AuditEvent.objects.visible_to(request.user)).order_by("-seq")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "evidence/audit_list.html", {"form": form, "page_obj": page})


@login_required
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse:
    """The filtered events in chain order, as of the request: the export's own audit event,
    written before streaming starts, is not in it."""
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _invalid(request, form)
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    events = form.filter(AuditEvent.objects.visible_to(request.user)).filter(seq__lte=head)
    audit_record(
        actor=request.user,
        action="audit.export",
        partner=_export_partner(request.user, form),
        target="audit trail CSV",
        data={"filters": form.as_record(), "through_seq": head},
    )
    response = StreamingHttpResponse(
        _csv_lines(events.order_by("seq")), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
    return response


def _invalid(request: HttpRequest, form: AuditFilterForm) -> HttpResponse:
    return render(request, "evidence/audit_list.html", {"form": form, "page_obj": None}, status=400)


def _export_partner(user: Any, form: AuditFilterForm) -> Partner | None:
    """The partner an export is filed under: a partner user's own partner (so that their
    colleagues see it), else the partner filtered on, if any."""
    member = access.member_partner_id(user)
    if member is not None:
        return Partner.objects.filter(pk=member).first()
    if label := form.cleaned_data.get("partner", "").strip():
        return access.partners_visible_to(user).filter(external_id=label).first()
    return None


class _Echo:
    """A file-like object whose ``write`` returns the line, for streaming ``csv.writer``."""

    def write(self, value: str) -> str:
        return value


def neutralise_cell(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula, quoted with a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_lines(events: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows: Iterable[tuple[Any, ...]] = events.values_list(
        "seq", "at", "actor_label", "action", "partner_label", "target", "data", "prev_hash", "hash"
    ).iterator(chunk_size=2000)
    for seq, at, actor, action, partner, target, data, prev_hash, digest in rows:
        cells = [seq, format_at(at), actor, action, partner, target, canonical_json(data)]
        yield writer.writerow([neutralise_cell(cell) for cell in [*cells, prev_hash, digest]])
