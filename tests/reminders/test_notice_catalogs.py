"""Coordinator notices through gettext catalogs like the parent messages: every notices catalog
complete, placeholder-correct for msgfmt, and a language without one written in English."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest
from babel.messages.pofile import read_po

from services.delivery import messages
from services.reminders import mail
from services.reminders.ledger import Notice, NoticeKind

NOTICE_LANGUAGES = ["en", "es", "vi", "fil", "zh_Hans"]


def path(language: str):  # type: ignore[no-untyped-def]
    return messages.LOCALE_DIR / language / "LC_MESSAGES" / "notices.po"


@pytest.mark.parametrize("language", NOTICE_LANGUAGES)
def test_every_notice_text_is_translated_and_msgfmt_checks_it(language: str) -> None:
    with path(language).open("rb") as handle:
        catalog = read_po(handle, locale=language)
    ids = {m.id for m in catalog if m.id}
    assert ids == set(mail.NOTICE_TEXTS.values()), "run `make catalogs`"
    assert all(m.string for m in catalog if m.id)
    result = subprocess.run(
        ["msgfmt", "--check", "-o", "/dev/null", str(path(language))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def notice(language: str) -> Notice:
    return Notice(
        kind=NoticeKind.CREDENTIAL_EXPIRY,
        subject="credential:1",
        event_on=date(2026, 9, 1),
        offset=3,
        recipient="caaspp",
        lea_id=1,
        due_on=date(2026, 8, 29),
        email="c@example.org",
        language=language,
    )


def test_a_spanish_coordinator_reads_spanish() -> None:
    text = mail.render(notice("es"), "Sierra Vista USD")
    assert text.subject.startswith("La credencial del proveedor SIS de Sierra Vista USD vence")
    assert "septiembre" in text.subject


@pytest.mark.parametrize("language", ["ko", "zh_Hant", "ar"])
def test_a_language_without_notice_texts_reads_english_dates_included(language: str) -> None:
    text = mail.render(notice(language), "Sierra Vista USD")
    assert text.subject.startswith("SIS-vendor credential for Sierra Vista USD expires in 3 days")
    assert "September" in text.subject
