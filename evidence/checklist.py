"""The review checklist: the playbook's quick gate, as data.

Each certification gets one ``ChecklistItem`` per entry, in this order, every item ``open``
until a QA lead marks it ``met`` or ``not applicable``. ``proven_by`` says which scenarios of the
certification's evidence runs bear on an item: a scenario whose code or name matches one of the
item's patterns (case-insensitive) is linked to it on the certification page and in the bundle,
so the reviewer sees the evidence next to the item. A link is a pointer, not a verdict: the item
stays as the reviewer set it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ChecklistEntry:
    key: str
    label: str
    proven_by: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        return any(re.search(pattern, text, re.IGNORECASE) for pattern in self.proven_by)


QUICK_GATE: tuple[ChecklistEntry, ...] = (
    ChecklistEntry(
        "contract",
        "Contract chosen (API/Webhook/File/EDI) with source of truth & versioning",
        (r"\bversion", r"\bcontract\b", r"\bschema\b"),
    ),
    ChecklistEntry(
        "auth",
        "Auth configured (OAuth2/mTLS/HMAC/SSH); keys rotated; IP allowlist as needed",
        (
            r"\bauth",
            r"\b401\b",
            r"\b403\b",
            r"signature",
            r"\btoken\b",
            r"\bhmac\b",
            r"\bmtls\b",
            r"credential",
            r"\bkey rotation",
        ),
    ),  # fmt: skip
    ChecklistEntry(
        "idempotency",
        "Idempotency + dedupe tables; replay endpoints/windows",
        (r"idempoten", r"duplicate", r"\bdedup", r"\breplay"),
    ),
    ChecklistEntry(
        "pagination",
        "Pagination & filtering contracts; invariants documented",
        (r"paginat", r"\bcursor\b", r"\bpage\b", r"\bfilter"),
    ),
    ChecklistEntry(
        "errors",
        "Error taxonomy mapped; decline/validation/policy codes aligned",
        (
            r"\berror",
            r"declin",
            r"validation",
            r"\b4\d\d\b",
            r"\b5\d\d\b",
            r"out of stock",
            r"reject",
        ),
    ),  # fmt: skip
    ChecklistEntry(
        "slas",
        "SLA/SLOs set per flow; dashboards & alerts per partner",
        (r"latency", r"\bsla\b", r"\bp9\d\b", r"uptime", r"probe"),
    ),
    ChecklistEntry(
        "batch",
        "Batch: atomic upload, checksum, manifest, control totals, ACKs",
        (
            r"\bbatch",
            r"\bfile\b",
            r"\bsftp\b",
            r"manifest",
            r"checksum",
            r"control total",
            r"\back\b",
        ),
    ),  # fmt: skip
    ChecklistEntry(
        "edi",
        "EDI: control numbers, 997/MDN, partner profile stored",
        (r"\bedi\b", r"\bx12\b", r"\b997\b", r"\bmdn\b", r"control number", r"\bas2\b"),
    ),
    ChecklistEntry(
        "privacy",
        "Privacy: PII fields flagged; logs redacted; region pinning respected",
        (r"privacy", r"\bpii\b", r"redact", r"\bgdpr\b", r"personal data"),
    ),
    ChecklistEntry(
        "cutover",
        "Cutover/backfill plan with dual-run and rollback",
        (r"cutover", r"backfill", r"rollback", r"dual.run"),
    ),
    ChecklistEntry(
        "certification-plan",
        "Certification plan: MAE scenarios + evidence artifacts",
        (),
    ),
)

BY_KEY = {entry.key: entry for entry in QUICK_GATE}
