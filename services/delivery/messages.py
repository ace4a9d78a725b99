"""The parent-facing messages of a secure delivery, in the guardian's language.

Texts are gettext catalogs in ``services/locale/<lang>/LC_MESSAGES/messages.po`` (``make catalogs``
extracts, updates and compiles them); a language without a catalog falls back to English. The
document email never names a student and never carries the password; the password message never
carries a document and names no student either, so neither message alone reveals a child's scores.
Placeholders are Python ``%(name)s`` fields, checked across languages by ``msgfmt --check``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

from services.core.validation import LANGUAGES

LOCALE_DIR = Path(__file__).parents[1] / "locale"
DOMAIN = "messages"


def N_(message: str) -> str:
    """Marks a message id for ``pybabel extract`` without translating it here."""
    return message


DOCUMENT_SUBJECT = N_("%(lea_name)s: your child's Student Score Report")
DOCUMENT_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "Attached are the California Student Score Reports (CAASPP and/or ELPAC) for your child or "
    "children enrolled in %(lea_name)s. Number of reports attached: %(count)s.\n"
    "\n"
    "To protect your child's privacy, each report is a PDF file protected with a password. We will "
    "send you the password in a separate message. Please keep both messages private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the reports, please contact your child's school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
CORRECTED_SUBJECT = N_("%(lea_name)s: corrected Student Score Report for your child")
CORRECTED_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "The state's testing contractor has corrected a California Student Score Report (CAASPP "
    "and/or ELPAC) that %(lea_name)s sent you earlier for your child or children. The corrected "
    "report is attached. It replaces the earlier report, which you should no longer use. Number "
    "of reports attached: %(count)s.\n"
    "\n"
    "To protect your child's privacy, each report is a PDF file protected with a password. We will "
    "send you the password in a separate message. Please keep both messages private.\n"
    "\n"
    "If you do not receive the password within one school day, or if you have questions about "
    "the correction, please contact your child's school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
"""The document email of a ``corrections`` batch: ETS re-issued an SSR the family already has."""
PASSWORD_SUBJECT = N_("%(lea_name)s: password for the Student Score Report")
PASSWORD_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "We recently sent you a separate email from %(lea_name)s with your child's Student Score "
    "Report attached as a protected PDF file. Use this password to open it:\n"
    "\n"
    "    %(password)s\n"
    "\n"
    "Type the words exactly as shown, in lowercase letters and with the hyphens. Do not share this "
    "password with anyone.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
PASSWORD_SMS = N_(
    "%(lea_name)s: the password for the Student Score Report we emailed you is %(password)s"
)
# The notice families get some days before delivery (seeds 001 and 002: LEAs tell parents about
# the new process first): where the report will come from, that the password comes separately, and
# that the district never asks for it, so a message asking for it is recognisably not ours.
NOTICE_SUBJECT = N_("%(lea_name)s: how you will receive your child's Student Score Report")
NOTICE_BODY = N_(
    "Dear %(guardian_name)s,\n"
    "\n"
    "Soon, %(lea_name)s will email you your child's California Student Score Reports (CAASPP "
    "and/or ELPAC). The email will come from this address:\n"
    "\n"
    "    %(sender)s\n"
    "\n"
    "Please add this address to your contacts so that the email does not go to your spam folder.\n"
    "\n"
    "To protect your child's privacy, each report will be a PDF file protected with a password. "
    "%(password_way)s\n"
    "\n"
    "%(lea_name)s will never ask you for this password, by email, by phone or in any other way. If "
    "someone asks you for it, do not give it, and tell your child's school.\n"
    "\n"
    "If you have questions, please contact your child's school.\n"
    "\n"
    "Sincerely,\n"
    "%(lea_name)s"
)
NOTICE_PASSWORD_BY_EMAIL = N_(
    "The password will come separately, in a second email sent shortly after the report."
)
NOTICE_PASSWORD_BY_SMS = N_(
    "The password will come separately, in a text message (SMS) to your mobile phone."
)
ALL_MESSAGES = (
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
)


@dataclass(frozen=True)
class Rendered:
    language: str
    subject: str
    body: str


@cache
def translations(language: str) -> NullTranslations:
    """The catalog for a language, or the message ids themselves (English) when there is none."""
    if language not in LANGUAGES:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [language], domain=DOMAIN)


def message_language(language: str | None) -> str:
    """The guardian's language if the console has texts for it, else English."""
    return language if language in LANGUAGES else "en"


def _text(language: str, message: str, values: dict[str, object]) -> str:
    return translations(message_language(language)).gettext(message) % values


def document_message(
    language: str, *, guardian_name: str, lea_name: str, count: int, correction: bool = False
) -> Rendered:
    """The document email; ``correction``: it carries corrected SSRs that replace earlier ones."""
    values = {"guardian_name": guardian_name, "lea_name": lea_name, "count": count}
    subject, body = (
        (CORRECTED_SUBJECT, CORRECTED_BODY) if correction else (DOCUMENT_SUBJECT, DOCUMENT_BODY)
    )
    return Rendered(
        message_language(language), _text(language, subject, values), _text(language, body, values)
    )


def password_message(
    language: str, *, guardian_name: str, lea_name: str, password: str
) -> Rendered:
    values: dict[str, object] = {
        "guardian_name": guardian_name,
        "lea_name": lea_name,
        "password": password,
    }
    return Rendered(
        message_language(language),
        _text(language, PASSWORD_SUBJECT, values),
        _text(language, PASSWORD_BODY, values),
    )


def password_sms(language: str, *, lea_name: str, password: str) -> str:
    return _text(language, PASSWORD_SMS, {"lea_name": lea_name, "password": password})


def notice_message(
    language: str, *, guardian_name: str, lea_name: str, sender: str, password_channel: str
) -> Rendered:
    """The notice before delivery: the ``sender`` address the report will come from, and that
    its password follows by email or by SMS (``password_channel``)."""
    way = NOTICE_PASSWORD_BY_SMS if password_channel == "sms" else NOTICE_PASSWORD_BY_EMAIL  # noqa: S105 - a channel
    values: dict[str, object] = {
        "guardian_name": guardian_name,
        "lea_name": lea_name,
        "sender": sender,
        "password_way": _text(language, way, {}),
    }
    return Rendered(
        message_language(language),
        _text(language, NOTICE_SUBJECT, values),
        _text(language, NOTICE_BODY, values),
    )
