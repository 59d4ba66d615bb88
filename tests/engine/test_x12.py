"""X12: interchanges built with their envelopes, read back with every envelope rule checked and
each problem located (segment number and element), and 997 functional acknowledgements."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certification.engine import x12

WHEN = datetime(2025, 9, 16, 2, 0, tzinfo=UTC)
ORDER = {"po": "PO-1", "date": "20250916",
         "lines": [{"sku": "WIDGET-001", "quantity": 10, "price": 9.99},
                   {"sku": "WIDGET-002", "quantity": 2, "price": 14.99}]}  # fmt: skip


def _interchange(**kw: int) -> str:
    numbers = {"interchange_control": 17, "group_control": 5, "first_set_control": 1, **kw}
    return x12.build([("850", x12.purchase_order(ORDER))], when=WHEN, **numbers)


def test_a_built_850_reads_back_valid_with_its_control_numbers() -> None:
    text = _interchange()
    assert len(text.split("~")[0]) == 105  # ISA is fixed width
    parsed = x12.parse(text)
    assert parsed.valid, parsed.errors
    assert (parsed.control, parsed.groups[0].control, parsed.groups[0].sets[0].control) == (
        "000000017", "5", "0001",
    )  # fmt: skip
    assert parsed.groups[0].functional_id == "PO"
    assert [s[0] for s in parsed.groups[0].sets[0].segments] == ["BEG", "PO1", "PO1", "CTT"]


def _broken(old: str, new: str) -> list[str]:
    return x12.parse(_interchange().replace(old, new, 1)).errors


def test_a_wrong_segment_count_is_located() -> None:
    assert _broken("SE*6*0001", "SE*9*0001") == [
        "segment 8 (SE), element 1: says 9 segments, the set has 6"
    ]


def test_set_header_and_trailer_control_numbers_must_agree() -> None:
    assert _broken("SE*6*0001", "SE*6*0002") == [
        "segment 8 (SE), element 2: control number '0002' is not the ST's '0001'"
    ]


def test_group_and_interchange_trailers_are_checked() -> None:
    assert _broken("GE*1*5", "GE*2*6") == [
        "segment 9 (GE), element 1: says 2 sets, the group has 1",
        "segment 9 (GE), element 2: control number '6' is not the GS's '5'",
    ]
    assert _broken("IEA*1*000000017", "IEA*1*000000018") == [
        "segment 10 (IEA), element 2: control number '000000018' is not the ISA's '000000017'"
    ]


def test_a_missing_trailer_is_reported_not_a_crash() -> None:
    text = _interchange()
    assert x12.parse(text[: text.index("IEA")]).errors == ["segment 9: the interchange has no IEA"]


def test_text_that_is_no_interchange_is_an_error_naming_the_segment() -> None:
    with pytest.raises(x12.X12Error, match="segment 1: an interchange starts with"):
        x12.parse("GS*PO*A*B~")


def test_a_997_accepting_everything_has_no_rejection_reason() -> None:
    ack = x12.functional_ack(x12.parse(_interchange()), interchange_control=3)
    read = x12.read_functional_ack(x12.parse(ack))
    (group,) = read["groups"]
    assert group["ak9"]["code"] == "A" and group["sets"][0]["code"] == "A"
    assert x12.rejection_reason(read) == ""


def test_a_997_rejecting_a_set_says_why_with_its_codes() -> None:
    ack = x12.functional_ack(
        x12.parse(_interchange()), rejected={"0001": "23"}, interchange_control=3
    )
    read = x12.read_functional_ack(x12.parse(ack))
    assert x12.rejection_reason(read) == (
        "AK5 R for set 850 0001: transaction set control number not unique within the "
        "functional group; AK9 R (rejected): 0 of 1 sets accepted"
    )
