"""The SIS-vendor credential TOMS issues: its sealed record and verification (lifecycle), the
coordinated reset (reset), the systems that hold it with their test connection (systems), and the
token request they all use (check).

May import: ``core``, ``access``, ``audit``, ``roster``. Never textual, console, screens or widgets.
"""
