"""The hash-chained audit log, its filter line and its paged table.

May import: ``core``, ``access``. Never textual, console, screens or widgets.
"""
