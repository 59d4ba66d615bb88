from __future__ import annotations

import contextlib
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from certification.suites import suite_sources_from_file, suite_store
from partners import access, services
from partners.models import Endpoint, Membership, Partner
from partners.registry import registry_import, registry_parse

DEMO_DIR = Path(settings.BASE_DIR) / "demo" / "registry"
SUITES_DIR = Path(settings.BASE_DIR) / "demo" / "suites"
DEMO_SANDBOX_KEY = "demo-sandbox-key"
DEMO_SUITE, DEMO_SCOPE = "checkout-certification", "checkout-v1"
# Globex (p_002), the registry's file partner: the shipped file suite against the demo SFTP
# partner (demo/sftp_partner.py).
FILE_SUITE_PATH = Path(settings.BASE_DIR) / "certification" / "library" / "b2b" / "files.yaml"
FILE_SUITE, FILE_SCOPE = "b2b-files", "inventory-files-v1"
# Initech (p_003), the registry's EDI partner: the shipped EDI suite against the demo EDI
# partner (demo/edi_partner.py), over signed and encrypted AS2.
EDI_SUITE_PATH = Path(settings.BASE_DIR) / "certification" / "library" / "b2b" / "edi.yaml"
EDI_SUITE, EDI_SCOPE = "b2b-edi", "edi-orders-v1"
DEMO_USERS = (
    # username, password, role, partner
    ("qa", "qa-demo-pass", access.QA_LEAD, None),
    # A second QA lead: a waiver needs an approver other than the one who asked for it.
    ("qa2", "qa2-demo-pass", access.QA_LEAD, None),
    ("auditor", "auditor-demo-pass", access.AUDITOR, None),
    ("acme", "acme-demo-pass", access.PARTNER_USER, "p_001"),
)


def _answers(url: str, *, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.2)
    return False


def _port_open(host: str, port: int, *, within_s: float) -> bool:
    import socket

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = (
        "Load the demo data: the playbook's registry CSVs, demo users for each role, sandbox "
        "endpoints for Acme Retail and the demo suites. Idempotent; refuses to run in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sandbox-url", default="http://127.0.0.1:8001", help="Base URL of the demo sandbox."
        )
        parser.add_argument(
            "--sftp-url",
            default="",
            help="The demo SFTP file partner (sftp://127.0.0.1:8022): Globex's endpoint 'files'.",
        )
        parser.add_argument(
            "--sftp-pgp-key",
            default="",
            help="Globex's PGP public key file (the demo SFTP partner publishes it as "
            "pub/globex_pgp.asc): its files are then encrypted to it, and signed with a key of "
            "ours made here.",
        )
        parser.add_argument(
            "--edi-url",
            default="",
            help="The demo EDI partner (http://127.0.0.1:8023): Initech's AS2 endpoint 'edi'.",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Wait up to 15 s for the sandbox to answer first."
        )
        parser.add_argument(
            "--demo-run",
            action="store_true",
            help=f"Then run the suite {DEMO_SUITE} against Acme Retail (in this process), "
            "unless Acme Retail has a run already.",
        )

    def handle(
        self,
        *args: Any,
        sandbox_url: str,
        sftp_url: str,
        sftp_pgp_key: str,
        edi_url: str,
        wait: bool,
        demo_run: bool,
        **options: Any,
    ) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_setup creates users with known passwords; not in production.")
        if wait and not _answers(f"{sandbox_url}/health", within_s=15):
            self.stderr.write(f"The demo sandbox at {sandbox_url} does not answer; continuing.")
        self._load(sandbox_url)
        self._point_sandbox_at_mocks(sandbox_url)
        files = bool(sftp_url) and self._file_partner(sftp_url, sftp_pgp_key)
        edi = bool(edi_url) and self._edi_partner(edi_url)
        if demo_run:
            self._demo_run()
            if files:
                self._file_demo_run()
            if edi:
                self._edi_demo_run()

    def _edi_partner(self, edi_url: str) -> bool:
        """Initech's AS2 endpoint (our key and certificate made here, Initech's certificate as
        it hands it out), our profile given to Initech (as a partner is onboarded), the EDI
        suite and a certification. False when the EDI partner does not answer."""
        import json

        from demo.as2_keys import self_signed
        from evidence.models import Certification
        from evidence.services import certification_open

        edi_url = edi_url.rstrip("/")
        if not _answers(f"{edi_url}/health", within_s=15):
            self.stderr.write(f"The demo EDI partner at {edi_url} does not answer; skipped.")
            return False
        with urllib.request.urlopen(f"{edi_url}/_partner/certificate", timeout=10) as answer:
            partner_certificate = answer.read().decode()
        initech = Partner.objects.get(external_id="p_003")
        endpoint = Endpoint.objects.filter(partner=initech, name="edi").first()
        if endpoint is None or endpoint.auth_config.get("partner_certificate_pem") != (
            partner_certificate
        ):
            key, certificate = self_signed("CERTDASH")
            endpoint = services.endpoint_save(
                partner=initech, by="manage.py demo_setup", name="edi",
                base_url=f"{edi_url}/as2", is_default=True, auth_kind="as2_smime",
                auth_config={"as2_from": "CERTDASH", "as2_to": "INITECH",
                             "certificate_pem": certificate,
                             "partner_certificate_pem": partner_certificate},
                new_secrets={"as2_private_key_pem": key}, kind="as2", endpoint=endpoint,
            )  # fmt: skip
        profile = {
            "as2_id": "CERTDASH",
            "url": initech.as2_url,
            "certificate_pem": endpoint.auth_config["certificate_pem"],
        }
        request = urllib.request.Request(
            f"{edi_url}/_partner/profile", data=json.dumps(profile).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        entry, sources = suite_sources_from_file(EDI_SUITE_PATH)
        suite_store(entry=entry, sources=sources, by="manage.py demo_setup")
        if not Certification.objects.filter(partner=initech, scope=EDI_SCOPE).exists():
            certification_open(
                partner=initech,
                scope=EDI_SCOPE,
                title="EDI purchase orders v1",
                suite_names=[EDI_SUITE],
                by=get_user_model().objects.get(username="qa"),
            )
        return True

    def _edi_demo_run(self) -> None:
        if Partner.objects.get(external_id="p_003").runs.exists():
            return
        # Initech posts its 997s and 855s to our AS2 URL, on the web server.
        _answers(f"{settings.PUBLIC_BASE_URL.rstrip('/')}/healthz", within_s=60)
        with contextlib.suppress(SystemExit):
            call_command(
                "run_suite",
                partner="p_003",
                suite=EDI_SUITE,
                inline=True,
                stdout=self.stdout,
                stderr=self.stderr,
            )

    def _file_partner(self, sftp_url: str, pgp_key_file: str) -> bool:
        """Globex's SFTP endpoint (its host key pinned on first save; with ``pgp_key_file``
        Globex's PGP key and one of ours, made here), the file suite and a certification for
        it. False when the SFTP partner does not answer."""
        from urllib.parse import urlsplit

        from demo.sftp_partner import PASSWORD, USER
        from evidence.models import Certification
        from evidence.services import certification_open

        parts = urlsplit(sftp_url)
        if not _port_open(parts.hostname or "127.0.0.1", parts.port or 22, within_s=15):
            self.stderr.write(f"The demo SFTP partner at {sftp_url} does not answer; skipped.")
            return False
        globex = Partner.objects.get(external_id="p_002")
        if not Endpoint.objects.filter(partner=globex, name="files").exists():
            config, secrets = {"username": USER}, {"password": PASSWORD}
            if pgp_key_file and not Path(pgp_key_file).is_file():
                self.stderr.write(f"No PGP key at {pgp_key_file}: Globex's files go in clear.")
            elif pgp_key_file:
                from certification.engine import pgp

                config["pgp_partner_key"] = Path(pgp_key_file).read_text()
                secrets["pgp_private_key"] = pgp.generate("Certdash QA", "qa@certdash.example")[0]
            services.endpoint_save(
                partner=globex, by="manage.py demo_setup", name="files", base_url=sftp_url,
                is_default=True, auth_kind="ssh_password", auth_config=config,
                new_secrets=secrets, kind="sftp",
            )  # fmt: skip
        entry, sources = suite_sources_from_file(FILE_SUITE_PATH)
        suite_store(entry=entry, sources=sources, by="manage.py demo_setup")
        if not Certification.objects.filter(partner=globex, scope=FILE_SCOPE).exists():
            certification_open(
                partner=globex,
                scope=FILE_SCOPE,
                title="Inventory files v1",
                suite_names=[FILE_SUITE],
                by=get_user_model().objects.get(username="qa"),
            )
        return True

    def _file_demo_run(self) -> None:
        if Partner.objects.get(external_id="p_002").runs.exists():
            return
        with contextlib.suppress(SystemExit):
            call_command(
                "run_suite",
                partner="p_002",
                suite=FILE_SUITE,
                inline=True,
                parallel=8,
                stdout=self.stdout,
                stderr=self.stderr,
            )

    def _point_sandbox_at_mocks(self, sandbox_url: str) -> None:
        """Configure the demo sandbox's third-party base URL with Acme Retail's hosted mocks,
        as a partner configures its own sandbox once (the sandbox forgets it on restart)."""
        import json

        from certification.traffic import mock_base_url

        base = mock_base_url(Partner.objects.get(external_id="p_001"))
        request = urllib.request.Request(
            f"{sandbox_url}/sandbox/third-parties",
            data=json.dumps({"baseUrl": base}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except OSError as exc:
            self.stderr.write(f"Could not point the demo sandbox at the hosted mocks: {exc}")
            return
        self.stdout.write(f"Demo sandbox calls its third parties at {base}/<host>/<path>")

    def _demo_run(self) -> None:
        """One finished run to look at, not one more on every restart of `make run`."""
        if Partner.objects.get(external_id="p_001").runs.exists():
            self.stdout.write("Acme Retail has runs already; no demo run started.")
            return
        # The hosted mocks are served by the web server, which `make run` starts beside this.
        if not _answers(f"{settings.PUBLIC_BASE_URL.rstrip('/')}/healthz", within_s=60):
            self.stderr.write(
                f"The dashboard at {settings.PUBLIC_BASE_URL} does not answer, so neither do the "
                "hosted mocks: the demo run's payment steps will fail."
            )
        # A failed run exits 1; the run and its summary are there to look at all the same.
        with contextlib.suppress(SystemExit):
            call_command(
                "run_suite",
                partner="p_001",
                suite=DEMO_SUITE,
                inline=True,
                stdout=self.stdout,
                stderr=self.stderr,
            )

    @transaction.atomic
    def _load(self, sandbox_url: str) -> None:
        files = [(p.name, p.read_bytes()) for p in sorted(DEMO_DIR.glob("*.csv"))]
        plan = registry_parse(files)
        if plan.errors:
            raise CommandError("\n".join(map(str, plan.errors)), returncode=2)
        registry_import(plan=plan, by="manage.py demo_setup")
        acme = Partner.objects.get(external_id="p_001")
        self._demo_webhook_secret(acme)
        # Named like the seed's services so its definitions run unchanged.
        for name, auth in (("api-gateway", "api_key"), ("payment-service", "none")):
            if not Endpoint.objects.filter(partner=acme, name=name).exists():
                services.endpoint_save(
                    partner=acme,
                    by="manage.py demo_setup",
                    name=name,
                    base_url=sandbox_url,
                    is_default=name == "api-gateway",
                    auth_kind=auth,
                    auth_config={"header_name": "X-API-Key"} if auth == "api_key" else {},
                    new_secrets={"api_key": DEMO_SANDBOX_KEY} if auth == "api_key" else {},
                )
        for suite_file in sorted(SUITES_DIR.glob("*.yaml")):
            entry, sources = suite_sources_from_file(suite_file)
            suite_store(entry=entry, sources=sources, by="manage.py demo_setup")
        User = get_user_model()
        for username, password, role, partner_id in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.save()
            user.groups.set([Group.objects.get(name=role)])
            if partner_id:
                Membership.objects.update_or_create(
                    user=user, defaults={"partner": Partner.objects.get(external_id=partner_id)}
                )
        self._open_certification(acme, User.objects.get(username="qa"))
        self.stdout.write("Demo logins (development only):")
        for username, password, role, partner_id in DEMO_USERS:
            scope = f" of {partner_id}" if partner_id else ""
            self.stdout.write(f"  {role + scope:22} {username} / {password}")

    @staticmethod
    def _demo_webhook_secret(acme: Partner) -> None:
        """The registry CSV masks the secret (***): the demo signs with the sandbox's."""
        from demo.sandbox import WEBHOOK_SECRET
        from partners import crypto

        for row in acme.webhook_secrets.filter(secret_sealed=""):
            row.secret_sealed = crypto.seal_secrets({"secret": WEBHOOK_SECRET}, aad=row.secrets_aad)
            row.save(update_fields=["secret_sealed", "updated_at"])

    def _open_certification(self, acme: Partner, qa: Any) -> None:
        from evidence.models import Certification
        from evidence.services import certification_open

        if not Certification.objects.filter(partner=acme, scope=DEMO_SCOPE).exists():
            certification_open(
                partner=acme,
                scope=DEMO_SCOPE,
                title="Checkout API v1",
                suite_names=[DEMO_SUITE],
                by=qa,
            )
