from __future__ import annotations

from typing import Any

from django import forms

from certification.engine.auth_kinds import ALL_CONFIG_FIELDS, ALL_SECRET_FIELDS, CHOICES, SCHEMES
from partners.models import NAME_VALIDATOR, Endpoint


class EndpointForm(forms.Form):
    """Endpoint settings. Secret inputs are never pre-filled: blank keeps the stored value."""

    name = forms.CharField(max_length=40, validators=[NAME_VALIDATOR])
    kind = forms.ChoiceField(choices=Endpoint.Kind.choices, initial=Endpoint.Kind.HTTP)
    base_url = forms.CharField(
        label="Base URL",
        max_length=500,
        help_text=(
            "http(s)://host[:port][/path], or postgres://user@host:5432/db for a database "
            "(no password in the URL: it goes in the Database password field)."
        ),
    )
    writable = forms.BooleanField(
        required=False,
        label="Writable database",
        help_text="Databases only: let dbQuery steps write. Otherwise queries run read-only.",
    )
    is_default = forms.BooleanField(
        required=False,
        label="Default endpoint",
        help_text="Used for scenario URLs starting with '/'.",
    )
    auth_kind = forms.ChoiceField(label="Authentication", choices=CHOICES)

    def __init__(self, *args: Any, stored_secrets: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_secrets = stored_secrets or set()
        for spec in ALL_CONFIG_FIELDS:
            self.fields[spec.name] = forms.CharField(
                label=spec.label,
                required=False,
                max_length=500,
                help_text=spec.help,
                initial=spec.default,
            )
        for spec in ALL_SECRET_FIELDS:
            widget = (
                forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"})
                if spec.multiline
                else forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False)
            )
            self.fields[spec.name] = forms.CharField(
                label=spec.label, required=False, max_length=20000, widget=widget, strip=True
            )

    def main_fields(self) -> list[forms.BoundField]:
        return [
            self[name]
            for name in ("name", "kind", "base_url", "is_default", "writable", "auth_kind")
        ]

    def config_fields(self) -> list[tuple[forms.BoundField, str]]:
        return [
            (self[spec.name], self._kinds_using(spec.name, "config")) for spec in ALL_CONFIG_FIELDS
        ]

    def secret_fields(self) -> list[tuple[forms.BoundField, str, bool]]:
        return [
            (
                self[spec.name],
                self._kinds_using(spec.name, "secrets"),
                spec.name in self.stored_secrets,
            )
            for spec in ALL_SECRET_FIELDS
        ]

    @staticmethod
    def _kinds_using(name: str, part: str) -> str:
        return " ".join(
            kind
            for kind, scheme in SCHEMES.items()
            if any(f.name == name for f in getattr(scheme, part))
        )

    def auth_config(self) -> dict[str, str]:
        return {spec.name: self.cleaned_data.get(spec.name, "") for spec in ALL_CONFIG_FIELDS}

    def new_secrets(self) -> dict[str, str]:
        return {
            spec.name: self.cleaned_data[spec.name]
            for spec in ALL_SECRET_FIELDS
            if self.cleaned_data.get(spec.name)
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".csv,text/csv"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class RegistryUploadForm(forms.Form):
    files = MultipleFileField(
        label="Registry CSV files",
        help_text="Partner registry, webhook secret registry, retry policy and/or field mapping.",
    )

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes

    def clean_files(self) -> list[tuple[str, bytes]]:
        contents = []
        for upload in self.cleaned_data["files"]:
            if upload.size > self.max_bytes:
                raise forms.ValidationError(
                    f"{upload.name} is {upload.size} bytes; the limit is {self.max_bytes}."
                )
            contents.append((upload.name, upload.read()))
        return contents
