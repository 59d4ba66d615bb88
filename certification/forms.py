from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django import forms
from django.db.models import QuerySet

from certification.engine.spec import LIMITS, SuiteInvalid, check_suite_bytes
from certification.models import RunStatus, Suite


class SuiteUploadForm(forms.Form):
    file = forms.FileField(
        label="Suite file (YAML)",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".yaml,.yml,.json"}),
    )
    text = forms.CharField(
        label="…or paste the YAML",
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
    )

    def clean(self) -> dict[str, Any]:
        """``entry`` and ``source``: the file's name and text, checked as files on disk are
        (size cap, UTF-8), with the same ``file:line:column`` messages."""
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            entry, content = upload.name, upload.read(LIMITS.file_bytes + 1)
        elif data.get("text", "").strip():
            entry, content = "pasted.yaml", data["text"]
        else:
            raise forms.ValidationError("Choose a file or paste the suite.")
        try:
            data["source"] = check_suite_bytes(content, filename=entry)
        except SuiteInvalid as exc:
            raise forms.ValidationError([str(error) for error in exc.errors]) from None
        data["entry"] = entry
        return data


class StartRunForm(forms.Form):
    """The suite to run, from ``suites`` (``access.suites_runnable_for``): a suite outside it,
    posted by id, is a form error like an unknown one."""

    suite = forms.ModelChoiceField(queryset=Suite.objects.none(), empty_label=None)

    def __init__(
        self,
        *args: Any,
        suites: QuerySet[Suite],
        preferred: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        """``preferred``: suite names to offer first (the partner's suites in scope), so the
        default choice is one the partner is being certified with."""
        super().__init__(*args, **kwargs)
        self.fields["suite"].queryset = suites
        # The options from one read of ``suites`` (the partner page shares it with the
        # schedule form); a posted id is still checked against the queryset.
        ordered = sorted(suites, key=lambda s: s.name not in preferred)  # stable: in scope first
        self.fields["suite"].choices = [(s.pk, f"{s.name} (v{s.version})") for s in ordered]


class ScheduleForm(forms.Form):
    suite_name = forms.ChoiceField(label="Suite")
    every_days = forms.IntegerField(label="Every (days)", min_value=1, max_value=3650, initial=30)

    def __init__(self, *args: Any, suites: QuerySet[Suite], **kwargs: Any) -> None:
        """``suites``: those the user may run for the partner (``access.suites_runnable_for``)."""
        super().__init__(*args, **kwargs)
        names = sorted({suite.name for suite in suites})
        self.fields["suite_name"].choices = [(n, n) for n in names]


class RunFilterForm(forms.Form):
    """The runs list's filters; every field optional, dates are UTC days (inclusive)."""

    partner = forms.CharField(required=False, max_length=40, label="Partner ID")
    suite = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *RunStatus.choices[:6]],
        widget=forms.Select(attrs={"aria-label": "Status"}),
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data
