"""Coordinator reports: coverage and delivery aggregates, deadlines, the dashboard's figures.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``plan``, ``delivery``, ``channels``, ``credential``. Never textual, console, screens or widgets.
"""
