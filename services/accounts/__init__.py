"""Accounts: setting up an LEA with its first coordinators, and managing the operators who sign in
(roles, scope, SSH keys), each change audited in its own transaction.

May import: ``core``, ``access``, ``audit``, ``roster``. Never textual, console, screens or widgets.
"""
