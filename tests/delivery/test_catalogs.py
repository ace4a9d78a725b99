"""The parent-facing catalogs: complete in all eight languages, same placeholders, valid for
msgfmt, compiled .mo files current, the SSR named as the glossary says, and English with a note in
the family's language where a message is missing."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from services.channels import cover_sheet
from services.core.validation import LANGUAGES
from services.delivery import messages

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
SEASON = messages.Season(2026)
GLOSSARY = tomllib.loads((messages.LOCALE_DIR / "glossary.toml").read_text(encoding="utf-8"))


def catalog(language: str):  # type: ignore[no-untyped-def]
    path = messages.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def forms(entry) -> list[str]:  # type: ignore[no-untyped-def]
    return list(entry.string) if isinstance(entry.string, tuple | list) else [entry.string]


def english(entry) -> list[str]:  # type: ignore[no-untyped-def]
    return list(entry.id) if isinstance(entry.id, tuple | list) else [entry.id]


def test_every_console_language_has_a_catalog() -> None:
    assert set(LANGUAGES) == {"en", "es", "vi", "fil", "ko", "zh_Hans", "zh_Hant", "ar"}
    for language in LANGUAGES:
        assert (messages.LOCALE_DIR / language / "LC_MESSAGES" / "messages.mo").is_file()


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    entries = {
        (m.id if isinstance(m.id, str) else tuple(m.id)): m for m in catalog(language) if m.id
    }
    expected = {*messages.ALL_MESSAGES, *cover_sheet.COVER_TEXTS}
    assert set(entries) == expected, "catalog out of date: run `make catalogs`"
    for message_id, entry in entries.items():
        wanted = sorted(set(PLACEHOLDER.findall(" ".join(english(entry)))))
        for text in forms(entry):
            assert text.strip(), f"{language}: untranslated {str(message_id)[:40]!r}"
            assert set(PLACEHOLDER.findall(text)) <= set(wanted), f"{language}: {text[:40]!r}"
            assert sorted(set(PLACEHOLDER.findall(text)) - {"count"}) == [
                w for w in wanted if w != "count"
            ], f"{language}: placeholders differ in {str(message_id)[:40]!r}"
        assert "fuzzy" not in entry.flags
        if language != "en":
            assert forms(entry) != english(entry), f"{language}: left in English: {message_id!r}"


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_msgfmt_check_passes(language: str) -> None:
    path = messages.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    result = subprocess.run(
        ["msgfmt", "--check", "-o", "/dev/null", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_compiled_catalog_matches_the_po_file(language: str) -> None:
    translations = messages.translations(language)
    for entry in catalog(language):
        if isinstance(entry.id, str) and entry.id:
            assert translations.gettext(entry.id) == entry.string, "run `make catalogs`"
        elif entry.id:
            assert translations.ngettext(entry.id[0], entry.id[1], 1) in entry.string


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_ssr_is_named_with_the_glossary_term(language: str) -> None:
    """Every text that names the Student Score Report in English names it with the glossary's
    term (CDE's parent-guide wording) in the translation: one term per language, no synonyms."""
    terms = GLOSSARY["ssr"][language]
    accepted = [terms["term"], *terms.get("forms", [])]
    for entry in catalog(language):
        if not entry.id or "Student Score Report" not in " ".join(english(entry)):
            continue
        for text in forms(entry):
            assert any(term in text for term in accepted), f"{language}: {text[:60]!r}"
    for avoided in terms.get("avoid", []):
        assert all(avoided not in " ".join(forms(e)) for e in catalog(language) if e.id), avoided


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_rendered_messages_keep_the_password_on_its_own_line(language: str) -> None:
    password = "toss-fit-coyote-raven-tooth-grid"
    text = messages.password_message(
        language,
        guardian_name="Ana Lee",
        lea_name="Sierra Vista USD",
        password=password,
        season=SEASON,
    )
    assert f"\n    {password}\n" in text.body
    assert "Ana Lee" in text.body and "Sierra Vista USD" in text.subject
    assert "2025–26" in text.body and not text.fell_back
    document = messages.document_message(
        language, guardian_name="Ana Lee", lea_name="Sierra Vista USD", count=2, season=SEASON
    )
    assert password not in document.body and "2" in document.body
    assert "CAASPP" in document.body and "ELPAC" in document.body and "2025–26" in document.body
    assert password in messages.password_sms(language, lea_name="X", password=password)


@pytest.mark.parametrize("language", ["en", "es", "fil"])
def test_subjects_follow_the_number_of_reports(language: str) -> None:
    one, two = (
        messages.document_message(
            language, guardian_name="A", lea_name="B", count=count, season=SEASON
        )
        for count in (1, 2)
    )
    assert one.subject != two.subject and one.body != two.body


def test_the_tests_named_are_the_batchs_program() -> None:
    elpac = messages.document_message(
        "es", guardian_name="A", lea_name="B", count=1, season=messages.Season(2026, "ELPAC")
    )
    assert "ELPAC" in elpac.body and "CAASPP" not in elpac.body
    both = messages.document_message("es", guardian_name="A", lea_name="B", count=1, season=SEASON)
    assert "CAASPP y ELPAC" in both.body  # joined by Babel in the family's language


def test_a_roster_language_without_a_catalog_is_written_to_in_english() -> None:
    english_text = messages.document_message(
        "en", guardian_name="A", lea_name="B", count=1, season=SEASON
    )
    hmong = messages.document_message(
        "hmn", guardian_name="A", lea_name="B", count=1, season=SEASON
    )
    assert hmong.body == english_text.body and hmong.language == "en"
    assert english_text.content_language == "en"


def test_a_missing_message_falls_back_to_english_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Korean catalog without the password email: that text goes out in English, preceded by
    the one-line note in Korean, and the message says it fell back (Content-Language: en)."""
    folder = tmp_path / "ko" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    korean = catalog("ko")
    del korean[messages.PASSWORD_BODY]
    with (folder / "messages.mo").open("wb") as handle:
        write_mo(handle, korean)
    monkeypatch.setattr(messages, "LOCALE_DIR", tmp_path)
    messages.translations.cache_clear()
    messages.strict_translations.cache_clear()
    try:
        text = messages.password_message(
            "ko", guardian_name="A", lea_name="B", password="a-b", season=SEASON
        )
        note = messages.translations("ko").gettext(messages.FALLBACK_NOTE)
        subject = messages.translations("ko").gettext(messages.PASSWORD_SUBJECT)
    finally:
        messages.translations.cache_clear()
        messages.strict_translations.cache_clear()
    assert text.fell_back and text.content_language == "en"
    assert note != messages.FALLBACK_NOTE
    assert text.body.startswith(f"{note}\n\nDear A,")
    assert text.subject == subject % {"lea_name": "B"}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_content_language_and_direction(language: str) -> None:
    text = messages.password_message(
        language, guardian_name="A", lea_name="B", password="a-b", season=SEASON
    )
    assert text.content_language == language.replace("_", "-")
    assert messages.direction(language) == ("rtl" if language == "ar" else "ltr")
