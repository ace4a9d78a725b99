"""The text of a reminder notice in the coordinator's language, and its SMTP send.

Notice texts are English message ids here, translated in the ``notices`` gettext catalogs beside the
parent-message catalogs (``services/locale``, ``make catalogs``), with dates and "in N days"
formatted by Babel for that language. Sending reuses
the delivery mailer (``services.delivery.mailer``): the same ``[smtp]`` settings, message builder, relay
connection and backoff. Each message carries the Message-ID the ledger recorded before the send,
so a resend after a crash is the *same* message to mail clients.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import make_msgid
from functools import cache

from babel.dates import format_date, format_timedelta
from babel.support import NullTranslations, Translations

from services.core.errors import ConsoleError
from services.core.programs import Program
from services.core.validation import LANGUAGES
from services.delivery import mailer, messages
from services.delivery.mailer import MailConfig
from services.delivery.messages import N_
from services.reminders.ledger import Notice, NoticeKind


class NoticeSendError(ConsoleError):
    """The SMTP relay could not be reached or did not accept the notice; the ledger retries it."""


class RelayUnavailable(NoticeSendError):
    """The relay itself is unreachable: no point trying the scan's other notices now."""


# {when}: "in 3 days" or "3 days ago" (Babel); {date}: the expiry day or deadline; {lea}; {count}; {program};
# {received}: the day the SSRs were received; {rule}: the regulation that sets the deadline. What
# to do about an expiring credential is what TOMS asks: regenerate it there, then record it here
# (seed 001; FACTS.md).
RULES = {Program.CAASPP: "5 CCR § 863", Program.ELPAC: "5 CCR § 11518.15(b)"}
DOMAIN = "notices"
NOTICE_TEXTS: dict[str, str] = {
    "cred_before": N_("SIS-vendor credential for %(lea)s expires %(when)s (%(date)s)"),
    "cred_today": N_("SIS-vendor credential for %(lea)s expires today (%(date)s)"),
    "cred_after": N_("SIS-vendor credential for %(lea)s EXPIRED %(when)s (%(date)s)"),
    "cred_body": N_(
        "Regenerate the credential in TOMS (talk to the other program's LEA coordinator first: regenerating cuts every vendor system off for CAASPP and ELPAC), then record it in SSR Console (Credential, key c) and enter it in every vendor system that uses it. Until then families may lose portal access to their score reports. This reminder repeats until the new credential is recorded."
    ),
    "unverified_subject": N_(
        "TOMS has not confirmed the SIS-vendor credential of %(lea)s recorded on %(date)s"
    ),
    "unverified_body": N_(
        "SSR Console could not reach TOMS to verify the credential recorded for %(lea)s. Open SSR Console (Credential, key c) and verify it (V); if TOMS refuses it, regenerate it in TOMS and record the new one."
    ),
    "note_subject": N_(
        "The LEA %(program)s coordinator of %(lea)s asks to reset the TOMS credential"
    ),
    "note_body": N_(
        "Resetting the SIS-vendor credential in TOMS cuts every vendor system off, for CAASPP and ELPAC alike. Open SSR Console (Credential, key c) to read the coordination note and acknowledge it (k), or tell the requester you disagree."
    ),
    "emergency_subject": N_(
        "EMERGENCY reset of the TOMS credential of %(lea)s, started by the LEA %(program)s coordinator"
    ),
    "emergency_body": N_(
        "An emergency reset was started without coordination (for example, the key leaked). Every vendor system is cut off until it is given the new credential. Open SSR Console (Credential, key c) to read the reason and acknowledge it (k)."
    ),
    "ssr_subject": N_(
        "%(count)s %(program)s score reports for %(lea)s not yet delivered: due %(date)s"
    ),
    "ssr_body": N_(
        "%(count)s %(program)s Student Score Reports received on %(received)s have not been delivered to families. They are due by %(date)s. Open SSR Console to deliver them."
    ),
    "ssr_past_subject": N_(
        "PAST DUE: %(count)s %(program)s score reports for %(lea)s were due %(date)s"
    ),
    "ssr_past_body": N_(
        "%(count)s %(program)s Student Score Reports received on %(received)s were due to families by %(date)s (%(rule)s) and have still not been delivered. Open SSR Console and deliver them now."
    ),
    "anchor_subject": N_("Audit log anchor for %(lea)s, %(date)s"),
    "anchor_body": N_(
        "The audit log of SSR Console ended at this entry when this message was written:\n\n    %(anchor)s\n\nKeep this message. If anyone rewrites or cuts off the log, `ssr-console audit verify --anchor %(anchor)s` fails; run it when in doubt."
    ),
    "bounce_subject": N_(
        "%(count)s families' emails bounced in batch B%(batch)s of %(lea)s (%(rate)s of those sent)"
    ),
    "bounce_body": N_(
        "The mail servers of %(count)s families refused the score report emails of batch B%(batch)s (%(rate)s of the emails the relay accepted). A bad SIS export or mistyped addresses can cause this. Open SSR Console (Batches, key b, the batch, then m) to move the bounced families to print, and correct their addresses in the SIS."
    ),
    "late": N_("(This reminder is late: the scheduler was not running when it fell due.)"),
}
"""The notices' texts by key, in English; their translations are the ``notices`` gettext catalogs
beside the parent messages (``services/locale/<lang>/LC_MESSAGES/notices.po``, ``make catalogs``).
A coordinator whose language has no notices catalog reads English, dates included."""


@cache
def translations(language: str) -> NullTranslations:
    """The notices catalog of a console language, or the English texts themselves."""
    if language not in LANGUAGES:
        return NullTranslations()
    return Translations.load(str(messages.LOCALE_DIR), [language], domain=DOMAIN)


def notice_language(language: str) -> str:
    """The language a notice is written in: the coordinator's, if it has a notices catalog."""
    return language if isinstance(translations(language), Translations) else "en"


def _text(language: str, key: str, values: dict[str, object]) -> str:
    return translations(language).gettext(NOTICE_TEXTS[key]) % values


_CREDENTIAL_TEXTS = {
    NoticeKind.CREDENTIAL_UNVERIFIED: "unverified",
    NoticeKind.RESET_NOTE: "note",
    NoticeKind.RESET_EMERGENCY: "emergency",
}


@dataclass(frozen=True)
class NoticeText:
    subject: str
    body: str


def render(notice: Notice, lea_name: str) -> NoticeText:
    """The notice's subject and body in its recipient's language."""
    language = notice_language(notice.language)
    day = format_date(notice.event_on, format="full", locale=language)
    if notice.kind is NoticeKind.AUDIT_ANCHOR:
        subject = _text(language, "anchor_subject", {"lea": lea_name, "date": day})
        body = _text(language, "anchor_body", {"anchor": notice.anchor})
    elif notice.kind is NoticeKind.BOUNCE_RATE:  # subject bounces:<batch>, program the rate
        bounced: dict[str, object] = {
            "lea": lea_name,
            "count": notice.pending,
            "batch": notice.subject.rpartition(":")[2],
            "rate": notice.program,
        }
        subject = _text(language, "bounce_subject", bounced)
        body = _text(language, "bounce_body", bounced)
    elif notice.kind in _CREDENTIAL_TEXTS:
        prefix = _CREDENTIAL_TEXTS[notice.kind]
        named: dict[str, object] = {"lea": lea_name, "program": notice.program, "date": day}
        subject = _text(language, f"{prefix}_subject", named)
        body = _text(language, f"{prefix}_body", named)
    elif notice.kind is NoticeKind.CREDENTIAL_EXPIRY:
        key = (
            "cred_before"
            if notice.offset > 0
            else "cred_today"
            if notice.offset == 0
            else "cred_after"
        )
        when = format_timedelta(
            timedelta(days=notice.offset or 1),  # negative after expiry: "3 days ago"
            granularity="day",
            threshold=1000,
            add_direction=True,
            locale=language,
        )
        subject = _text(language, key, {"lea": lea_name, "when": when, "date": day})
        body = _text(language, "cred_body", {})
    else:
        values = {
            "lea": lea_name,
            "count": notice.pending,
            "program": notice.program,
            "date": day,
            "received": format_date(_received_on(notice), format="long", locale=language),
            "rule": RULES[Program(str(notice.program))],
        }
        past = "ssr_past_" if notice.offset < 0 else "ssr_"
        subject = _text(language, f"{past}subject", values)
        body = _text(language, f"{past}body", values)
    if notice.late:
        body = f"{body}\n\n{_text(language, 'late', {})}"
    return NoticeText(subject, f"{subject}\n\n{body}\n")


def _received_on(notice: Notice) -> date:
    # subject is ssr:<lea>:<program>:<received ISO date>
    return date.fromisoformat(notice.subject.rsplit(":", 1)[1])


class NoticeMailer:
    """Sends one notice per call through the relay; anything but acceptance is ``NoticeSendError``."""

    def __init__(self, config: MailConfig) -> None:
        self.config = config

    def message_id(self) -> str:
        """A Message-ID in the sender's domain, recorded in the ledger before the send."""
        return make_msgid(
            "notice", domain=self.config.from_address.rpartition("@")[2] or "localhost"
        )

    def backoff(self, attempts: int) -> timedelta:
        return mailer.backoff(self.config, attempts)

    def send(self, notice: Notice, lea_name: str) -> None:
        if not notice.email or not notice.message_id:
            raise NoticeSendError("A notice needs an address and a Message-ID before it is sent")
        text = render(notice, lea_name)
        message = mailer.build_message(
            self.config,
            to=notice.email,
            subject=text.subject,
            body=text.body,
            reference=f"notice:{notice.id}",
            language=notice.language.replace("_", "-"),
            message_id=notice.message_id,
        )
        result = asyncio.run(self._deliver(message))
        if result.outcome is not mailer.Outcome.ACCEPTED:
            error = RelayUnavailable if result.connection_error else NoticeSendError
            raise error(
                f"SMTP {self.config.host}:{self.config.port} {result.outcome.value}: {result.detail}"
            )

    async def _deliver(self, message: mailer.Outgoing) -> mailer.SendResult:
        connection = mailer.SmtpConnection(self.config)
        try:
            return await connection.send(message)
        finally:
            await connection.close()
