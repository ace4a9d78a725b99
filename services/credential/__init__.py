"""The SIS-vendor credential TOMS issues: its record, coordinated reset, the systems that hold it, and
the test connection.

May import: ``core``, ``access``, ``audit``, ``roster``. Never textual, console, screens or widgets.
"""
