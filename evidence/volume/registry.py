"""Generated partners with SLAs and sandbox endpoints (the registry side of volume data).

Partner ids are ``v_000001``, ``v_000002``… continuing after the highest one stored, so
repeated seeding never collides. Endpoints go through ``partners.services.endpoint_save`` (URL
policy, sealed secrets, its audit event); every partner has the HTTP endpoints ``api``
(default) and ``orders`` the volume suites address, and one in three a PostgreSQL ``ledger``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evidence.volume.outcomes import EndpointProfile
from partners import services
from partners import sla as sla_grammar
from partners.models import SLA, Partner

ID_PREFIX = "v_"
ID_DIGITS = 6
SANDBOX = "http://127.0.0.1:8001"

_FIRST = ("Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Adventure",
          "Proseware", "Lucerne", "Fourth Coffee", "Woodgrove", "Alpine", "Blue Yonder",
          "Coho", "Humongous", "Margie's", "Trey", "Wide World")  # fmt: skip
_SECOND = ("Logistics", "Retail", "Payments", "Freight", "Supplies", "Foods", "Travel",
           "Insurance", "Pharma", "Energy", "Media", "Telecom")  # fmt: skip
# (modes, security, SLA text): weighted towards API partners with latency SLAs.
_PROFILES = (
    (["api"], ["oauth2"], "p95<=300ms, uptime 98%"),
    (["api", "webhook"], ["oauth2", "hmac"], "p95<=300ms, uptime 98%, ack<=15m"),
    (["api"], ["api_key"], "p95<=500ms"),
    (["api"], ["mtls"], "p95<=300ms, p90<=250ms on api"),
    (["api", "file"], ["api_key", "ssh"], "p95<=400ms, file@02:00Z daily"),
    (["api", "edi"], ["as2"], "p95<=500ms, ack<=2h, replay 30d"),
)
SLOW_SHARE = 0.04  # endpoints whose latency breaches a 300 ms p95


@dataclass
class SeededPartner:
    partner: Partner
    profiles: dict[str, EndpointProfile]
    slas: list[tuple[sla_grammar.SLATarget, str]]
    http_endpoints: list[str]
    endpoint_snapshot: dict[str, dict]


def next_number() -> int:
    """The number after the highest ``v_NNNNNN`` partner id stored (1 when there is none)."""
    ids = Partner.objects.filter(external_id__regex=rf"^{ID_PREFIX}[0-9]{{{ID_DIGITS}}}$")
    highest = ids.order_by("-external_id").values_list("external_id", flat=True).first()
    return int(highest[len(ID_PREFIX) :]) + 1 if highest else 1


def external_id(number: int) -> str:
    return f"{ID_PREFIX}{number:0{ID_DIGITS}d}"


def _sla_rows(partner: Partner, text: str) -> list[SLA]:
    return [
        SLA(
            partner=partner,
            name=t.name,
            kind=t.kind,
            text=t.text,
            percentile=t.percentile,
            threshold_ms=t.threshold_ms,
            uptime_percent=t.uptime_percent,
            window_start=t.window_start,
            window_end=t.window_end,
            schedule=t.schedule,
            retention_days=t.retention_days,
            strict=t.strict,
            endpoint=t.endpoint,
        )
        for t in sla_grammar.parse_sla_text(text)
    ]


def partner_create(rng: random.Random, number: int, *, by: str) -> SeededPartner:
    """One partner with its SLAs and endpoints (call inside a transaction)."""
    pid = external_id(number)
    modes, security, sla_text = _PROFILES[number % len(_PROFILES)]
    partner = Partner.objects.create(
        external_id=pid,
        name=f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {number:04d}",
        modes=modes,
        security=security,
        contact_email=f"integrations@{pid.replace('_', '-')}.example",
    )
    SLA.objects.bulk_create(_sla_rows(partner, sla_text))
    slas = list(partner.slas.all())  # in the model's order, as run verdicts list them
    base = f"{SANDBOX}/{pid}"
    auth = (
        ("api_key", {"header_name": "X-API-Key"}, {"api_key": f"{pid}-api-key-0123456789"})
        if number % 2
        else ("bearer", {}, {"token": f"{pid}-bearer-token-0123456789"})
    )
    created = [
        services.endpoint_save(
            partner=partner, by=by, name="api", base_url=f"{base}/api", is_default=True,
            auth_kind=auth[0], auth_config=auth[1], new_secrets=auth[2],
        ),
        services.endpoint_save(
            partner=partner, by=by, name="orders", base_url=f"{base}/orders", is_default=False,
            auth_kind=auth[0], auth_config=auth[1], new_secrets=auth[2],
        ),
    ]  # fmt: skip
    if number % 3 == 0:
        created.append(
            services.endpoint_save(
                partner=partner, by=by, name="ledger", kind="postgresql",
                base_url=f"postgres://certdash@127.0.0.1:5432/{pid}", is_default=False,
                auth_kind="db_password", auth_config={},
                new_secrets={"password": f"{pid}-db-password-0123456789"},
            )
        )  # fmt: skip
    profiles = {}
    for endpoint in created:
        slow = rng.random() < SLOW_SHARE
        median = rng.uniform(230, 320) if slow else rng.uniform(55, 150)
        profiles[endpoint.name] = EndpointProfile(endpoint.name, endpoint.base_url, median)
    snapshot = {
        e.name: {
            "base_url": e.base_url, "kind": e.kind, "auth_kind": e.auth_kind,
            "auth_config": e.auth_config, "writable": e.writable, "endpoint_id": str(e.pk),
            "source": "partner",
        }
        for e in created
    }  # fmt: skip
    return SeededPartner(
        partner=partner,
        profiles=profiles,
        slas=[(s.target, s.endpoint) for s in slas],
        http_endpoints=[e.name for e in created if e.kind == "http"],
        endpoint_snapshot=snapshot,
    )
