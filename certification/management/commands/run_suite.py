from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import pluralize

from certification import execution, runs, selectors
from certification.engine.model import ScenarioOutcome
from certification.management.suite_files import store_suite_file
from certification.models import Run, ScenarioRun
from certification.verdicts import sla_label
from partners.models import Partner

EXIT = {Run.Status.PASSED: 0, Run.Status.FAILED: 1}
MARK = {"passed": "PASS", "failed": "FAIL", "error": "ERR ", "skipped": "SKIP", "cancelled": "CANC",
        "unevaluated": "N/E "}  # fmt: skip
VERDICT_MARK = {"met": "MET ", "missed": "MISS", "insufficient samples": "FEW ",
                "not measured": "N/M "}  # fmt: skip


def first_problem(steps: Iterable[tuple[str, Any, Iterable[Any]]], status: str) -> str:
    """The first failure or failed assertion of a scenario's steps, each (name, failure with
    ``kind`` and ``message`` or None, assertion results with ``passed``, ``path``, ``operator``,
    ``message``), as stored rows or engine outcomes alike."""

    def get(item: Any, key: str) -> Any:
        return item[key] if isinstance(item, dict) else getattr(item, key)

    for name, failure, assertions in steps:
        if failure:
            return f"{name}: {get(failure, 'kind')}: {get(failure, 'message')}"
        for result in assertions:
            if not get(result, "passed"):
                return (
                    f"{name}: {get(result, 'path')} {get(result, 'operator')}: "
                    f"{get(result, 'message')}"
                )
    return "a check could not be evaluated" if status == "unevaluated" else ""


def first_problem_row(scenario_run: ScenarioRun) -> str:
    steps = ((s.name, s.failure, s.assertions) for s in scenario_run.steps.all())
    problem = first_problem(steps, scenario_run.status)
    if not problem and scenario_run.status == "error":
        return scenario_run.run.error
    return problem


def sla_row(verdict: dict[str, Any]) -> str:
    """``  MISS SLA p95 ≤ 300 ms on api: missed, 1526.3 ms, 40 samples of 40 requests``"""
    mark = VERDICT_MARK.get(verdict["verdict"], verdict["verdict"])
    line = f"  {mark} SLA {sla_label(verdict)}: {verdict['verdict']}"
    if verdict.get("measured") is not None:
        unit = verdict.get("unit", "")
        line += f", {verdict['measured']}{'' if unit == '%' else ' '}{unit}".rstrip()
    if verdict.get("requests"):
        line += f", {verdict.get('samples', 0)} samples of {verdict['requests']} requests"
    if verdict.get("reason"):
        line += f"\n       {verdict['reason']}"
    return line


class Command(BaseCommand):
    help = (
        "Run a suite against a partner's sandbox. Exit code 0 when the run passed, 1 when it "
        "failed, 2 for invalid input or an error that prevented the run."
    )
    # A partner's CI runs this on every build: Django's system checks (URLconf, admin, models)
    # are `manage.py check`'s and the deployment's business, not each run's.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partner", required=True, metavar="ID", help="e.g. p_001")
        parser.add_argument(
            "--suite", required=True, metavar="NAME_OR_FILE", help="a stored suite name or a file"
        )
        parser.add_argument(
            "--endpoint",
            action="append",
            default=[],
            metavar="NAME=URL",
            help="set or override the partner's endpoint NAME for this run only (repeatable); "
            "pointed at another origin, NAME's stored credentials are not sent",
        )
        parser.add_argument(
            "--keep-auth",
            action="store_true",
            help="send the stored credentials of an --endpoint NAME even to another origin",
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="run in this process instead of on the Celery workers",
        )
        parser.add_argument(
            "--parallel",
            type=int,
            default=None,
            help="with --inline: scenarios at a time (default 4); workers set their own",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600,
            metavar="SECONDS",
            help="without --inline: give up waiting for the workers after this long (exit 2)",
        )
        parser.add_argument("--json", type=Path, metavar="FILE", help="write the run as JSON")
        parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["parallel"] is not None and not options["inline"]:
            raise CommandError(
                "--parallel applies to --inline runs; on the workers, each worker process runs "
                "one scenario at a time (start more workers for more)",
                returncode=2,
            )
        partner = Partner.objects.filter(external_id=options["partner"]).first()
        if partner is None:
            raise CommandError(f"unknown partner '{options['partner']}'", returncode=2)
        suite = self._suite(options["suite"])
        overrides = {}
        for item in options["endpoint"]:
            name, sep, url = item.partition("=")
            if not sep or not name or not url:
                raise CommandError(f"--endpoint {item}: expected NAME=URL", returncode=2)
            overrides[name] = url
        create = runs.run_create if options["inline"] else runs.start_run
        try:
            run = create(
                partner=partner,
                suite=suite,
                by="manage.py run_suite",
                endpoint_overrides=overrides,
                keep_auth=options["keep_auth"],
                trigger="cli",
            )
        except runs.RunInputError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"Run {run.pk}: suite '{suite.name}' v{suite.version} against {partner} "
            f"({run.scenarios_total} scenario{pluralize(run.scenarios_total)})"
        )
        for name, endpoint in run.endpoints.items():
            if endpoint.get("auth_dropped"):
                self.stderr.write(
                    f"--endpoint {name}: another origin than the stored endpoint, so its "
                    "credentials are not sent (--keep-auth sends them)"
                )
        run = self._execute(run, options)
        self._report(run, options)

    def _suite(self, name_or_file: str) -> Any:
        path = Path(name_or_file)
        if path.is_file():
            suite, _ = store_suite_file(path, self.stderr, by="manage.py run_suite")
            return suite
        suite = selectors.suite_latest(name_or_file)
        if suite is None:
            raise CommandError(
                f"no stored suite called '{name_or_file}' and no such file", returncode=2
            )
        return suite

    def _progress(self, scenario_run: ScenarioRun, outcome: ScenarioOutcome) -> None:
        """Inline runs report a scenario once it is saved, from the outcome the engine handed
        over (masked, and what was saved): no second read of the scenario and its steps."""
        steps = ((step.name, step.failure, step.assertions) for step in outcome.steps)
        problem = "" if outcome.status == "passed" else first_problem(steps, outcome.status)
        self._write_row(scenario_run.scenario, outcome.status, outcome.duration_ms, problem)

    def _execute(self, run: Run, options: dict[str, Any]) -> Run:
        if options["inline"]:
            return execution.run_execute_inline(
                run=run, parallel=max(1, options["parallel"] or 4), progress=self._progress
            )
        return self._follow(run, timeout=options["timeout"])

    def _follow(self, run: Run, *, timeout: float) -> Run:
        """Print scenarios as the workers finish them, until the run is finished."""
        started = time.monotonic()
        shown: set[int] = set()
        hinted = False
        while True:
            run.refresh_from_db()
            finished = (
                run.scenario_runs.filter(status__in=ScenarioRun.FINISHED)
                .exclude(pk__in=shown)
                .select_related("scenario")
                .prefetch_related("steps")
            )
            for scenario_run in finished:
                shown.add(scenario_run.pk)
                self._progress_row(scenario_run)
            if run.is_finished:
                return run
            waited = time.monotonic() - started
            if not hinted and waited > 15 and not run.scenario_runs.exclude(attempts=0).exists():
                self.stderr.write(
                    "No worker has picked up this run yet; start one with `make worker` "
                    "(celery -A config worker)."
                )
                hinted = True
            if waited > timeout:
                raise CommandError(
                    f"Run {run.pk} still {run.status} after {timeout:.0f} s; it goes on on the "
                    "workers. Follow it in the dashboard.",
                    returncode=2,
                )
            time.sleep(0.25)

    def _progress_row(self, scenario_run: ScenarioRun) -> None:
        problem = "" if scenario_run.status == "passed" else first_problem_row(scenario_run)
        self._write_row(
            scenario_run.scenario, scenario_run.status, scenario_run.duration_ms, problem
        )

    def _write_row(
        self, scenario: Any, status: str, duration_ms: float | None, problem: str
    ) -> None:
        label = f"{scenario.code} {scenario.name}".strip()
        line = f"  {MARK.get(status, status)} {label} ({scenario.kind}) {duration_ms or 0:.0f} ms"
        if problem:
            line += f"\n       {problem}"
        self.stdout.write(line)

    def _report(self, run: Run, options: dict[str, Any]) -> None:
        counts: dict[str, int] = {}
        for status in run.scenario_runs.values_list("status", flat=True):
            counts[status] = counts.get(status, 0) + 1
        for verdict in run.sla_verdicts:
            self.stdout.write(sla_row(verdict))
        if options["json"]:
            options["json"].write_text(json.dumps(selectors.run_as_json(run), indent=2))
        if options["junit"]:
            options["junit"].write_text(selectors.run_as_junit(run))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        message = f"Run {run.pk} {run.status}: {summary}"
        if run.error:
            message += f" ({run.error})"
        elif run.reasons:
            message += f" ({'; '.join(run.reasons)})"
        self.stdout.write(message)
        code = EXIT.get(run.status, 2)
        if code:
            # The run's outcome, not a command error: the summary above says it all.
            raise SystemExit(code)
