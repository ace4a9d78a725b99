"""CALPADS codes an SIS export carries: home language and English language acquisition status.

Home language codes come in two forms and both are accepted (/work/wt/FACTS.md, "Roster"):
- the legacy two-digit codes: 00 English, 01 Spanish, 02 Vietnamese, 03 Cantonese, 04 Korean,
  05 Filipino (Pilipino or Tagalog), 07 Mandarin (Putonghua), 11 Arabic, 99 other non-English
  (CDE ELPAC demographics file layout, "Primary Language (CALPADS Primary Language Code)");
- since the 2023-24 rollover (CALPADS Update FLASH #256, July 2023), three-character ISO 639-2
  codes plus some ISO 639-3 (eng, spa, vie, kor, fil/tgl, ara; Mandarin cmn and Cantonese yue;
  "mis" for an uncoded language).

A code maps to the family language the console writes in (``validation.LANGUAGES``) where there is
one; any other well-formed code is kept as given, shown, and the family is written to in English
(counted as falling back, ``services.roster.fallback``). The spoken Chinese language chooses the
script: Mandarin (07, cmn) families read Simplified Chinese, Cantonese (03, yue) families
Traditional Chinese, as ETS's Chinese SSR translations are offered for both (issue 23). The
two-digit codes are those CDE lists in the ELPAC demographics file layout (Korean 4, Cantonese 3,
Arabic 11: cde.ca.gov/ta/tg/ep/elpacdemodatafile.asp).
"""

from __future__ import annotations

import re

from services.core.errors import InvalidInput

TO_FAMILY_LANGUAGE: dict[str, str] = {
    "00": "en",
    "eng": "en",
    "01": "es",
    "spa": "es",
    "02": "vi",
    "vie": "vi",
    "05": "fil",
    "fil": "fil",
    "tgl": "fil",
    "07": "zh_Hans",
    "cmn": "zh_Hans",
    "03": "zh_Hant",
    "yue": "zh_Hant",
    "04": "ko",
    "kor": "ko",
    "11": "ar",
    "ara": "ar",
}
"""CALPADS home language codes the console has parent messages for."""
ENGLISH = ("00", "eng")
"""CALPADS home language codes of English."""

_CODE = re.compile(r"[0-9]{2}|[a-z]{3}")

ELAS = ("EO", "IFEP", "EL", "RFEP", "TBD", "ADEL")
"""CALPADS English Language Acquisition Status codes (FACTS.md: EO, IFEP, EL, RFEP, TBD; ADEL)."""


def home_language(value: str) -> str | None:
    """A CALPADS language code, normalised (two digits or three lower-case letters); None if empty."""
    text = value.strip().lower()
    if not text:
        return None
    if text.isdigit() and len(text) == 1:
        text = f"0{text}"  # spreadsheets drop the leading zero of "07"
    if not _CODE.fullmatch(text):
        raise InvalidInput(
            f"home language {value.strip()!r} is not a CALPADS language code "
            "(two digits such as 01, or three letters such as spa)"
        )
    return text


def family_language(code: str | None) -> str | None:
    """The console language for a CALPADS code, or None when the console has none for it."""
    return TO_FAMILY_LANGUAGE.get(code) if code else None


def elas(value: str) -> str | None:
    """An English Language Acquisition Status code, upper-cased; None if empty."""
    text = value.strip().upper()
    if not text:
        return None
    if text not in ELAS:
        raise InvalidInput(
            f"English language acquisition status {value.strip()!r} is not one of {', '.join(ELAS)}"
        )
    return text
