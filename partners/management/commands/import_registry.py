from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.registry import registry_import, registry_parse


class Command(BaseCommand):
    help = (
        "Import the playbook's registry CSVs (partner registry, webhook secret registry, retry "
        "policy, field mapping), recognised by their header rows. A file with any bad row imports "
        "nothing: every bad row is printed as file:line: message and the exit code is 2."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; change nothing."
        )

    def handle(self, *args: Any, files: list[Path], dry_run: bool, **options: Any) -> None:
        contents = []
        for path in files:
            try:
                contents.append((str(path), path.read_bytes()))
            except OSError as exc:
                raise CommandError(f"{path}: cannot read: {exc.strerror}", returncode=2) from None
        plan = registry_parse(contents)
        if plan.errors:
            for error in plan.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(plan.errors)} error(s); nothing was imported.", returncode=2)
        if dry_run:
            from partners.registry import registry_preview

            changes = registry_preview(plan)
        else:
            changes = registry_import(plan=plan, by="manage.py import_registry")
        for change in changes:
            if change.action != "unchanged" or options["verbosity"] > 1:
                self.stdout.write(str(change))
        counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete")}
        unchanged = sum(c.action == "unchanged" for c in changes)
        prefix = "Would import" if dry_run else "Imported"
        self.stdout.write(
            f"{prefix} {len(plan.files)} file(s): {counts['create']} created, "
            f"{counts['update']} updated, {counts['delete']} deleted, {unchanged} unchanged."
        )
