"""``manage.py endpoint_set``: create or update a partner's sandbox endpoint from CI.

It goes through ``services.endpoint_save``, so the endpoint page's validation, sealing and audit
apply. Secrets come only from environment variables or stdin: a value on the command line ends up
in shell history, process listings and CI logs, so no option takes one.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)

from certification.engine.auth_kinds import ALL_CONFIG_FIELDS, SCHEMES, AuthScheme
from certification.engine.masking import MASK
from partners import endpoint_keys, services
from partners.models import Endpoint, Partner
from partners.secret_rules import display_url

ACTOR = "manage.py endpoint_set"


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _dest(field_name: str) -> str:
    return f"config_{field_name}"


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _kinds_help() -> str:
    lines = [
        "auth kinds (--auth KIND), their settings (flags) and secrets (--secret-env NAME=VAR):"
    ]
    for kind, scheme in SCHEMES.items():
        lines.append(f"  {kind:29} {scheme.label} ({', '.join(scheme.endpoint_kinds)})")
        for field in scheme.config:
            note = f"default {field.default}" if field.default else ""
            note = note or ("optional" if not field.required else "required")
            lines.append(f"      {_flag(field.name) + ' VALUE':25} {field.label} ({note})")
        for field in scheme.secrets:
            lines.append(f"      {'secret ' + field.name:25} {field.label}")
    lines += [
        "",
        "examples:",
        "  CI_API_KEY=... manage.py endpoint_set --partner p_001 --name api \\",
        "      --url https://sandbox.acme.example/v1 --auth api_key --header-name X-API-Key \\",
        "      --secret-env CI_API_KEY --default",
        "  manage.py endpoint_set --partner p_001 --name orders-db --kind postgresql \\",
        "      --url postgres://reader@db.acme.example:5432/orders --auth db_password \\",
        "      --secret-stdin < password.txt",
        "  manage.py endpoint_set --partner p_001 --name api --url https://sandbox.acme.example \\",
        "      --auth mtls --secret-env client_cert_pem=CERT --secret-env client_key_pem=KEY",
    ]
    return "\n".join(lines)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the kinds table in the epilog kept as laid out."""


class Command(BaseCommand):
    help = (
        "Create or update a partner's sandbox endpoint, with the same validation, sealing and\n"
        "audit as the endpoint page. Secrets are read only from environment variables\n"
        "(--secret-env) or stdin (--secret-stdin), never from the command line.\n"
        "Prints 'created' or 'updated' and the endpoint with its secrets masked. On bad input\n"
        "prints 'error: ...' lines, writes nothing and exits with code 2."
    )
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # No abbreviations: "--token" would otherwise be taken as "--token-url".
        parser = super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)
        parser.formatter_class = _HelpFormatter
        parser.epilog = _kinds_help()
        report = parser.error

        def error(message: str) -> NoReturn:
            if message.startswith("unrecognized arguments"):
                # Not repeated: the stray value may be a secret typed on the command line.
                message = (
                    "unrecognized arguments (not repeated here); secrets are taken only from "
                    "--secret-env or --secret-stdin"
                )
            report(message)

        parser.error = error
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--partner", required=True, metavar="ID", help="Partner ID, e.g. p_001."
        )
        parser.add_argument("--name", required=True, help="Endpoint name, e.g. api.")
        parser.add_argument(
            "--url",
            required=True,
            help="Base URL: http(s)://… or postgres://user@host:5432/db (no password in it).",
        )
        parser.add_argument(
            "--kind",
            metavar="|".join(Endpoint.Kind.values),
            help="Endpoint kind; default: the stored one, or http for a new endpoint.",
        )
        parser.add_argument(
            "--auth", required=True, metavar="KIND", help=f"One of {', '.join(SCHEMES)}."
        )
        for field in ALL_CONFIG_FIELDS:
            kinds = [k for k, s in SCHEMES.items() if field in s.config]
            parser.add_argument(
                _flag(field.name),
                dest=_dest(field.name),
                metavar="VALUE",
                help=f"{field.label} ({', '.join(kinds)}).",
            )
        parser.add_argument(
            "--secret-env",
            action="append",
            default=[],
            metavar="[NAME=]VAR",
            help="Read a secret from environment variable VAR; NAME is needed when the auth kind "
            "has several secrets. Repeat for each.",
        )
        parser.add_argument(
            "--secret-stdin",
            nargs="?",
            const="",
            metavar="NAME",
            help="Read a secret from stdin (NAME is needed when the auth kind has several).",
        )
        parser.add_argument(
            "--default",
            action=argparse.BooleanOptionalAction,
            help="Make it the partner's default endpoint; default: unchanged, or yes for a "
            "partner's first endpoint.",
        )
        parser.add_argument(
            "--writable",
            action=argparse.BooleanOptionalAction,
            help="PostgreSQL only: let dbQuery steps write; default: unchanged, or no.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        errors: list[str] = []
        partner_id, name, auth = options["partner"], options["name"], options["auth"]
        partner = Partner.objects.filter(external_id=partner_id).first()
        if partner is None:
            known = list(Partner.objects.values_list("external_id", flat=True))
            errors.append(f"--partner: unknown partner '{partner_id}'{_suggest(partner_id, known)}")
        scheme = SCHEMES.get(auth)
        if scheme is None:
            errors.append(
                f"--auth: unknown auth kind '{auth}'; expected one of {', '.join(SCHEMES)}"
                + _suggest(auth, list(SCHEMES))
            )
        kind = options["kind"]
        if kind is not None and kind not in Endpoint.Kind.values:
            errors.append(
                f"--kind: unknown endpoint kind '{kind}'; expected "
                + " or ".join(Endpoint.Kind.values)
            )
        existing = Endpoint.objects.filter(partner=partner, name=name).first() if partner else None
        kind = kind or (existing.kind if existing else Endpoint.Kind.HTTP)
        if options["writable"] and kind != Endpoint.Kind.POSTGRESQL:
            errors.append("--writable: only postgresql endpoints can be writable")

        config: dict[str, str] = {}
        secrets: dict[str, str] = {}
        sources: dict[str, str] = {}
        if scheme is not None:
            config = self._config(scheme, auth, existing, options, errors)
            secrets, sources = self._secrets(scheme, auth, options, errors)
        if errors:
            self._fail(errors)
        assert partner is not None

        if options["default"] is not None:
            is_default = options["default"]
        elif existing is not None:
            is_default = existing.is_default
        else:
            is_default = not partner.endpoints.filter(is_default=True).exists()
        if options["writable"] is not None:
            writable = options["writable"]
        else:
            writable = existing.writable if existing else False
        try:
            saved = services.endpoint_save(
                partner=partner,
                by=ACTOR,
                endpoint=existing,
                name=name,
                kind=kind,
                writable=writable,
                base_url=options["url"],
                is_default=is_default,
                auth_kind=auth,
                auth_config=config,
                new_secrets=secrets,
            )
        except ValidationError as exc:
            self._fail(
                self._prefixed(field, message, sources)
                for field, messages in exc.message_dict.items()
                for message in messages
            )
        self._summary("updated" if existing else "created", saved, set(secrets))

    def _config(
        self,
        scheme: AuthScheme,
        auth: str,
        existing: Endpoint | None,
        options: dict[str, Any],
        errors: list[str],
    ) -> dict[str, str]:
        """The stored settings (when the auth kind stays) overlaid with the flags given."""
        own = [field.name for field in scheme.config]
        config = dict(existing.auth_config) if existing and existing.auth_kind == auth else {}
        for field in ALL_CONFIG_FIELDS:
            value = options[_dest(field.name)]
            if value is None:
                continue
            if field.name not in own:
                settings = ", ".join(_flag(n) for n in own) or "none"
                errors.append(
                    f"{_flag(field.name)}: not a setting of {auth} (its settings: {settings})"
                )
            config[field.name] = value
        return config

    def _secrets(
        self, scheme: AuthScheme, auth: str, options: dict[str, Any], errors: list[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The secrets given, by name, and the flag each came from (for error messages)."""
        names = [field.name for field in scheme.secrets]
        secrets: dict[str, str] = {}
        sources: dict[str, str] = {}

        def target(flag: str, named: str) -> str | None:
            if not names:
                errors.append(f"{flag}: auth kind {auth} takes no secrets")
                return None
            if not named:
                # Unnamed: the one secret, or the one required beside optional ones.
                required = [f.name for f in scheme.secrets if f.required]
                if len(names) > 1 and len(required) != 1:
                    errors.append(
                        f"{flag}: {auth} has several secrets ({', '.join(names)}); name the one "
                        f"meant, e.g. {flag} {names[0]}" + ("=VAR" if "env" in flag else "")
                    )
                    return None
                return names[0] if len(names) == 1 else required[0]
            if named not in names:
                errors.append(
                    f"{flag}: '{named}' is not a secret of {auth} (its secrets: "
                    f"{', '.join(names)}){_suggest(named, names)}"
                )
                return None
            if named in secrets or named in sources:
                errors.append(f"{flag}: secret {named} is given twice")
                return None
            return named

        for entry in options["secret_env"]:
            named, equals, var = entry.rpartition("=")
            var = var.strip()
            secret = target("--secret-env", named.strip() if equals else "")
            if secret is None:
                continue
            value = os.environ.get(var)
            where = f"--secret-env {secret}={var}"
            sources[secret] = where
            if not var:
                errors.append(f"{where}: no environment variable named")
            elif value is None:
                errors.append(f"{where}: environment variable {var} is not set")
            elif not value.strip():
                errors.append(f"{where}: environment variable {var} is empty")
            else:
                secrets[secret] = value.strip()
        if options["secret_stdin"] is not None:
            secret = target("--secret-stdin", options["secret_stdin"].strip())
            if secret is not None:
                value = options.get("stdin", sys.stdin).read().strip()
                sources[secret] = "--secret-stdin"
                if value:
                    secrets[secret] = value
                else:
                    errors.append("--secret-stdin: stdin was empty")
        return secrets, sources

    @staticmethod
    def _prefixed(field: str, message: str, sources: dict[str, str]) -> str:
        flags = {"name": "--name", "base_url": "--url", "kind": "--kind", "auth_kind": "--auth"}
        flags.update({f.name: _flag(f.name) for f in ALL_CONFIG_FIELDS})
        secret_fields = {f.name for scheme in SCHEMES.values() for f in scheme.secrets}
        if field in secret_fields:
            flag = sources.get(field, f"--secret-env {field}=VAR")
        else:
            flag = flags.get(field, "")
        return f"{flag}: {message}" if flag else message

    def _fail(self, errors: Any) -> NoReturn:
        for error in errors:
            self.stderr.write(f"error: {error}")
        raise CommandError("nothing was written", returncode=2)

    def _summary(self, action: str, endpoint: Endpoint, replaced: set[str]) -> None:
        flags = ["default"] if endpoint.is_default else []
        if endpoint.writable:
            flags.append("writable")
        self.stdout.write(f"{action} {endpoint}")
        self.stdout.write(f"  kind: {endpoint.kind}{''.join(f', {f}' for f in flags)}")
        self.stdout.write(f"  url: {display_url(endpoint.base_url)}")
        self.stdout.write(f"  auth: {endpoint.auth_kind}")
        for key, value in endpoint_keys.config_display(endpoint.auth_config):
            self.stdout.write(f"  {key}: {value}")
        for secret in sorted(services.endpoint_secret_names(endpoint)):
            state = "new" if secret in replaced else "kept"
            self.stdout.write(f"  {secret}: {MASK} ({state})")
