"""SSRs in: TOMS bulk downloads and the TOMS-style API, PDF checks, the content-addressed report store,
the SSR table and what each import run leaves behind.

May import: ``core``, ``access``, ``audit``, ``roster``, ``credential``. Never textual, console, screens or widgets.
"""
