from __future__ import annotations

from typing import Any

from django import forms

from certification.engine.spec import MAX_SUITE_BYTES
from certification.models import Suite


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
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_SUITE_BYTES:
                raise forms.ValidationError(
                    f"{upload.name} is {upload.size} bytes; the limit is {MAX_SUITE_BYTES}."
                )
            data["entry"] = upload.name
            data["source"] = upload.read().decode("utf-8", errors="replace")
        elif data.get("text", "").strip():
            if len(data["text"].encode()) > MAX_SUITE_BYTES:
                raise forms.ValidationError(f"The text is larger than {MAX_SUITE_BYTES} bytes.")
            data["entry"] = "pasted.yaml"
            data["source"] = data["text"]
        else:
            raise forms.ValidationError("Choose a file or paste the suite.")
        return data


class StartRunForm(forms.Form):
    suite = forms.ModelChoiceField(queryset=Suite.objects.none(), empty_label=None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        latest: dict[str, int] = {}
        for suite in Suite.objects.order_by("name", "-version").only("id", "name"):
            latest.setdefault(suite.name, suite.pk)
        self.fields["suite"].queryset = Suite.objects.filter(pk__in=latest.values())
        self.fields["suite"].label_from_instance = lambda s: f"{s.name} (v{s.version})"


class ScheduleForm(forms.Form):
    suite_name = forms.ChoiceField(label="Suite")
    every_days = forms.IntegerField(label="Every (days)", min_value=1, max_value=3650, initial=30)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = Suite.objects.order_by("name").values_list("name", flat=True).distinct()
        self.fields["suite_name"].choices = [(n, n) for n in names]
