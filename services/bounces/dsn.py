"""Reading one message of the bounce mailbox: is it a bounce, hard or soft, about which message.

Standard bounces are delivery status notifications (RFC 3464): a ``multipart/report`` with
``report-type=delivery-status`` whose ``message/delivery-status`` part has one block per recipient
with ``Action`` (``failed``: the server has given up; ``delayed``: it is still trying, §2.3.3),
``Status`` (RFC 3463 enhanced codes: class 4 is a persistent transient failure, class 5 a
permanent one) and ``Diagnostic-Code``; the original message, or its headers, follow as
``message/rfc822`` or ``text/rfc822-headers``. Python's email package parses each block as a
header set. Many servers send something else: qmail ("This is a permanent error; I've given
up"), older Exim ("Mail delivery failed", ``X-Failed-Recipients``, "------ This is a copy of the
message, including all the headers"), Exchange/Outlook ("Delivery has failed to these recipients
or groups" with the original headers as an attachment), Gmail ("Address not found"). For those
the words before the quoted original and its quoted ``Message-ID`` line are read.

An automatic reply (RFC 3834: ``Auto-Submitted`` other than ``no``; also ``X-Autoreply``,
``X-Autorespond``, ``Precedence: auto_reply`` and "Out of Office"/"Automatic reply" subjects) is
not a bounce: the family's mailbox exists and took the message. Bounces carry such headers too
(Postfix marks its bounces ``Auto-Submitted: auto-replied``), so a message is a bounce first when
it has the shape of one.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr


class Kind(enum.StrEnum):
    """What a message of the bounce mailbox is."""

    HARD = "hard"  # the server gave up: the family did not get the message
    SOFT = "soft"  # the server is still trying (or a temporary refusal): not a failure yet
    AUTO_REPLY = "auto_reply"  # an out-of-office or other automatic reply: not a bounce
    OTHER = "other"  # a delivery report of success, a person writing, spam


@dataclass(frozen=True)
class Report:
    """One mailbox message as read: its kind and what it says about the original message."""

    kind: Kind
    recipient: str = ""  # the address that failed, as the report gives it ("" unknown)
    status: str = ""  # RFC 3463 code ("5.1.1"), or the SMTP reply code ("550")
    reason: str = ""  # the server's words, one line
    message_ids: tuple[str, ...] = ()  # Message-IDs of the original message quoted in it
    sent_to: tuple[str, ...] = ()  # the addresses the report was sent to (a VERP return path)
    reporter: str = ""  # who sent the report (a MAILER-DAEMON, a postmaster, a person)
    subject: str = ""

    @property
    def is_bounce(self) -> bool:
        return self.kind in (Kind.HARD, Kind.SOFT)


MAX_REASON = 300
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?<![\d.#])([45]\d\d)(?:[ -]|$)", re.MULTILINE)
_MESSAGE_ID = re.compile(r"^[ \t>]*Message-Id:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_REPORTERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailer|bounce[s]?|mdaemon)$", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|mail delivery (failed|failure|system)|"
    r"failure notice|returned mail|delivery failure|not delivered|delivery (has )?failed|"
    r"mail system error|delivery delayed|delayed mail|warning: message .* delayed|"
    r"could not send message|address not found|message not delivered",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|auto:|"
    r"autoreply|vacation|away from|abwesenheit|respuesta autom[aá]tica|fuera de la oficina|"
    r"r[ée]ponse automatique|absence)",
    re.IGNORECASE,
)
# Where a non-standard bounce starts quoting the original message: read the words before it only.
_QUOTE_START = re.compile(
    r"^(-+ ?(this is a copy of|below this line is a copy|original message|"
    r"the header of the original message|undelivered message)|"
    r"-+\s*original message\s*-+|original message headers:|"
    r"(return-path|received|message-id|from|to|subject|date):.*)",
    re.IGNORECASE | re.MULTILINE,
)
_HARD_WORDS = re.compile(
    r"permanent (error|failure)|i've given up|could ?n[o']t be delivered|"
    r"delivery has failed|undeliverable|address not found|user unknown|unknown user|"
    r"no such (user|mailbox|recipient)|mailbox (unavailable|not found|does not exist)|"
    r"does not exist|recipient not found|recipient address rejected|"
    r"retry timeout exceeded|wasn'?t delivered|was not delivered|message not delivered|"
    r"domain not found|host not found|name or service not known|gave up",
    re.IGNORECASE,
)
_SOFT_WORDS = re.compile(
    r"has not (yet )?been delivered|not been delivered yet|delivery (is )?delayed|"
    r"will (continue|keep) (trying|to try|attempting)|will retry|still trying|"
    r"temporar(y|ily) (failure|unavailable|problem|deferred)|deferred",
    re.IGNORECASE,
)
_FAILED_LINE = re.compile(
    r"(?:^<(ADDR)>:|"  # qmail, Postfix's text part: "<addr>:"
    r"(?:delivered to|recipients or groups:|following (?:address|recipient)\(?e?s?\)?:?)\s*<?(ADDR))".replace(
        "ADDR", _ADDRESS.pattern
    ),  # Gmail, Exchange, Exim
    re.IGNORECASE | re.MULTILINE,
)


def parse(raw: bytes) -> Report:
    """Read one message of the bounce mailbox (never raises on a malformed one: it is OTHER)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    subject = _header(message, "Subject")
    reporter = parseaddr(_header(message, "From"))[1].lower()
    sent_to = tuple(
        address.lower()
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for _, address in getaddresses([_header(message, name)] if message[name] else [])
        if address
    )
    report = _from_dsn(message) or _from_text(message, reporter, subject)
    if report is None:
        kind = Kind.AUTO_REPLY if _auto_reply(message, subject) else Kind.OTHER
        report = Report(kind)
    ids = report.message_ids + _referenced(message)
    return Report(
        report.kind,
        report.recipient.lower(),
        report.status,
        _line(report.reason),
        tuple(dict.fromkeys(ids)),
        tuple(dict.fromkeys(sent_to)),
        reporter,
        subject[:200],
    )


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
        return str(value).strip() if value is not None else ""
    except (ValueError, TypeError, IndexError):  # a header the parser cannot decode
        raw = message.get_all(name, failobj=[""])
        return str(raw[0]).strip() if raw else ""


def _line(text: str) -> str:
    return " ".join(text.split())[:MAX_REASON]


def _referenced(message: Message) -> tuple[str, ...]:
    """Message-IDs a report names in its own headers (some providers set In-Reply-To)."""
    text = " ".join(_header(message, name) for name in ("In-Reply-To", "References"))
    return tuple(re.findall(r"<[^<>\s]+>", text))


def _auto_reply(message: Message, subject: str) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if message["X-Autoreply"] or message["X-Autorespond"] or message["X-Autoresponder"]:
        return True
    if _header(message, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(subject))


# --- RFC 3464 ------------------------------------------------------------------------------------


def _from_dsn(message: Message) -> Report | None:
    """A ``multipart/report; report-type=delivery-status``, or None."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    blocks: list[Message] = []
    ids: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            blocks += _messages_in(part)
        elif kind in ("message/rfc822", "message/global"):
            for original in _messages_in(part):
                ids += _ids_of(original)
        elif kind in ("text/rfc822-headers", "text/global-headers"):
            headers = HeaderParser(policy=policy.default).parsestr(_text(part))
            ids += _ids_of(headers)
    failed = [b for b in blocks if _header(b, "Action").lower() == "failed"]
    delayed = [b for b in blocks if _header(b, "Action").lower() == "delayed"]
    chosen = failed or delayed
    if not chosen:  # a report of success (delivered, relayed, expanded): nothing went wrong
        return Report(Kind.OTHER, message_ids=tuple(ids))
    block = chosen[0]
    recipient = _address_field(_header(block, "Final-Recipient")) or _address_field(
        _header(block, "Original-Recipient")
    )
    status = _ENHANCED.search(_header(block, "Status"))
    reason = _header(block, "Diagnostic-Code").partition(";")[2] or _header(
        block, "Diagnostic-Code"
    )
    return Report(
        Kind.HARD if failed else Kind.SOFT,
        recipient,
        status.group(0) if status else "",
        reason or _header(block, "Status"),
        tuple(ids) + _quoted_ids(message),
    )


def _messages_in(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part, or the message of a message/rfc822 one."""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _address_field(value: str) -> str:
    """The address of a ``Final-Recipient: rfc822; someone@example.org`` field."""
    kind, _, address = value.partition(";")
    return (address if address else kind).strip().strip("<>")


def _ids_of(headers: Message) -> list[str]:
    found = _header(headers, "Message-ID")
    return re.findall(r"<[^<>\s]+>", found)


def _text(part: Message) -> str:
    try:
        if isinstance(part, EmailMessage):
            content = part.get_content()
            return content if isinstance(content, str) else ""
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    except (LookupError, ValueError, KeyError, AssertionError):  # unknown charset, bad encoding
        payload = part.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def _quoted_ids(message: Message) -> tuple[str, ...]:
    """Message-ID lines quoted in the text parts (the original's headers pasted in the body)."""
    ids: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            ids += _MESSAGE_ID.findall(_text(part))
    return tuple(ids)


# --- the common non-standard forms ---------------------------------------------------------------


def _from_text(message: Message, reporter: str, subject: str) -> Report | None:
    """A bounce in words (qmail, Exim, Exchange, Gmail), or None when it does not look like one."""
    failed_header = _header(message, "X-Failed-Recipients")
    from_daemon = bool(_REPORTERS.match(reporter.partition("@")[0]))
    null_sender = _header(message, "Return-Path") in ("<>", "") and from_daemon
    if not (failed_header or from_daemon or null_sender or _BOUNCE_SUBJECT.search(subject)):
        return None
    ids = _quoted_ids(message)
    explanation = _explanation(message)
    hard = _HARD_WORDS.search(explanation)
    soft = _SOFT_WORDS.search(explanation)
    enhanced = _ENHANCED.search(explanation)
    smtp = _SMTP_CODE.search(explanation)
    code_class = (enhanced.group(1) if enhanced else "") or (smtp.group(1)[0] if smtp else "")
    if soft and not hard and code_class != "5":
        kind = Kind.SOFT
    elif hard or code_class == "5":
        kind = Kind.HARD
    elif code_class == "4":
        kind = Kind.SOFT
    else:
        return None  # from a daemon, but no failure in it: not ours to count
    recipient = failed_header.split(",")[0].strip()
    if not recipient and (line := _FAILED_LINE.search(explanation)):
        recipient = line.group(1) or line.group(2) or ""
    if not recipient and (anywhere := _ADDRESS.search(explanation)):
        recipient = anywhere.group(0)
    status = enhanced.group(0) if enhanced else (smtp.group(1) if smtp else "")
    return Report(kind, recipient, status, _reason(explanation, status), ids)


def _explanation(message: Message) -> str:
    """The report's own words: its first text part, up to where the original is quoted."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            text = _text(part)
            start = _QUOTE_START.search(text)
            return text[: start.start()] if start else text
        if part.get_content_type() == "text/html" and not part.get_filename():
            text = re.sub(r"<[^>]+>", " ", _text(part))
            start = _QUOTE_START.search(text)
            return text[: start.start()] if start else text
    return ""


def _reason(explanation: str, status: str) -> str:
    """The line that carries the status code, or the first line that says what went wrong."""
    lines = [line.strip() for line in explanation.splitlines() if line.strip()]
    for line in lines:
        if status and status in line:
            return line
    for line in lines:
        if _HARD_WORDS.search(line) or _SOFT_WORDS.search(line):
            return line
    return lines[0] if lines else ""
