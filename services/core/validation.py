"""Checks for the identifiers the domain depends on; each refusal says what was expected."""

from __future__ import annotations

import re

from services.core import programs
from services.core.display import UNSAFE, safe_text
from services.core.errors import InvalidInput

LANGUAGES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "zh_Hans": "Chinese (Simplified, Mandarin)",
    "vi": "Vietnamese",
    "fil": "Filipino",
    "ko": "Korean",
    "zh_Hant": "Chinese (Traditional, Cantonese)",
    "ar": "Arabic",
}
"""Languages the console writes to families in (canonical codes from DESIGN.md): English and the
languages ETS translates the SSR into (issue 23)."""

GRADES = programs.tested_grades()
"""Grades some CAASPP or ELPAC summative test is given in (``services.core.programs``): TK to 12."""

_TEN_DIGITS = re.compile(r"[0-9]{10}")
_SEVEN_DIGITS = re.compile(r"[0-9]{7}")
_FOURTEEN_DIGITS = re.compile(r"[0-9]{14}")


def ssid(value: str) -> str:
    """A Statewide Student Identifier: exactly ten digits."""
    text = str(value).strip()
    if not _TEN_DIGITS.fullmatch(text):
        raise InvalidInput(f"SSID must be exactly 10 digits, got {text!r}")
    return text


def lea_cds(value: str) -> str:
    """An LEA's CDS code: 2-digit county + 5-digit district."""
    text = str(value).strip()
    if not _SEVEN_DIGITS.fullmatch(text):
        raise InvalidInput(f"LEA CDS code must be exactly 7 digits, got {text!r}")
    return text


def school_cds(value: str, lea_code: str | None = None) -> str:
    """A school's CDS code: 14 digits whose first 7 are its LEA's code."""
    text = str(value).strip()
    if not _FOURTEEN_DIGITS.fullmatch(text):
        raise InvalidInput(f"School CDS code must be exactly 14 digits, got {text!r}")
    if lea_code is not None and not text.startswith(lea_code):
        raise InvalidInput(f"School CDS code {text} does not belong to LEA {lea_code}")
    return text


def language(value: str) -> str:
    """A supported family language code, with common spellings mapped to the canonical one."""
    text = str(value).strip()
    canonical = _LANGUAGE_ALIASES.get(text.lower().replace("-", "_"))
    if canonical is None:
        known = ", ".join(LANGUAGES)
        raise InvalidInput(f"Unknown language {text!r}; expected one of {known}")
    return canonical


def plain_text(value: str, what: str) -> str:
    """Operator-typed text (a reason, a name, an address) with its spaces tidied; refuses control
    characters and bidi overrides, which would reach other people's terminals from the database."""
    text = str(value or "")
    bad = next((m.group() for m in UNSAFE.finditer(text) if m.group() not in "\t\n\r"), None)
    if bad is not None:
        raise InvalidInput(
            f"{what[:1].upper()}{what[1:]} contains a control character ({safe_text(bad)}); "
            "type plain text"
        )
    return " ".join(text.split())


def grade(value: int | str) -> int:
    """A tested grade, as a number (kindergarten 0, TK -1); SIS spellings KG, K, TK and 05 accepted."""
    text = str(value).strip().upper()
    try:
        number = programs.GRADE_WORDS[text] if text in programs.GRADE_WORDS else int(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"Grade must be a number, K or TK, got {value!r}") from None
    if number not in GRADES:
        known = ", ".join(map(programs.grade_label, GRADES))
        raise InvalidInput(f"Grade {number} is not a tested grade ({known})")
    return number


_LANGUAGE_ALIASES = {code.lower(): code for code in LANGUAGES} | {
    "zh": "zh_Hans",
    "zh_cn": "zh_Hans",
    "cmn": "zh_Hans",
    "zh_tw": "zh_Hant",
    "zh_hk": "zh_Hant",
    "yue": "zh_Hant",
    "kor": "ko",
    "ara": "ar",
    "tl": "fil",
    "english": "en",
    "spanish": "es",
    "mandarin": "zh_Hans",
    "vietnamese": "vi",
    "filipino": "fil",
    "tagalog": "fil",
    "korean": "ko",
    "cantonese": "zh_Hant",
    "arabic": "ar",
}
