"""Identifiers are refused with a sentence saying what was expected, never a traceback."""

from __future__ import annotations

import pytest

from services.core import validation
from services.core.errors import InvalidInput


@pytest.mark.parametrize("value", ["1234567890", " 0000000001 "])
def test_ssid_accepts_ten_digits(value: str) -> None:
    assert validation.ssid(value) == value.strip()


@pytest.mark.parametrize(
    "value", ["123456789", "12345678901", "12345abcde", "", "１２３４５６７８９０"]
)
def test_ssid_refuses_anything_else(value: str) -> None:
    with pytest.raises(InvalidInput, match="SSID must be exactly 10 digits"):
        validation.ssid(value)


def test_cds_codes() -> None:
    assert validation.lea_cds("1964733") == "1964733"
    assert validation.school_cds("19647330000001", "1964733") == "19647330000001"
    with pytest.raises(InvalidInput, match="LEA CDS code must be exactly 7 digits"):
        validation.lea_cds("196473")
    with pytest.raises(InvalidInput, match="School CDS code must be exactly 14 digits"):
        validation.school_cds("1964733000000")
    with pytest.raises(InvalidInput, match="does not belong to LEA 1964733"):
        validation.school_cds("01611190000001", "1964733")


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("en", "en"), ("ES", "es"), ("zh-Hans", "zh_Hans"), ("zh_CN", "zh_Hans"), ("Tagalog", "fil")],
)
def test_language_aliases(value: str, canonical: str) -> None:
    assert validation.language(value) == canonical


def test_unknown_language_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"Unknown language 'klingon'; expected one of en, es"):
        validation.language("klingon")


def test_grades() -> None:
    assert validation.grade("11") == 11
    assert [validation.grade(g) for g in ("TK", "kg", "K", "09", 10, "12")] == [-1, 0, 0, 9, 10, 12]
    with pytest.raises(InvalidInput, match=r"Grade 13 is not a tested grade \(TK, K, 1, 2, 3, "):
        validation.grade(13)
    with pytest.raises(InvalidInput, match="Grade must be a number"):
        validation.grade("ten")
