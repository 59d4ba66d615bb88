"""``manage.py seed_volume``: add realistic volume (see docs/volume.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evidence.volume import VolumeError, VolumeRequest, volume_seed


class Command(BaseCommand):
    help = (
        "Add generated partners (with SLAs and endpoints), finished runs with step results and "
        "latency, and certifications in every status. Each call adds more. Not in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partners", type=int, required=True, help="Partners to add.")
        parser.add_argument(
            "--runs-per-partner", type=int, default=20, help="Finished runs per partner (20)."
        )
        parser.add_argument(
            "--steps-per-run", type=int, default=200, help="Steps of each run (200)."
        )
        parser.add_argument(
            "--big-run-steps",
            type=int,
            action="append",
            default=[],
            metavar="N",
            help="Also one run of N steps for the first new partner (repeatable).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=25, help="Partners per transaction (25)."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Random seed (default: the first new number)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        request = VolumeRequest(
            partners=options["partners"],
            runs_per_partner=options["runs_per_partner"],
            steps_per_run=options["steps_per_run"],
            big_run_steps=tuple(options["big_run_steps"]),
            batch_size=options["batch_size"],
            seed=options["seed"],
        )
        try:
            summary = volume_seed(request, progress=self.stdout.write)
        except VolumeError as exc:
            raise CommandError("\n".join(exc.messages), returncode=2) from None

        def counts(counter: Any) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items())) or "none"

        lines = [
            f"Added {summary.partners:,} partners {summary.first_id}..{summary.last_id} in "
            f"{summary.seconds:.1f} s:",
            f"  partners by status: {counts(summary.partners_by_status)}",
            f"  SLAs {summary.slas:,}, endpoints {summary.endpoints:,}",
            f"  suites: {', '.join(summary.suites)}",
            f"  runs {summary.runs:,} ({counts(summary.runs_by_status)})",
            f"  scenario runs {summary.scenario_runs:,}, step results {summary.steps:,}",
            f"  certifications: {counts(summary.certifications_by_status)}",
        ]
        lines += [f"  big run: {steps:,} steps, run {pk}" for steps, pk in summary.big_runs]
        self.stdout.write("\n".join(lines))
