"""Errors the console shows to a person: each carries a sentence fit for the screen, no traceback."""


class ConsoleError(Exception):
    """Base of every error a screen or the CLI reports as a plain message."""


class InvalidInput(ConsoleError, ValueError):
    """A value a person or a file supplied is not acceptable (bad SSID, CDS code, language...)."""


class PermissionDenied(ConsoleError):
    """The operator's role or scope does not allow the action."""


class NotFound(ConsoleError, LookupError):
    """The thing asked for does not exist (or is outside the operator's scope)."""


class DatabaseUnavailable(ConsoleError):
    """The database refused or dropped the connection, or stayed locked: the work was rolled back."""
