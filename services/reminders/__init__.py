"""Reminder notices: which are due, their ledger, their mail, and the one scheduler's lock.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``credential``, ``delivery``. Never textual, console, screens or widgets.
"""
