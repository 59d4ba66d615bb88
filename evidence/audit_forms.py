from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet


class AuditFilterForm(forms.Form):
    """The audit trail's filters, from the query string. Dates are whole days in UTC, both
    ends included."""

    partner = forms.CharField(
        required=False,
        max_length=40,
        label="Partner ID",
        widget=forms.TextInput(attrs={"placeholder": "p_001"}),
    )
    actor = forms.CharField(
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": "part of a username"}),
    )
    # An action (run.cancel), or a prefix ending in "." (run.).
    action = forms.CharField(
        required=False,
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": "run.cancel, or run. for all"}),
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filter(self, events: QuerySet) -> QuerySet:
        """``events`` narrowed by the valid filters."""
        data = self.cleaned_data
        if partner := data.get("partner", "").strip():
            # By label, not by join: events of a deleted partner are found too.
            events = events.filter(partner_label=partner)
        if actor := data.get("actor", "").strip():
            events = events.filter(actor_label__icontains=actor)
        if action := data.get("action", "").strip():
            events = (
                events.filter(action__startswith=action)
                if action.endswith(".")
                else events.filter(action=action)
            )
        if start := data.get("date_from"):
            events = events.filter(at__gte=datetime.combine(start, time.min, tzinfo=UTC))
        if end := data.get("date_to"):
            next_day = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
            events = events.filter(at__lt=next_day)
        return events

    def as_record(self) -> dict[str, str]:
        """The filters given, as strings, for the export's own audit event."""
        return {
            name: value.isoformat() if hasattr(value, "isoformat") else str(value)
            for name, value in self.cleaned_data.items()
            if value not in (None, "")
        }
