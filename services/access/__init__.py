"""Who may sign in and do what: roles and operators, permissions, SSH keys.

May import: ``core``. Never textual, console, screens or widgets.
"""
