"""The help desk: find a family fast, read its delivery timeline, put it right (resend, correct, move).

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``plan``, ``delivery``, ``channels``. Never textual, console, screens or widgets.
"""
