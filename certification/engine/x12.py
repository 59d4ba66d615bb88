"""ANSI X12: building interchanges, reading them back with located errors, and 997s.

No maintained library builds and validates supply-chain sets with 997s (``ansi-x12`` only
tokenizes), so this is a small one of our own, by the X12 envelope rules:

- ``ISA`` is fixed-width (106 characters): its 4th character is the element separator, its
  16th element the component separator, and the character after it the segment terminator.
- ``IEA02`` = ``ISA13`` and ``IEA01`` = the number of groups; ``GE02`` = ``GS06`` and
  ``GE01`` = the number of sets in the group; ``SE02`` = ``ST02`` and ``SE01`` = the segments
  from ``ST`` to ``SE`` inclusive.

Every problem found is reported with where it is: ``segment 7 (SE), element 1: …``. Pure
Python, no Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The functional identifier code (GS01) of each transaction set this product exchanges.
FUNCTIONAL_IDS = {"850": "PO", "855": "PR", "856": "SH", "810": "IN", "846": "IB", "997": "FA"}
AK5_CODES = {
    "A": "accepted",
    "E": "accepted, but errors were noted",
    "M": "rejected, message authentication code failed",
    "P": "partially accepted",
    "R": "rejected",
    "W": "rejected, assurance failed validity tests",
    "X": "rejected, content could not be analysed after decryption",
}
AK5_ERRORS = {
    "1": "transaction set not supported",
    "2": "transaction set trailer missing",
    "3": "transaction set control number in header and trailer do not match",
    "4": "number of included segments does not match actual count",
    "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number",
    "23": "transaction set control number not unique within the functional group",
}
AK9_ERRORS = {
    "1": "functional group not supported",
    "2": "functional group version not supported",
    "3": "functional group trailer missing",
    "4": "group control number in the header and trailer do not agree",
    "5": "number of included transaction sets does not match actual count",
    "6": "group control number violates syntax",
    "19": "functional group control number not unique within interchange",
}


class X12Error(ValueError):
    """An interchange that cannot be read at all (the first problem, located)."""


@dataclass
class Envelope:
    sender_qualifier: str = "ZZ"
    sender: str = "CERTDASH"
    receiver_qualifier: str = "ZZ"
    receiver: str = "PARTNER"
    usage: str = "T"  # T test, P production
    version: str = "00401"
    element: str = "*"
    component: str = ">"
    terminator: str = "~"


@dataclass
class TransactionSet:
    set_id: str
    control: str
    segments: list[list[str]]  # the body, between ST and SE, each [id, element1, ...]


@dataclass
class Group:
    functional_id: str
    control: str
    sender: str
    receiver: str
    sets: list[TransactionSet] = field(default_factory=list)
    version: str = "004010"


@dataclass
class Interchange:
    control: str
    sender: str
    receiver: str
    usage: str
    groups: list[Group]
    segments: int
    errors: list[str]

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "errors": list(self.errors),
            "control": self.control,
            "sender": self.sender,
            "receiver": self.receiver,
            "usage": self.usage,
            "segments": self.segments,
            "groups": [
                {
                    "functionalId": g.functional_id,
                    "control": g.control,
                    "sender": g.sender,
                    "receiver": g.receiver,
                    "sets": [
                        {"id": s.set_id, "control": s.control, "segments": s.segments}
                        for s in g.sets
                    ],
                }
                for g in self.groups
            ],
        }


def _pad(value: str, width: int) -> str:
    return value[:width].ljust(width)


def build(
    sets: list[tuple[str, list[list[str]]]],
    *,
    interchange_control: int,
    group_control: int,
    first_set_control: int,
    envelope: Envelope | None = None,
    when: datetime | None = None,
) -> str:
    """An interchange with one functional group holding ``sets`` ((set id, body segments)):
    envelopes, control numbers and counts filled in. All sets share a functional id."""
    env = envelope or Envelope()
    when = when or datetime.now(UTC)
    e, t = env.element, env.terminator
    if not sets:
        raise ValueError("an interchange needs at least one transaction set")
    functional = FUNCTIONAL_IDS.get(sets[0][0], "XX")
    isa = e.join(
        [
            "ISA", "00", " " * 10, "00", " " * 10,
            _pad(env.sender_qualifier, 2), _pad(env.sender, 15),
            _pad(env.receiver_qualifier, 2), _pad(env.receiver, 15),
            when.strftime("%y%m%d"), when.strftime("%H%M"), "U", env.version,
            f"{interchange_control:09d}", "0", env.usage, env.component,
        ]
    )  # fmt: skip
    lines = [isa]
    lines.append(
        e.join(
            ["GS", functional, env.sender.strip(), env.receiver.strip(), when.strftime("%Y%m%d"),
             when.strftime("%H%M"), str(group_control), "X", "004010"]
        )
    )  # fmt: skip
    for offset, (set_id, body) in enumerate(sets):
        control = f"{first_set_control + offset:04d}"
        lines.append(e.join(["ST", set_id, control]))
        lines.extend(e.join([str(x) for x in segment]) for segment in body)
        lines.append(e.join(["SE", str(len(body) + 2), control]))
    lines.append(e.join(["GE", str(len(sets)), str(group_control)]))
    lines.append(e.join(["IEA", "1", f"{interchange_control:09d}"]))
    return t.join(lines) + t


def purchase_order(order: dict[str, Any]) -> list[list[str]]:
    """An 850's body from ``{po, date (YYYYMMDD), lines: [{sku, quantity, price, unit}]}``."""
    lines = order.get("lines") or []
    body = [["BEG", "00", "SA", str(order.get("po", "")), "", str(order.get("date", ""))]]
    for number, line in enumerate(lines, start=1):
        body.append(
            ["PO1", str(number), str(line.get("quantity", "")), str(line.get("unit", "EA")),
             str(line.get("price", "")), "", "VP", str(line.get("sku", ""))]
        )  # fmt: skip
    body.append(["CTT", str(len(lines))])
    return body


def parse(text: str) -> Interchange:
    """Read an interchange, checking its envelopes; problems go to ``errors``, located. Raises
    ``X12Error`` only when it cannot be read at all (no ISA)."""
    text = text.lstrip("\ufeff").lstrip()
    if not text.startswith("ISA") or len(text) < 106:
        raise X12Error("segment 1: an interchange starts with a 106-character ISA segment")
    element, component, terminator = text[3], text[104], text[105]
    raw = [s.strip("\r\n") for s in text.split(terminator)]
    if raw and raw[-1] == "":
        raw.pop()
    segments = [s.split(element) for s in raw]
    errors: list[str] = []
    isa = segments[0]
    if len(isa) != 17:
        errors.append(f"segment 1 (ISA): {len(isa) - 1} elements, ISA has 16")
        isa = (isa + [""] * 17)[:17]
    if component == element or terminator in (element, component):
        errors.append("segment 1 (ISA): separators must differ")
    interchange = Interchange(
        control=isa[13], sender=isa[6].strip(), receiver=isa[8].strip(), usage=isa[15],
        groups=[], segments=len(segments), errors=errors,
    )  # fmt: skip
    if not isa[13].isdigit() or len(isa[13]) != 9:
        errors.append(f"segment 1 (ISA), element 13: control number {isa[13]!r} is not 9 digits")
    group: Group | None = None
    current: TransactionSet | None = None
    set_start = 0
    sets_in_group = 0
    for number, segment in enumerate(segments[1:], start=2):
        tag = segment[0]
        where = f"segment {number} ({tag})"
        if tag == "GS":
            if group is not None:
                errors.append(f"{where}: GS before the previous group's GE")
            group = Group(
                functional_id=_get(segment, 1), control=_get(segment, 6),
                sender=_get(segment, 2), receiver=_get(segment, 3), version=_get(segment, 8),
            )  # fmt: skip
            interchange.groups.append(group)
            sets_in_group = 0
        elif tag == "ST":
            if group is None:
                errors.append(f"{where}: ST outside a functional group")
            if current is not None:
                errors.append(f"{where}: ST before the previous set's SE")
            current = TransactionSet(set_id=_get(segment, 1), control=_get(segment, 2), segments=[])
            set_start = number
            if group is not None:
                group.sets.append(current)
                sets_in_group += 1
        elif tag == "SE":
            if current is None:
                errors.append(f"{where}: SE without ST")
                continue
            count = number - set_start + 1
            if _get(segment, 1) != str(count):
                errors.append(
                    f"{where}, element 1: says {_get(segment, 1)} segments, the set has {count}"
                )
            if _get(segment, 2) != current.control:
                errors.append(
                    f"{where}, element 2: control number {_get(segment, 2)!r} is not the ST's "
                    f"{current.control!r}"
                )
            current = None
        elif tag == "GE":
            if group is None:
                errors.append(f"{where}: GE without GS")
                continue
            if current is not None:
                errors.append(f"{where}: GE before the set's SE")
                current = None
            if _get(segment, 1) != str(sets_in_group):
                errors.append(
                    f"{where}, element 1: says {_get(segment, 1)} sets, the group has "
                    f"{sets_in_group}"
                )
            if _get(segment, 2) != group.control:
                errors.append(
                    f"{where}, element 2: control number {_get(segment, 2)!r} is not the GS's "
                    f"{group.control!r}"
                )
            group = None
        elif tag == "IEA":
            if group is not None:
                errors.append(f"{where}: IEA before the group's GE")
            if _get(segment, 1) != str(len(interchange.groups)):
                errors.append(
                    f"{where}, element 1: says {_get(segment, 1)} groups, the interchange has "
                    f"{len(interchange.groups)}"
                )
            if _get(segment, 2) != isa[13]:
                errors.append(
                    f"{where}, element 2: control number {_get(segment, 2)!r} is not the ISA's "
                    f"{isa[13]!r}"
                )
            if number != len(segments):
                errors.append(f"{where}: segments after IEA")
            break
        elif current is not None:
            current.segments.append(segment)
        else:
            errors.append(f"{where}: outside a transaction set")
    else:
        errors.append(f"segment {len(segments)}: the interchange has no IEA")
    return interchange


def _get(segment: list[str], index: int) -> str:
    return segment[index] if index < len(segment) else ""


def functional_ack(
    received: Interchange,
    *,
    rejected: dict[str, str] | None = None,
    interchange_control: int,
    envelope: Envelope | None = None,
) -> str:
    """A 997 for every group of ``received``: each set accepted (``AK5*A``) unless named in
    ``rejected`` (set control -> AK5 error code, "" for none), with AK9 summing up."""
    rejected = rejected or {}
    body_sets: list[tuple[str, list[list[str]]]] = []
    for group in received.groups:
        body: list[list[str]] = [["AK1", group.functional_id, group.control]]
        accepted = 0
        for ts in group.sets:
            body.append(["AK2", ts.set_id, ts.control])
            if ts.control in rejected:
                body.append(["AK5", "R"] + ([rejected[ts.control]] if rejected[ts.control] else []))
            else:
                body.append(["AK5", "A"])
                accepted += 1
        n = len(group.sets)
        code = "A" if accepted == n else ("P" if accepted else "R")
        body.append(["AK9", code, str(n), str(n), str(accepted)])
        body_sets.append(("997", body))
    env = envelope or Envelope()
    return build(
        body_sets,
        interchange_control=interchange_control,
        group_control=interchange_control,
        first_set_control=1,
        envelope=env,
    )


def read_functional_ack(interchange: Interchange) -> dict[str, Any]:
    """What a 997 says: per group ``ak1`` and ``ak9`` (code, included, received, accepted,
    meaning), per set ``set``, ``control``, ``code``, ``meaning`` and ``errors``."""
    groups = []
    for group in interchange.groups:
        for ts in group.sets:
            if ts.set_id != "997":
                continue
            current: dict[str, Any] | None = None
            sets: list[dict[str, Any]] = []
            ak1: dict[str, str] = {}
            ak9: dict[str, Any] = {}
            for segment in ts.segments:
                tag = segment[0]
                if tag == "AK1":
                    ak1 = {"functionalId": _get(segment, 1), "control": _get(segment, 2)}
                elif tag == "AK2":
                    current = {"set": _get(segment, 1), "control": _get(segment, 2), "errors": []}
                    sets.append(current)
                elif tag == "AK5" and current is not None:
                    code = _get(segment, 1)
                    current["code"] = code
                    current["meaning"] = AK5_CODES.get(code, f"unknown code {code!r}")
                    current["errors"] = [
                        AK5_ERRORS.get(c, f"error code {c}") for c in segment[2:] if c
                    ]
                elif tag == "AK9":
                    code = _get(segment, 1)
                    ak9 = {
                        "code": code,
                        "meaning": AK5_CODES.get(code, f"unknown code {code!r}"),
                        "included": _int(_get(segment, 2)),
                        "received": _int(_get(segment, 3)),
                        "accepted": _int(_get(segment, 4)),
                        "errors": [AK9_ERRORS.get(c, f"error code {c}") for c in segment[5:] if c],
                    }
            groups.append({"ak1": ak1, "ak9": ak9, "sets": sets})
    return {"groups": groups}


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def rejection_reason(ack: dict[str, Any]) -> str:
    """Why a 997 does not accept everything, or "" when it does. Acceptance must be stated:
    a 997 with no group, a group with no AK9, an AK2 with no AK5 or an AK9 whose counts do not
    add up (``A`` with fewer sets accepted than included) is not an acceptance."""
    reasons = []
    groups = ack.get("groups", [])
    if not groups:
        return "the 997 acknowledges no functional group (no AK1)"
    for group in groups:
        for ts in group.get("sets", []):
            if "code" not in ts:
                reasons.append(f"AK2 for set {ts.get('set')} {ts.get('control')} has no AK5")
            elif ts.get("code") not in ("A", "E"):
                detail = "; ".join(ts.get("errors") or []) or ts.get("meaning", "")
                reasons.append(
                    f"AK5 {ts.get('code')} for set {ts.get('set')} {ts.get('control')}: {detail}"
                )
        ak9 = group.get("ak9") or {}
        control = (group.get("ak1") or {}).get("control", "")
        if not ak9:
            reasons.append(f"no AK9 for group {control}: the 997 states no acceptance")
        elif ak9.get("code") not in ("A", "E"):
            reasons.append(
                f"AK9 {ak9.get('code')} ({ak9.get('meaning')}): {ak9.get('accepted')} of "
                f"{ak9.get('included')} sets accepted"
                + (f"; {'; '.join(ak9['errors'])}" if ak9.get("errors") else "")
            )
        elif (
            ak9.get("included") is None
            or ak9.get("accepted") is None
            or ak9["accepted"] < ak9["included"]
            or ak9["included"] < 1
        ):
            reasons.append(
                f"AK9 {ak9.get('code')} for group {control} says {ak9.get('accepted')} of "
                f"{ak9.get('included')} sets accepted: the counts do not state an acceptance"
            )
    return "; ".join(reasons)
