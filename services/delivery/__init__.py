"""Secure email delivery, and how a password message is sent: batch selection, the ledger and its
state machine, the worker, packaging (encrypted PDFs), the password vault, the messages in the
family's language, the mailer and the SMS gateway; and when an SSR counts as delivered.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``plan``, ``channels``. Never textual, console, screens or widgets.
"""
