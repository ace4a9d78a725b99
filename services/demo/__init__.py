"""The synthetic demo LEA and the SSR renderer it uses.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``. Never textual, console, screens or widgets.
"""
