"""The parent-facing catalogs: complete in all five languages, same placeholders, valid for msgfmt,
compiled .mo files current, and English as the fallback."""

from __future__ import annotations

import re
import subprocess

import pytest
from babel.messages.pofile import read_po

from services.core.validation import LANGUAGES
from services.delivery import messages

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalog(language: str):  # type: ignore[no-untyped-def]
    path = messages.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    entries = {m.id: m for m in catalog(language) if m.id}
    assert set(entries) == set(messages.ALL_MESSAGES), "catalog out of date: run `make catalogs`"
    for message_id, entry in entries.items():
        assert entry.string.strip(), f"{language}: untranslated {message_id[:40]!r}"
        assert "fuzzy" not in entry.flags
        assert sorted(PLACEHOLDER.findall(entry.string)) == sorted(
            PLACEHOLDER.findall(message_id)
        ), f"{language}: placeholders differ in {message_id[:40]!r}"
        if language != "en":
            assert entry.string != message_id, f"{language}: left in English: {message_id[:40]!r}"


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
        if entry.id:
            assert translations.gettext(entry.id) == entry.string, "run `make catalogs`"


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_rendered_messages_keep_the_password_on_its_own_line(language: str) -> None:
    password = "toss-fit-coyote-raven-tooth-grid"
    text = messages.password_message(
        language, guardian_name="Ana Lee", lea_name="Sierra Vista USD", password=password
    )
    assert f"\n    {password}\n" in text.body
    assert "Ana Lee" in text.body and "Sierra Vista USD" in text.subject
    document = messages.document_message(
        language, guardian_name="Ana Lee", lea_name="Sierra Vista USD", count=2
    )
    assert password not in document.body and "2" in document.body
    assert password in messages.password_sms(language, lea_name="X", password=password)


def test_unknown_language_falls_back_to_english() -> None:
    english = messages.document_message("en", guardian_name="A", lea_name="B", count=1)
    korean = messages.document_message("ko", guardian_name="A", lea_name="B", count=1)
    assert korean.body == english.body and korean.language == "en"
    spanish = messages.document_message("es", guardian_name="A", lea_name="B", count=1)
    assert spanish.body != english.body and spanish.language == "es"
