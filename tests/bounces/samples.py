"""Bounces in the shapes real servers send them, built around an original message's headers.

Each builder takes the Message-ID of the message that bounced, the family's address and the address
the bounce goes to (the envelope sender: a VERP return path or the bounce mailbox), and returns the
bytes a mailbox would hold. The shapes follow what Postfix, Gmail, Exchange Online, Exim and qmail
send (RFC 3464 reports, and the non-standard forms with the original headers quoted in the body).
"""

from __future__ import annotations

ORIGINAL = """Return-Path: <{return_path}>
Received: from ssr-console (localhost [127.0.0.1]) by relay.district.org
From: Unified School District <ssr-reports@district.org>
To: {to}
Subject: Your child's score report
Date: Mon, 01 Jun 2026 16:00:00 -0700
Message-ID: {message_id}
X-SSR-Delivery: 1; document
"""


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def _original(message_id: str, to: str, return_path: str) -> str:
    return ORIGINAL.format(message_id=message_id, to=to, return_path=return_path)


def postfix_dsn(message_id: str, to: str, return_path: str, *, delayed: bool = False) -> bytes:
    """Postfix: multipart/report, a delivery-status part, the original's headers (RET=HDRS)."""
    action, status = ("delayed", "4.2.2") if delayed else ("failed", "5.1.1")
    said = (
        "452 4.2.2 Mailbox full, try again later"
        if delayed
        else "550 5.1.1 <{to}>: Recipient address rejected: User unknown"
    ).format(to=to)
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    return _crlf(f"""Return-Path: <>
Delivered-To: {return_path}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: {subject}
To: {return_path}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="B1"
Message-Id: <20260601230102.AB12@mx.example.net>

This is a MIME-encapsulated message.

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{to}>: host mail.example.org[203.0.113.5] said: {said}

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: AB12
Arrival-Date: Mon,  1 Jun 2026 16:00:01 -0700 (PDT)

Final-Recipient: rfc822; {to}
Original-Recipient: rfc822;{to}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; {said}

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_original(message_id, to, return_path)}
--B1--
""")


def gmail_dsn(message_id: str, to: str, return_path: str) -> bytes:
    """Gmail: "Address not found", a delivery-status part and the whole original message."""
    return _crlf(f"""Delivered-To: {return_path}
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {return_path}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: {message_id}
In-Reply-To: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; boundary="G2"; report-type=delivery-status

--G2
Content-Type: multipart/related; boundary="G3"

--G3
Content-Type: multipart/alternative; boundary="G4"

--G4
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to {to} because the address couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.

--G4--
--G3--
--G2
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; relay.district.org
Arrival-Date: Mon, 01 Jun 2026 16:00:01 -0700 (PDT)

Final-Recipient: rfc822; {to}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com.
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.
Last-Attempt-Date: Mon, 01 Jun 2026 16:00:02 -0700 (PDT)

--G2
Content-Type: message/rfc822

{_original(message_id, to, return_path)}
Dear family, your child's score report is attached.

--G2--
""")


def exchange_ndr(message_id: str, to: str, return_path: str) -> bytes:
    """Exchange/Outlook: "Undeliverable:", words for people and administrators, and the original
    headers as an attachment (not a delivery-status part)."""
    return _crlf(f"""From: postmaster@district-parents.onmicrosoft.com
To: {return_path}
Subject: Undeliverable: Your child's score report
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="E5"

--E5
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:

{to} ({to})
The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message.

Diagnostic information for administrators:

Generating server: BN8PR12MB.namprd12.prod.outlook.com

{to}
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

--E5
Content-Type: text/rfc822-headers; name="Original message headers.txt"
Content-Disposition: attachment; filename="Original message headers.txt"

{_original(message_id, to, return_path)}
--E5--
""")


def exim_failure(message_id: str, to: str, return_path: str) -> bytes:
    """Exim: a plain text body, X-Failed-Recipients, then a copy of the whole message."""
    return _crlf(f"""Return-path: <>
Envelope-to: {return_path}
From: Mail Delivery System <Mailer-Daemon@mail.example.com>
To: {return_path}
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: {to}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {to}
    SMTP error from remote mail server after RCPT TO:<{to}>:
    host mx.example.com [198.51.100.7]: 550 No such user here

------ This is a copy of the message, including all the headers. ------

{_original(message_id, to, return_path)}
Dear family, your child's score report is attached.
""")


def qmail_failure(message_id: str, to: str, return_path: str) -> bytes:
    """qmail: "failure notice" from MAILER-DAEMON, the original quoted below a line."""
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@mail.example.edu
To: {return_path}
Subject: failure notice

Hi. This is the qmail-send program at mail.example.edu.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{to}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

{_original(message_id, to, return_path)}
Dear family, your child's score report is attached.
""")


def bare_dsn(to: str, return_path: str) -> bytes:
    """A report without the original message (RET=HDRS not honoured): only VERP can match it."""
    return _crlf(f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.org
To: {return_path}
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="R1"

--R1
Content-Type: text/plain

Your message could not be delivered.

--R1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {to}
Action: failed
Status: 5.2.1
Diagnostic-Code: smtp; 550 5.2.1 Mailbox disabled

--R1--
""")


def out_of_office(message_id: str, to: str, return_path: str) -> bytes:
    """An Exchange out-of-office reply: Auto-Submitted, "Automatic reply:", In-Reply-To."""
    return _crlf(f"""From: Parent <{to}>
To: {return_path}
Subject: Automatic reply: Your child's score report
In-Reply-To: {message_id}
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
Content-Type: text/plain; charset="us-ascii"

I am out of the office until June 15 with limited access to email.
""")


def vacation_reply(message_id: str, to: str, return_path: str) -> bytes:
    """An older autoresponder: only X-Autoreply and an "Out of Office" subject."""
    return _crlf(f"""From: {to}
To: {return_path}
Subject: Out of Office: Your child's score report
X-Autoreply: yes
References: {message_id}

Gracias, responderé pronto. Mail delivery is delayed this week.
""")


def parent_reply(message_id: str, to: str, return_path: str) -> bytes:
    """A person answering the message: no bounce, no auto-reply."""
    return _crlf(f"""From: Parent <{to}>
To: {return_path}
Subject: Re: Your child's score report
In-Reply-To: {message_id}

Thank you, we could not open the PDF, what is the password?
""")
