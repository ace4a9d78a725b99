"""SMS segment counting (GSM 7-bit and UCS-2) and the password SMS within two segments."""

from __future__ import annotations

import pytest

from services.core.validation import LANGUAGES
from services.delivery import messages
from services.delivery.sms_segments import MAX_SEGMENTS, is_gsm7, segments, units

LONG_LEA = "Sierra Vista Unified School District 1234"  # 40 characters
LONGEST_PASSWORD = "a" * 32  # services.delivery.packaging.MAX_PASSWORD_LENGTH


def test_gsm7_segment_boundaries() -> None:
    assert segments("a" * 160) == 1
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2
    assert segments("a" * 307) == 3


def test_extension_characters_count_twice() -> None:
    assert is_gsm7("€[]") and units("€[]") == 6
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2


def test_one_character_outside_gsm_makes_the_whole_text_ucs2() -> None:
    assert is_gsm7("contraseña") and not is_gsm7("electrónico")
    assert segments("a" * 69 + "ó") == 1
    assert segments("a" * 70 + "ó") == 2
    assert segments("가" * 134) == 2 and segments("가" * 135) == 3


def test_characters_beyond_the_bmp_take_two_ucs2_units() -> None:
    assert units("😀") == 2


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_password_sms_fits_two_segments(language: str) -> None:
    text = messages.password_sms(language, lea_name=LONG_LEA, password=LONGEST_PASSWORD)
    assert segments(text) <= MAX_SEGMENTS, f"{language}: {units(text)} units, {text!r}"
    assert LONGEST_PASSWORD in text


@pytest.mark.parametrize("language", ["en", "es", "fil"])
def test_latin_password_sms_stays_in_the_gsm_alphabet(language: str) -> None:
    """Spanish and Filipino need no UCS-2: 153 characters a segment rather than 67."""
    text = messages.password_sms(language, lea_name=LONG_LEA, password=LONGEST_PASSWORD)
    assert is_gsm7(text)
