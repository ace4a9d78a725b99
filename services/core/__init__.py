"""What every capability stands on: the database and the migrations' runner, settings, the session
context, errors as sentences, validation, display-safe text, private files, column helpers, the
assessment programs, the four channels, the scope rule, working days, paged reads and the one CSV
writer.

May import: ``access``, ``intake``, ``roster`` (only their tables: the scope rule is written over students and SSRs, the context holds the operator). Never textual, console, screens or widgets.
"""
