"""The channels that send no message: print locally (cover sheets, print files), paper from ETS, and the
parent portal's readiness and hand-off; their batches.

May import: ``core``, ``access``, ``audit``, ``roster``, ``intake``, ``plan``, ``delivery``, ``credential``. Never textual, console, screens or widgets.
"""
