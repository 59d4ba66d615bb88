from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from evidence.models.certification import SCOPE_VALIDATOR, ChecklistItem, Waiver


class CertificationOpenForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="What is certified, e.g. Orders API v1.")
    scope = forms.CharField(
        max_length=60,
        validators=[SCOPE_VALIDATOR],
        help_text="A short id used in the go-live URL and badge, e.g. orders-api-v1.",
    )
    suite_names = forms.MultipleChoiceField(
        label="Suites in scope", widget=forms.CheckboxSelectMultiple
    )
    sla_names = forms.MultipleChoiceField(
        label="SLAs in scope",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every SLA of the partner.",
    )
    validity_days = forms.IntegerField(min_value=1, max_value=3 * 365, initial=365)

    def __init__(self, *args: Any, suites: list[str], slas: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["suite_names"].choices = [(name, name) for name in suites]
        self.fields["sla_names"].choices = slas


class ChecklistForm(forms.Form):
    state = forms.ChoiceField(choices=ChecklistItem.State.choices)
    note = forms.CharField(required=False, max_length=2000)


class WaiverRequestForm(forms.Form):
    item_kind = forms.ChoiceField(choices=Waiver.ItemKind.choices, widget=forms.HiddenInput)
    item_key = forms.CharField(max_length=300, widget=forms.HiddenInput)
    reason = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))
    ends_on = forms.DateField(
        label="Ends on", widget=forms.DateInput(attrs={"type": "date"}), help_text="Inclusive."
    )

    def clean_ends_on(self) -> dt.date:
        return self.cleaned_data["ends_on"]


class WaiverDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    note = forms.CharField(required=False, max_length=2000)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=4000)


class SignOffForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
    )
