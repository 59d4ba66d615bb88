from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence.verify import UnreadableBundle, verify_bundle


class Command(BaseCommand):
    help = (
        "Verify an evidence bundle: SHA256SUMS and every file it lists, its signature, the "
        "signing key, the results.jsonl chain. Exit code 0 when every check holds, 1 naming "
        "the first file or record that does not, 2 for input that cannot be read."
    )
    # Verifying needs no database; a bundle can be checked on any machine with the code.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bundle", metavar="FILE.zip")
        parser.add_argument(
            "--key",
            metavar="PEM_OR_FINGERPRINT",
            help="the published key the bundle must be signed with: a public key PEM file or "
            "its fingerprint SHA256:...",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = verify_bundle(options["bundle"], key=options["key"])
        except UnreadableBundle as exc:
            raise CommandError(str(exc), returncode=2) from None
        for check in report.checks:
            self.stdout.write(check.line())
        failure = report.failure
        if failure is not None:
            # The bundle's verdict, not a command error: the FAILED line says it all.
            raise SystemExit(1)
        headline = _headline(options["bundle"])
        if headline:
            self.stdout.write(f"The bundle says: {headline}")
        if report.key_checked:
            self.stdout.write("Bundle verified: signed with the expected key.")
        else:
            self.stdout.write(
                f"Bundle verified, signed with the key {report.fingerprint}: compare it with "
                "the published fingerprint, or pass --key."
            )


def _headline(path: str) -> str:
    """What the verified bundle attests (e.g. CERTIFIED until ..., NOT SIGNED OFF), so that a
    draft is never mistaken for a signed certification."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            summary = json.loads(archive.read("certification.json"))
        return str(summary.get("verdict", {}).get("headline", ""))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return ""
