"""The LEA's people and places: LEAs, schools, students, guardians, student groups, the roster facts
the advisor needs, and the paged students table.

May import: ``core``, ``access``, ``audit``, ``intake``, ``plan`` (intake for SSR counts, plan for the advisor's fact types). Never textual, console, screens or widgets.
"""
