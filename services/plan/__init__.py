"""The distribution plan: the advisor's four questions, saved plans, each family's own channel, and
coverage (every SSR on exactly one channel).

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``delivery``, ``channels``. Never textual, console, screens or widgets.
"""
