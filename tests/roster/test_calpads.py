"""CALPADS home language codes map to the languages ETS translates SSRs into; the spoken Chinese
language chooses the script."""

from __future__ import annotations

import pytest

from services.core import validation
from services.roster import calpads


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("01", "es"),
        ("spa", "es"),
        ("02", "vi"),
        ("05", "fil"),
        ("tgl", "fil"),
        ("04", "ko"),
        ("kor", "ko"),
        ("07", "zh_Hans"),  # Mandarin (Putonghua): Simplified
        ("cmn", "zh_Hans"),
        ("03", "zh_Hant"),  # Cantonese: Traditional
        ("yue", "zh_Hant"),
        ("11", "ar"),
        ("ara", "ar"),
    ],
)
def test_codes_map_to_the_family_language(code: str, language: str) -> None:
    assert calpads.family_language(calpads.home_language(code)) == language
    assert language in validation.LANGUAGES


@pytest.mark.parametrize("code", ["23", "hmn", "99", "mis", "pan"])
def test_a_language_without_a_catalog_has_none(code: str) -> None:
    assert calpads.family_language(calpads.home_language(code)) is None


@pytest.mark.parametrize(
    ("given", "language"),
    [("Cantonese", "zh_Hant"), ("zh-TW", "zh_Hant"), ("ara", "ar"), ("ko", "ko")],
)
def test_typed_language_names_are_accepted(given: str, language: str) -> None:
    assert validation.language(given) == language
