from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence.audit import verify_chain

_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _anchor(text: str) -> tuple[int, str]:
    match = _ANCHOR.match(text.strip().lower())
    if not match:
        raise ValueError(text)
    return int(match[1]), match[2]


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain: every seq from 1 without gaps, every event linked to "
        "the one before and its hash matching its contents. Exit 0 with the head hash when "
        "intact; exit 1 naming the first broken event. A hash chain cannot show that its newest "
        "events were cut off or that all of it was rewritten: note the head it prints somewhere "
        "else and pass it back with --anchor."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            action="append",
            default=[],
            type=_anchor,
            metavar="SEQ:HASH",
            help="An event hash noted earlier (e.g. a head printed by this command) that must "
            "still be in the chain; may be repeated.",
        )
        parser.add_argument("--database", default="default")

    def handle(
        self, *args: Any, anchor: list[tuple[int, str]], database: str, **options: Any
    ) -> None:
        report = verify_chain(using=database, remember=frozenset(seq for seq, _ in anchor))
        if report.problem:
            raise CommandError(f"audit chain broken: {report.problem}", returncode=1)
        for seq, expected in anchor:
            found = report.hashes.get(seq)
            if found is None:
                raise CommandError(
                    f"anchor seq {seq}: no such event (the chain ends at seq {report.events})",
                    returncode=1,
                )
            if found != expected:
                raise CommandError(
                    f"anchor seq {seq}: the event's hash is {found}, not {expected}", returncode=1
                )
        self.stdout.write(f"audit chain intact: {report.events} events, head {report.head}")
