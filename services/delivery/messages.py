"""The parent-facing messages of a secure delivery, in the guardian's language.

Texts are gettext catalogs in ``services/locale/<lang>/LC_MESSAGES/messages.po`` (``make catalogs``
extracts, updates and compiles them), one per language ETS translates the SSR into. A roster
language without a catalog is written to in English; a message missing from a family's catalog
goes out in English after a one-line note in the family's language (``FALLBACK_NOTE``) and says so
(``Rendered.fell_back``, ``Content-Language: en``). The
document email never names a student and never carries the password; the password message never
carries a document and names no student either, so neither message alone reveals a child's scores.
Placeholders are Python ``%(name)s`` fields, checked across languages by ``msgfmt --check``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.lists import format_list
from babel.support import NullTranslations, Translations

from services.core.validation import LANGUAGES

LOCALE_DIR = Path(__file__).parents[1] / "locale"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a message id for ``pybabel extract`` without translating it here."""
    return message


def Np_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with a plural form (``ngettext``) for ``pybabel extract``."""
    return singular, plural


# One PDF file holds all of a family's SSRs (services.delivery.packaging), so the texts speak of
# "the file" and count the reports in it; "your family" rather than "your child", since one
# guardian may have several children in a batch. Each message names the tests and school year.
DOCUMENT_SUBJECT = Np_(
    "%(lea_name)s: your family's Student Score Report, %(school_year)s",
    "%(lea_name)s: your family's Student Score Reports, %(school_year)s",
)
DOCUMENT_BODY = Np_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "Attached is %(count)s California Student Score Report, from the %(tests)s tests of the "
    "%(school_year)s school year, for your child enrolled in %(lea_name)s.\n"
    "\n"
    "To protect your family's privacy, the report is in one PDF file protected with a password. "
    "We will send you the password in a separate message. Please keep both messages private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the report, please contact the school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s",
    "Dear %(guardian_name)s,\n"
    "\n"
    "Attached are %(count)s California Student Score Reports from the %(tests)s tests of the "
    "%(school_year)s school year for your children enrolled in %(lea_name)s.\n"
    "\n"
    "To protect your family's privacy, all the reports are in one PDF file protected with a "
    "password. We will send you the password in a separate message. Please keep both messages "
    "private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the reports, please contact the school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s",
)
CORRECTED_SUBJECT = Np_(
    "%(lea_name)s: corrected Student Score Report, %(school_year)s",
    "%(lea_name)s: corrected Student Score Reports, %(school_year)s",
)
CORRECTED_BODY = Np_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "The state's testing contractor has corrected %(count)s California Student Score Report "
    "from the %(tests)s tests of the %(school_year)s school year that %(lea_name)s sent you "
    "earlier. The corrected report is attached. It replaces the earlier report, which you should no longer "
    "use.\n"
    "\n"
    "To protect your family's privacy, the report is in one PDF file protected with a password. "
    "We will send you the password in a separate message. Please keep both messages private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the correction, please contact the school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s",
    "Dear %(guardian_name)s,\n"
    "\n"
    "The state's testing contractor has corrected %(count)s California Student Score Reports "
    "from the %(tests)s tests of the %(school_year)s school year that %(lea_name)s sent you "
    "earlier. The corrected reports are attached. They replace the earlier reports, which you "
    "should no longer use.\n"
    "\n"
    "To protect your family's privacy, all the reports are in one PDF file protected with a "
    "password. We will send you the password in a separate message. Please keep both messages "
    "private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the correction, please contact the school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s",
)
"""The document email of a ``corrections`` batch: ETS re-issued SSRs the family already has."""
PASSWORD_SUBJECT = N_("%(lea_name)s: password for the Student Score Report file")
PASSWORD_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "We recently sent you a separate email from %(lea_name)s with a PDF file of Student Score "
    "Reports from the %(school_year)s school year. Use this password to open the file:\n"
    "\n"
    "    %(password)s\n"
    "\n"
    "Type the words exactly as shown, in lowercase letters and with the hyphens. Do not share this "
    "password with anyone.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
PASSWORD_SMS = N_("%(lea_name)s: password for the Student Score Report file: %(password)s")
"""At most two SMS segments with a 40-character LEA name (``services.delivery.sms_segments``)."""
# The notice families get some days before delivery (seeds 001 and 002: LEAs tell parents about
# the new process first): where the report will come from, that the password comes separately, and
# that the district never asks for it, so a message asking for it is recognisably not ours.
NOTICE_SUBJECT = N_("%(lea_name)s: how you will receive your family's Student Score Reports")
NOTICE_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "Soon, %(lea_name)s will email you your family's California Student Score Reports from the "
    "%(tests)s tests of the %(school_year)s school year. The email will come from this address:\n"
    "\n"
    "    %(sender)s\n"
    "\n"
    "Please add this address to your contacts so that the email does not go to your spam folder.\n"
    "\n"
    "To protect your family's privacy, the reports will be in one PDF file protected with a "
    "password. %(password_way)s\n"
    "\n"
    "%(lea_name)s will never ask you for this password, by email, by phone or in any other way. If "
    "someone asks you for it, do not give it, and tell the school.\n"
    "\n"
    "If you have questions, please contact the school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
NOTICE_PASSWORD_BY_EMAIL = N_(
    "The password will come separately, in a second email sent shortly after the file."
)
NOTICE_PASSWORD_BY_SMS = N_(
    "The password will come separately, in a text message (SMS) to your mobile phone."
)
FALLBACK_NOTE = N_("This message is in English because it is not yet available in your language.")
"""Put before an English text when the family's catalog lacks that message (``Rendered.fell_back``)."""
ALL_MESSAGES: tuple[str | tuple[str, str], ...] = (
    DOCUMENT_SUBJECT,
    DOCUMENT_BODY,
    CORRECTED_SUBJECT,
    CORRECTED_BODY,
    PASSWORD_SUBJECT,
    PASSWORD_BODY,
    PASSWORD_SMS,
    NOTICE_SUBJECT,
    NOTICE_BODY,
    NOTICE_PASSWORD_BY_EMAIL,
    NOTICE_PASSWORD_BY_SMS,
    FALLBACK_NOTE,
)

CONTENT_LANGUAGE = {code: code.replace("_", "-") for code in LANGUAGES}
"""BCP 47 tags for ``Content-Language`` and HTML ``lang`` (RFC 3282; zh-Hans, zh-Hant: RFC 5646)."""
RIGHT_TO_LEFT = frozenset({"ar"})
"""Languages written right to left: emails get ``dir="rtl"``, cover sheets are laid out mirrored."""


def direction(language: str) -> str:
    return "rtl" if language in RIGHT_TO_LEFT else "ltr"


@dataclass(frozen=True)
class Season:
    """Which SSRs a message is about: the program (None: both) and the spring of the tests."""

    admin_year: int
    program: str | None = None

    @property
    def school_year(self) -> str:
        """The school year the tests were given in, as California writes it: 2025–26."""
        return f"{self.admin_year - 1}–{self.admin_year % 100:02d}"


@dataclass(frozen=True)
class Rendered:
    language: str
    subject: str
    body: str
    fell_back: bool = False  # some text is in English: the family's catalog lacks it

    @property
    def content_language(self) -> str:
        """The ``Content-Language`` of the message: English where it fell back."""
        return "en" if self.fell_back else CONTENT_LANGUAGE[self.language]


@cache
def translations(language: str) -> NullTranslations:
    """The catalog for a language, or the message ids themselves (English) when there is none."""
    if language not in LANGUAGES:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], domain=DOMAIN)


def message_language(language: str | None) -> str:
    """The guardian's language if the console has texts for it, else English."""
    return language if language in LANGUAGES else "en"


class _Missing(NullTranslations):
    """The last fallback of every catalog: tells a missing message from a translation that happens
    to equal its id."""

    def gettext(self, message: str) -> str:
        raise LookupError(message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        raise LookupError(msgid1)


@cache
def strict_translations(language: str) -> NullTranslations:
    catalog = Translations.load(str(LOCALE_DIR), [language], domain=DOMAIN)
    if not isinstance(catalog, Translations):  # no .mo file: every message is missing
        return _Missing()
    catalog.add_fallback(_Missing())
    return catalog


def translated(language: str, message: str | tuple[str, str], count: int = 1) -> str | None:
    """The message in ``language``, or None when its catalog lacks it (English never lacks one)."""
    code = message_language(language)
    catalog = translations(code) if code == "en" else strict_translations(code)
    try:
        if isinstance(message, tuple):
            return catalog.ngettext(message[0], message[1], count)
        return catalog.gettext(message)
    except LookupError:
        return None


class Writer:
    """Renders one message's parts in one language, falling back to English part by part."""

    def __init__(self, language: str) -> None:
        self.language = message_language(language)
        self.fell_back = False

    def text(
        self, message: str | tuple[str, str], values: dict[str, object], count: int = 1
    ) -> str:
        found = translated(self.language, message, count)
        if found is None:
            self.fell_back = True
            found = translated("en", message, count)
            assert found is not None
        return found % values

    def tests(self, season: Season) -> str:
        """The programs' names stay as written (CAASPP, ELPAC); Babel joins them ("y", "và", "및")."""
        names = [season.program] if season.program else ["CAASPP", "ELPAC"]
        return format_list(names, locale=self.language)

    def rendered(self, subject: str, body: str) -> Rendered:
        if self.fell_back:
            note = translated(self.language, FALLBACK_NOTE)
            body = f"{note}\n\n{body}" if note else body
        return Rendered(self.language, subject, body, self.fell_back)


def document_message(
    language: str,
    *,
    guardian_name: str,
    lea_name: str,
    count: int,
    season: Season,
    correction: bool = False,
) -> Rendered:
    """The document email; ``correction``: it carries corrected SSRs that replace earlier ones."""
    writer = Writer(language)
    values: dict[str, object] = {
        "guardian_name": guardian_name,
        "lea_name": lea_name,
        "count": count,
        "school_year": season.school_year,
        "tests": writer.tests(season),
    }
    subject, body = (
        (CORRECTED_SUBJECT, CORRECTED_BODY) if correction else (DOCUMENT_SUBJECT, DOCUMENT_BODY)
    )
    return writer.rendered(writer.text(subject, values, count), writer.text(body, values, count))


def password_message(
    language: str, *, guardian_name: str, lea_name: str, password: str, season: Season
) -> Rendered:
    writer = Writer(language)
    values: dict[str, object] = {
        "guardian_name": guardian_name,
        "lea_name": lea_name,
        "password": password,
        "school_year": season.school_year,
    }
    return writer.rendered(
        writer.text(PASSWORD_SUBJECT, values), writer.text(PASSWORD_BODY, values)
    )


def password_sms(language: str, *, lea_name: str, password: str) -> str:
    """The password SMS: no room for a fallback note, so a missing text is plain English."""
    return Writer(language).text(PASSWORD_SMS, {"lea_name": lea_name, "password": password})


def notice_message(
    language: str,
    *,
    guardian_name: str,
    lea_name: str,
    sender: str,
    password_channel: str,
    season: Season,
) -> Rendered:
    """The notice before delivery: the ``sender`` address the report will come from, and that
    its password follows by email or by SMS (``password_channel``)."""
    writer = Writer(language)
    way = NOTICE_PASSWORD_BY_SMS if password_channel == "sms" else NOTICE_PASSWORD_BY_EMAIL  # noqa: S105 - a channel
    values: dict[str, object] = {
        "guardian_name": guardian_name,
        "lea_name": lea_name,
        "sender": sender,
        "password_way": writer.text(way, {}),
        "school_year": season.school_year,
        "tests": writer.tests(season),
    }
    return writer.rendered(writer.text(NOTICE_SUBJECT, values), writer.text(NOTICE_BODY, values))
