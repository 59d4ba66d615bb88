"""Evidence models: the audit log (``audit``) and certifications with their checklist, waivers,
evidence bundles and signing keys (``certification``)."""

from __future__ import annotations

from evidence.models.audit import AuditEvent
from evidence.models.certification import (
    Certification,
    CertificationRun,
    ChecklistItem,
    EvidenceBundle,
    SigningKey,
    Waiver,
)

__all__ = [
    "AuditEvent",
    "Certification",
    "CertificationRun",
    "ChecklistItem",
    "EvidenceBundle",
    "SigningKey",
    "Waiver",
]
